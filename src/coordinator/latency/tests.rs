use super::*;
use proptest::prelude::*;

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

#[test]
fn p99_is_the_bucket_bound_of_the_slowest_hundredth() {
    let mut tracker = LatencyTracker::new();
    let a = node("a-1");
    assert_eq!(tracker.p99_ms(&a, 0), None);
    for _ in 0..99 {
        tracker.record(&a, 2, 0);
    }
    tracker.record(&a, 170, 0);
    // 99 of 100 samples within 2 ms: the p99 is 2 ms, not the outlier.
    assert_eq!(tracker.p99_ms(&a, 0), Some(2));
    tracker.record(&a, 170, 0);
    // Two of 101 above: the p99 is the outlier's bucket.
    assert_eq!(tracker.p99_ms(&a, 0), Some(200));
    tracker.record(&node("b-1"), 9_999, 0);
    assert_eq!(tracker.peers(), 2);
}

#[test]
fn too_few_samples_say_nothing() {
    let mut tracker = LatencyTracker::new();
    let a = node("a-1");
    for _ in 1..limits::LATENCY_SAMPLES_MIN {
        tracker.record(&a, 3, 0);
    }
    assert_eq!(tracker.p99_ms(&a, 0), None);
    tracker.record(&a, 3, 0);
    assert_eq!(tracker.p99_ms(&a, 0), Some(3));
}

#[test]
fn a_slow_spell_leaves_the_window_after_two_halves() {
    let mut tracker = LatencyTracker::new();
    let a = node("a-1");
    let half = limits::LATENCY_WINDOW_MS;
    for _ in 0..100 {
        tracker.record(&a, 200, 0);
    }
    assert_eq!(tracker.p99_ms(&a, half - 1), Some(200));
    for _ in 0..100 {
        tracker.record(&a, 2, half);
    }
    // The slow half is still in the window.
    assert_eq!(tracker.p99_ms(&a, half), Some(200));
    // Past it: only the fast half is left.
    assert_eq!(tracker.p99_ms(&a, 2 * half), Some(2));
    // Past both: nothing.
    assert_eq!(tracker.p99_ms(&a, 3 * half), None);
}

#[test]
fn a_full_table_forgets_the_peer_heard_from_the_longest_ago() {
    let mut tracker = LatencyTracker::new();
    for at in 0..limits::LATENCY_PEERS_MAX {
        let name = format!("n-{at}");
        for _ in 0..limits::LATENCY_SAMPLES_MIN {
            tracker.record(&node(&name), 1, at as u64 + 1);
        }
    }
    tracker.record(&node("late-1"), 1, 10_000);
    assert_eq!(tracker.peers(), limits::LATENCY_PEERS_MAX);
    assert_eq!(tracker.p99_ms(&node("n-0"), 10_000), None);
    assert_eq!(tracker.p99_ms(&node("n-1"), 10_000), Some(1));
}

#[test]
fn the_budget_allows_a_share_of_reads_after_its_burst() {
    let mut budget = SpeculationBudget::default();
    let mut taken = 0;
    for _ in 0..limits::SPECULATION_BURST {
        taken += u64::from(budget.try_take());
    }
    assert_eq!(taken, limits::SPECULATION_BURST);
    assert!(!budget.try_take());
    let reads = 10_000;
    let mut speculated = 0;
    for _ in 0..reads {
        budget.on_read();
        speculated += u64::from(budget.try_take());
    }
    assert_eq!(
        speculated,
        reads * limits::SPECULATION_SHARE_PER_MILLE / 1000
    );
}

#[test]
fn a_peer_asked_and_not_heard_from_is_silent_until_it_answers() {
    let mut tracker = LatencyTracker::new();
    let (a, b) = (node("a-1"), node("b-1"));
    let silent_ms = limits::PEER_SILENT_AFTER_MS;
    assert!(!tracker.is_silent(&a, silent_ms), "never asked");
    tracker.sent(&a, 100);
    // A later request does not restart the wait: it counts from the first unanswered.
    tracker.sent(&a, 600);
    assert!(!tracker.is_silent(&a, 100 + silent_ms - 1));
    assert!(tracker.is_silent(&a, 100 + silent_ms));
    // Another peer that answers each request is never silent.
    for at in [100, 900, 2_000] {
        tracker.sent(&b, at);
        tracker.heard(&b);
    }
    assert!(!tracker.is_silent(&b, 5_000));
    // Its first answer ends the silence; the next wait starts at the next request.
    tracker.heard(&a);
    assert!(!tracker.is_silent(&a, 10_000));
    tracker.sent(&a, 10_000);
    assert!(!tracker.is_silent(&a, 10_000 + silent_ms - 1));
    assert!(tracker.is_silent(&a, 10_000 + silent_ms));
}

#[test]
fn a_silent_peer_is_probed_at_most_once_per_probe_interval() {
    let mut tracker = LatencyTracker::new();
    let a = node("a-1");
    let silent_ms = limits::PEER_SILENT_AFTER_MS;
    let probe_ms = limits::PEER_SILENT_PROBE_MS;
    tracker.sent(&a, 0);
    assert!(!tracker.probe_due(&a, silent_ms - 1), "not silent yet");
    assert!(tracker.probe_due(&a, silent_ms));
    assert!(!tracker.probe_due(&a, silent_ms), "one probe at a time");
    assert!(!tracker.probe_due(&a, silent_ms + probe_ms - 1));
    assert!(tracker.probe_due(&a, silent_ms + probe_ms));
    tracker.heard(&a);
    assert!(
        !tracker.probe_due(&a, silent_ms + 10 * probe_ms),
        "it answered"
    );
}

proptest! {
    /// The p99 lies between the fastest and the slowest sample's bucket bounds, and a
    /// slower sample never lowers it.
    #[test]
    fn p99_is_bounded_and_monotone(samples in prop::collection::vec(0u64..2_000, 20..300), extra in 0u64..2_000) {
        let mut tracker = LatencyTracker::new();
        let a = node("a-1");
        for sample in &samples {
            tracker.record(&a, *sample, 0);
        }
        let bucket = |ms: u64| BUCKET_BOUNDS_MS.iter().copied().find(|bound| ms <= *bound).unwrap_or(LATENCY_OVERFLOW_MS);
        let p99 = tracker.p99_ms(&a, 0).unwrap();
        let low = bucket(*samples.iter().min().unwrap());
        let high = bucket(*samples.iter().max().unwrap());
        prop_assert!(low <= p99 && p99 <= high, "{low} <= {p99} <= {high}");
        let slowest = *samples.iter().max().unwrap();
        tracker.record(&a, slowest.max(extra), 0);
        prop_assert!(tracker.p99_ms(&a, 0).unwrap() >= p99);
    }
}
