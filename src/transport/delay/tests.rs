use super::*;
use futures::FutureExt;
use std::task::Poll;

/// Delays around the edges that matter: far below a tick, just under, at and over one
/// tick, a few ticks, and under, at and over the precise span (200 ms).
const DELAYS_US: &[u64] = &[
    1, 40, 250, 500, 999, 1000, 1001, 2600, 5300, 199_999, 200_000, 201_300,
];

fn held(timer: &DelayTimer) -> usize {
    timer.held.load(Ordering::Acquire)
}

fn coarse(timer: &DelayTimer) -> u64 {
    timer.coarse_endings.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_never_ends_before_it_is_due() {
    let timer = DelayTimer::new(16, PRECISE_SPAN);
    for round in 0..2 {
        for &micros in DELAYS_US {
            let delay = Duration::from_micros(micros);
            let start = Instant::now();
            timer.sleep(delay).await;
            let elapsed = start.elapsed();
            assert!(
                elapsed >= delay,
                "round {round}: {delay:?} ended after {elapsed:?}"
            );
            let start = Instant::now();
            sleep(delay).await;
            let elapsed = start.elapsed();
            assert!(
                elapsed >= delay,
                "round {round}: process timer, {delay:?} ended after {elapsed:?}"
            );
        }
    }
    assert_eq!(held(&timer), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_kernel_timer_free_a_delay_ends_on_tokios_timer_never_early() {
    let timer = DelayTimer::new(0, PRECISE_SPAN);
    for &micros in DELAYS_US {
        let delay = Duration::from_micros(micros);
        let start = Instant::now();
        timer.sleep(delay).await;
        let elapsed = start.elapsed();
        assert!(elapsed >= delay, "{delay:?} ended after {elapsed:?}");
    }
    // Each delay reached its last step before its deadline (1 µs could be over by then,
    // and ends without any timer): at most one coarse ending each.
    assert!(coarse(&timer) <= DELAYS_US.len() as u64);
    assert!(coarse(&timer) >= 1, "no delay went through the fallback");
    assert_eq!(held(&timer), 0);
}

#[test]
fn a_zero_delay_ends_at_once_without_a_runtime_or_a_timer() {
    // Outside a runtime: tokio's timer or a kernel timer registered with the reactor
    // would panic here, so returning proves neither was touched.
    let timer = DelayTimer::new(1, PRECISE_SPAN);
    assert_eq!(timer.sleep(Duration::ZERO).now_or_never(), Some(()));
    assert_eq!(sleep(Duration::ZERO).now_or_never(), Some(()));
    assert_eq!(held(&timer), 0);
    assert_eq!(coarse(&timer), 0);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn dropping_a_delay_gives_back_its_kernel_timer_and_the_bound_holds() {
    // A span longer than the delay: each goes to its kernel timer on its first poll.
    let timer = DelayTimer::new(2, Duration::from_secs(3600));
    let delay = Duration::from_secs(600);
    let mut first = Box::pin(timer.sleep(delay));
    let mut second = Box::pin(timer.sleep(delay));
    let mut third = Box::pin(timer.sleep(delay));
    assert_eq!(futures::poll!(&mut first), Poll::Pending);
    assert_eq!(futures::poll!(&mut second), Poll::Pending);
    assert_eq!(held(&timer), 2);
    assert_eq!(futures::poll!(&mut third), Poll::Pending);
    assert_eq!(held(&timer), 2, "a third kernel timer past a bound of two");
    assert_eq!(coarse(&timer), 1, "the third delay waits on tokio's timer");
    drop(first);
    assert_eq!(held(&timer), 1);
    let mut fourth = Box::pin(timer.sleep(delay));
    assert_eq!(futures::poll!(&mut fourth), Poll::Pending);
    assert_eq!(held(&timer), 2, "the freed place is taken again");
    assert_eq!(coarse(&timer), 1);
    drop((second, third, fourth));
    assert_eq!(held(&timer), 0);
}

#[tokio::test]
async fn a_long_delay_holds_no_kernel_timer_before_its_last_span() {
    let timer = DelayTimer::new(4, PRECISE_SPAN);
    let mut long = Box::pin(timer.sleep(Duration::from_secs(600)));
    assert_eq!(futures::poll!(&mut long), Poll::Pending);
    assert_eq!(held(&timer), 0);
    assert_eq!(coarse(&timer), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_delays_at_once_all_end_never_early_and_give_back_their_timers() {
    const DELAYS: u64 = 2000;
    // Fewer kernel timers than delays at once, so the bound is met on the way.
    static TIMER: DelayTimer = DelayTimer::new(64, PRECISE_SPAN);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..DELAYS {
        let delay = Duration::from_micros(1 + (index * 37) % 4000);
        tasks.spawn(async move {
            let start = Instant::now();
            TIMER.sleep(delay).await;
            (delay, start.elapsed())
        });
    }
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        let mut ended = Vec::new();
        while let Some(result) = tasks.join_next().await {
            ended.push(result.expect("a delay task panicked"));
        }
        ended
    })
    .await
    .expect("every delay ended within 60 s");
    assert_eq!(ended.len() as u64, DELAYS);
    for (delay, elapsed) in ended {
        assert!(elapsed >= delay, "{delay:?} ended after {elapsed:?}");
    }
    assert_eq!(held(&TIMER), 0);
}
