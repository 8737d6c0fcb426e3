use super::*;

#[test]
fn a_value_lands_in_the_first_bucket_whose_bound_holds_it() {
    let histogram = Histogram::new(&[10, 20, 30]);
    for value in [0, 10, 11, 20, 30, 31, 1_000] {
        histogram.observe(value);
    }
    let snapshot = histogram.snapshot();
    assert_eq!(snapshot.counts, vec![2, 2, 1, 2]);
    assert_eq!(snapshot.sum, 1_102);
    assert_eq!(snapshot.count(), 7);
}

#[test]
fn durations_count_in_microseconds() {
    let histogram = Histogram::latency();
    histogram.observe_duration(Duration::from_micros(300));
    histogram.observe_duration(Duration::from_secs(60));
    let snapshot = histogram.snapshot();
    assert_eq!(snapshot.counts[1], 1, "300 us is in the 500 us bucket");
    assert_eq!(
        *snapshot.counts.last().unwrap(),
        1,
        "a minute is over every bound"
    );
    assert_eq!(snapshot.sum, 60_000_300);
}

#[test]
fn quantiles_interpolate_inside_their_bucket() {
    let histogram = Histogram::new(&[10, 20]);
    assert_eq!(histogram.snapshot().quantile(0.5), None);
    for _ in 0..10 {
        histogram.observe(15);
    }
    let snapshot = histogram.snapshot();
    assert_eq!(snapshot.quantile(0.5), Some(15.0));
    assert_eq!(snapshot.quantile(1.0), Some(20.0));
    histogram.observe(99);
    assert_eq!(
        histogram.snapshot().quantile(1.0),
        Some(20.0),
        "the unbounded bucket answers the last bound"
    );
}

#[test]
fn a_table_reports_only_the_slots_that_observed() {
    let table = HistogramTable::new(4, SIZE_BOUNDS);
    table.slot(2).observe(3);
    table.slot(2).observe(5);
    let observed: Vec<(usize, u64)> = table
        .observed()
        .map(|(slot, snapshot)| (slot, snapshot.count()))
        .collect();
    assert_eq!(observed, vec![(2, 2)]);
}

#[test]
#[should_panic(expected = "increase")]
fn bounds_out_of_order_are_our_bug() {
    Histogram::new(&[2, 1]);
}
