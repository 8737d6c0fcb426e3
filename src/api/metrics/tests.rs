use super::families::buckets;
use super::*;
use crate::stats::{Histogram, LATENCY_BOUNDS_US};

#[test]
fn latency_buckets_are_written_in_seconds_with_an_unbounded_last() {
    let histogram = Histogram::new(LATENCY_BOUNDS_US);
    histogram.observe(300);
    histogram.observe(10_000_000);
    let written = buckets(&histogram.snapshot(), 1e6);
    assert_eq!(written.len(), LATENCY_BOUNDS_US.len() + 1);
    assert_eq!(written[0], (0.00025, 0));
    assert_eq!(written[1], (0.0005, 1));
    assert_eq!(written.last(), Some(&(f64::INFINITY, 1)));
}

/// One collector's output, encoded the way a scrape is.
fn encode(collector: impl Collector) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    text
}

#[derive(Debug)]
struct OneHistogram(Histogram);

impl Collector for OneHistogram {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut families = Families {
            encoder: &mut encoder,
        };
        families.histograms(
            "cartwheel_request_duration",
            "help",
            Some(&Unit::Seconds),
            [([("op", "read")], self.0.snapshot())],
        )
    }
}

#[test]
fn a_histogram_family_is_written_cumulatively_with_its_sum_and_count() {
    let histogram = Histogram::new(LATENCY_BOUNDS_US);
    histogram.observe(1_500);
    histogram.observe(1_500);
    histogram.observe(3_000_000);
    let text = encode(OneHistogram(histogram));
    assert!(
        text.contains("# TYPE cartwheel_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("cartwheel_request_duration_seconds_bucket{le=\"0.002\",op=\"read\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("cartwheel_request_duration_seconds_bucket{le=\"0.05\",op=\"read\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("cartwheel_request_duration_seconds_bucket{le=\"+Inf\",op=\"read\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("cartwheel_request_duration_seconds_count{op=\"read\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("cartwheel_request_duration_seconds_sum{op=\"read\"} 3.003"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn the_process_figures_are_read_from_proc() {
    let text = encode(ProcessCollector);
    let cpu = text
        .lines()
        .find(|line| line.starts_with("process_cpu_seconds_total"));
    assert!(cpu.is_some(), "{text}");
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        let line = text
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing in {text}"));
        let value: f64 = line.rsplit(' ').next().unwrap().parse().expect("a number");
        assert!(value > 0.0, "{line}");
    }
}
