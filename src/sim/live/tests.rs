use super::*;

#[test]
fn an_interval_shows_each_regions_rate_errors_and_p99_of_that_interval_only() {
    let live = LiveCounts::new(&["east".to_string(), "west".to_string()]);
    live.record("east", 900_000, true);
    let before = live.snapshot();
    for _ in 0..99 {
        live.record("east", 4_000, true);
    }
    live.record("east", 40_000, false);
    live.record("nowhere", 1, true);
    let now = live.snapshot();
    assert_eq!(live.total(), 101);
    let lines = progress_lines(&before, &now, 2.0, 12.0, Some("east-1 killed"));
    assert_eq!(lines[0], "[   12 s] fault: east-1 killed");
    assert!(lines[1].contains("east"), "{lines:?}");
    assert!(lines[1].contains("50 ops/s"), "{lines:?}");
    assert!(lines[1].contains("1 errors"), "{lines:?}");
    // The 900 ms operation was before the interval: the p99 is the 5 ms bucket's.
    assert!(lines[1].ends_with("p99 5 ms"), "{lines:?}");
    assert!(
        lines[2].contains("0 ops/s") && lines[2].ends_with("p99 -"),
        "{lines:?}"
    );
}

#[test]
fn without_a_fault_the_header_says_so() {
    let live = LiveCounts::new(&["east".to_string()]);
    let snapshot = live.snapshot();
    let lines = progress_lines(&snapshot, &snapshot, 2.0, 0.0, None);
    assert_eq!(lines[0], "[    0 s] no fault");
}
