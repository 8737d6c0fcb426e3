use super::*;

#[test]
fn tombstone_passes_come_every_quarter_grace_and_never_more_often_than_the_floor() {
    let floor = limits::TOMBSTONE_GC_EVERY_ROUNDS;
    // The default hour: every 15 minutes of one-second rounds.
    assert_eq!(gc_every_rounds(limits::TOMBSTONE_GRACE_MS_DEFAULT), 900);
    assert_eq!(gc_every_rounds(0), floor);
    assert_eq!(gc_every_rounds(2_000), floor);
    assert_eq!(gc_every_rounds(u64::MAX), u64::MAX / 4 / 1_000);
}
