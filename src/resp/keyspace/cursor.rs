//! The SCAN cursor: a position in the cluster's key space, not on a node. The high 32
//! bits name a partition (fixed for the life of a cluster), the low 32 bits a position
//! within it (`ring::position_in_partition`, which grows with the key's hash); keys are
//! visited by (partition, position, key). Any node resumes any cursor, whatever nodes
//! joined, left or failed since, because it names no node. `0` starts an iteration and
//! ends one: a cursor to resume from is never 0 (partition 0 resumes at a position
//! past a key's, so at least 1).
//!
//! It owns the encoding and its checks, pure.

/// Where an iteration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub partition: u32,
    pub position: u32,
}

/// Why a cursor argument is refused: Redis's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

impl Cursor {
    /// The cursor a client sent, for a ring of `partitions`: a decimal u64 naming a
    /// partition of the ring.
    pub fn parse(text: &[u8], partitions: u32) -> Result<Cursor, InvalidCursor> {
        let value: u64 = std::str::from_utf8(text)
            .ok()
            .filter(|text| !text.starts_with('+'))
            .and_then(|text| text.parse().ok())
            .ok_or(InvalidCursor)?;
        let cursor = Cursor {
            partition: (value >> 32) as u32,
            position: value as u32,
        };
        match cursor.partition < partitions {
            true => Ok(cursor),
            false => Err(InvalidCursor),
        }
    }

    /// The cursor as the client gets it.
    pub fn encode(self) -> u64 {
        (u64::from(self.partition) << 32) | u64::from(self.position)
    }

    /// Where the iteration goes after a page of this cursor's partition: on at `next`
    /// in it, or at the start of the next partition; `None` when the last is done.
    pub fn after_page(self, next: Option<u32>, partitions: u32) -> Option<Cursor> {
        match next {
            Some(position) => Some(Cursor {
                partition: self.partition,
                position,
            }),
            None => self.next_partition(partitions),
        }
    }

    /// The start of the next partition; `None` after the last.
    pub fn next_partition(self, partitions: u32) -> Option<Cursor> {
        let partition = self.partition.checked_add(1)?;
        (partition < partitions).then_some(Cursor {
            partition,
            position: 0,
        })
    }
}

/// What the client is sent as the next cursor: `0` when the iteration is done.
pub fn reply_cursor(cursor: Option<Cursor>) -> u64 {
    cursor.map_or(0, Cursor::encode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zero_is_the_start() {
        let start = Cursor {
            partition: 0,
            position: 0,
        };
        assert_eq!(Cursor::parse(b"0", 1024), Ok(start));
    }

    #[test]
    fn garbage_and_partitions_past_the_ring_are_invalid() {
        for text in [
            &b"abc"[..],
            b"-1",
            b"+1",
            b"",
            b"1.5",
            b"18446744073709551616",
        ] {
            assert_eq!(Cursor::parse(text, 1024), Err(InvalidCursor), "{text:?}");
        }
        let past = (1024u64 << 32).to_string();
        assert_eq!(Cursor::parse(past.as_bytes(), 1024), Err(InvalidCursor));
        let last = ((1023u64 << 32) | 7).to_string();
        assert_eq!(
            Cursor::parse(last.as_bytes(), 1024),
            Ok(Cursor {
                partition: 1023,
                position: 7
            })
        );
    }

    #[test]
    fn the_last_partition_done_ends_the_iteration() {
        let last = Cursor {
            partition: 1023,
            position: 9,
        };
        assert_eq!(reply_cursor(last.after_page(None, 1024)), 0);
        let resumed = last.after_page(Some(10), 1024).unwrap();
        assert_eq!(resumed.position, 10);
    }

    proptest! {
        #[test]
        fn a_cursor_survives_its_encoding(partition in 0u32..4096, position in any::<u32>()) {
            let cursor = Cursor { partition, position };
            let text = cursor.encode().to_string();
            prop_assert_eq!(Cursor::parse(text.as_bytes(), 4096), Ok(cursor));
        }

        /// The encoding orders cursors as the iteration visits them.
        #[test]
        fn encodings_order_as_positions(
            a in (0u32..4096, any::<u32>()), b in (0u32..4096, any::<u32>())
        ) {
            let a = Cursor { partition: a.0, position: a.1 };
            let b = Cursor { partition: b.0, position: b.1 };
            prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
        }

        /// Every cursor handed back to resume from is not 0.
        #[test]
        fn a_resume_cursor_is_never_zero(
            partition in 0u32..4096, next in proptest::option::of(1u32..), partitions in 1u32..4096
        ) {
            let cursor = Cursor { partition: partition % partitions, position: 0 };
            if let Some(resume) = cursor.after_page(next, partitions) {
                prop_assert_ne!(resume.encode(), 0);
            }
        }
    }
}
