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
