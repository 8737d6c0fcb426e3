use super::*;

#[test]
fn a_plan_has_both_timers_for_every_delay_and_concurrency() {
    let cells = plan(&[0.25, 35.0], &[1, 200], 10).expect("a valid plan");
    assert_eq!(cells.len(), 8);
    assert_eq!(cells[0].timer, Timer::Tokio);
    assert_eq!(cells[1].timer, Timer::Emulated);
    assert_eq!(cells[1].delay, Duration::from_micros(250));
    assert_eq!(cells[2].delay, Duration::from_millis(35));
    assert_eq!(cells[4].sleepers, 200);
    assert!(cells.iter().all(|cell| cell.sleeps == 10));
}

#[test]
fn a_plan_out_of_bounds_is_refused() {
    assert!(plan(&[1.0], &[1], 0).is_err());
    assert!(plan(&[1.0], &[1], MEASURE_SLEEPS_PER_ROW_MAX + 1).is_err());
    assert!(plan(&[0.0], &[1], 1).is_err());
    assert!(plan(&[-1.0], &[1], 1).is_err());
    assert!(plan(&[f64::NAN], &[1], 1).is_err());
    assert!(plan(&[f64::INFINITY], &[1], 1).is_err());
    assert!(plan(&[MEASURE_DELAY_MS_MAX * 2.0], &[1], 1).is_err());
    assert!(plan(&[1.0], &[0], 1).is_err());
    assert!(plan(&[1.0], &[MEASURE_SLEEPERS_MAX + 1], 1).is_err());
}

#[test]
fn percentiles_are_nearest_rank() {
    let sorted: Vec<i64> = (1..=100).collect();
    assert_eq!(percentile(&sorted, 50.0), 50);
    assert_eq!(percentile(&sorted, 99.0), 99);
    assert_eq!(percentile(&sorted, 100.0), 100);
    assert_eq!(percentile(&[7], 99.0), 7);
    assert_eq!(percentile(&[], 50.0), 0);
}

#[test]
fn lateness_is_signed() {
    let ms = Duration::from_millis;
    assert_eq!(lateness_ns(ms(3), ms(2)), 1_000_000);
    assert_eq!(lateness_ns(ms(2), ms(3)), -1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_counts_every_sleep_and_neither_timer_ends_early() {
    for cell in plan(&[0.25, 1.5], &[1, 3], 7).expect("a valid plan") {
        let row = measure(cell).await;
        assert_eq!(row.early, 0, "{cell:?}");
        assert!(row.late_p50_ns >= 0 && row.late_p50_ns <= row.late_p99_ns);
        assert!(row.late_p99_ns <= row.late_max_ns);
    }
}
