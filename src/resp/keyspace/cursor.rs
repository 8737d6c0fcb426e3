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
mod tests;
