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

#[test]
fn a_catch_up_request_wakes_the_worker_once_and_lapses_unless_renewed() {
    let stats = RepairStats::default();
    assert!(!stats.catching_up(), "nothing asked");
    stats.want_catch_up(true);
    assert!(stats.catching_up());
    // The first request woke the worker: a permit is stored for its next wait.
    let woken = stats.catch_up_wake.notified();
    futures::pin_mut!(woken);
    assert!(
        woken.as_mut().enable(),
        "the worker is woken at once for the first request"
    );
    stats.want_catch_up(false);
    assert!(!stats.catching_up(), "caught up ends the rush");
    // A request older than two checks of the guard has lapsed (the guard went fenced
    // and stopped asking).
    let stale = now_ms() - 2 * limits::AUTH_CATCH_UP_CHECK_MS - 1;
    stats.catch_up_asked_ms.store(stale, Ordering::Relaxed);
    assert!(!stats.catching_up(), "a request nobody renews lapses");
}
