use super::*;

#[test]
fn the_offset_moves_the_time_and_never_below_zero() {
    let clock = NodeClock::default();
    let before = clock.now_ms();
    clock.set_offset_ms(31 * 86_400_000);
    assert!(clock.now_ms() >= before + 31 * 86_400_000);
    clock.set_offset_ms(i64::MIN);
    assert_eq!(clock.now_ms(), 0);
}
