//! Tests of the timeline: SVG structure, escaping, degenerate input and bucketing.

use super::*;

/// Checks XML well-formedness as far as this renderer needs: every tag is closed in
/// order, and text and attributes hold no raw `<` and only known entities.
fn assert_well_formed(svg: &str) {
    let mut open: Vec<String> = Vec::new();
    let mut rest = svg
        .strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
        .expect("XML declaration");
    let mut roots = 0;
    while let Some(start) = rest.find('<') {
        assert_entities(&rest[..start]);
        let end = start + rest[start..].find('>').expect("tag is closed with >");
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "raw < inside tag {tag}");
        assert_entities(tag);
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                open.pop().as_deref(),
                Some(name),
                "closing tag out of order"
            );
        } else {
            let name = tag.split([' ', '/', '\n']).next().expect("tag name");
            assert!(!name.is_empty(), "empty tag name");
            if open.is_empty() {
                roots += 1;
            }
            if !tag.ends_with('/') {
                open.push(name.to_string());
            }
        }
        rest = &rest[end + 1..];
    }
    assert_entities(rest);
    assert!(rest.trim().is_empty(), "text after the root element");
    assert!(open.is_empty(), "unclosed tags: {open:?}");
    assert_eq!(roots, 1, "exactly one root element");
}

fn assert_entities(text: &str) {
    for (index, _) in text.match_indices('&') {
        let entity = &text[index..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|known| entity.starts_with(known)),
            "bare & in {text:?}"
        );
    }
}

fn point(t_s: f64, ops_per_s: f64, error_rate: f64, p99_ms: Option<f64>) -> Point {
    Point {
        t_s,
        ops_per_s,
        error_rate,
        p99_ms,
    }
}

fn example() -> Timeline {
    let wave = |region: usize, t_s: f64| {
        let down = (20.0..35.0).contains(&t_s) && region == 1;
        let ops = if down {
            40.0
        } else {
            900.0 + 60.0 * (t_s / 4.0 + region as f64).sin()
        };
        let errors = if down { 0.6 } else { 0.002 * region as f64 };
        let p99 = if down {
            480.0
        } else {
            35.0 + 20.0 * region as f64 + 5.0 * (t_s / 3.0).cos()
        };
        point(t_s, ops, errors, Some(p99))
    };
    let series = ["eu-west", "us-east", "ap-south"]
        .iter()
        .enumerate()
        .map(|(region, name)| RegionSeries {
            region: name.to_string(),
            points: (0..60).map(|step| wave(region, step as f64)).collect(),
        })
        .collect();
    Timeline {
        title: "chaos run: partition us-east <seed 42> & heal".to_string(),
        series,
        faults: vec![
            FaultWindow {
                start_s: 20.0,
                end_s: 35.0,
                label: "partition us-east".to_string(),
            },
            FaultWindow {
                start_s: 44.0,
                end_s: 47.0,
                label: "kill n3 \"eu\"".to_string(),
            },
        ],
        heal_s: Some(35.0),
        converged_s: Some(38.5),
    }
}

#[test]
fn renders_well_formed_svg_with_one_polyline_per_region_per_panel() {
    let timeline = example();
    let svg = render(&timeline);
    assert_well_formed(&svg);
    assert!(svg.contains(r#"<svg xmlns="http://www.w3.org/2000/svg" width="900""#));
    for series in &timeline.series {
        let marker = format!(
            r#"<polyline class="series" data-region="{}""#,
            series.region
        );
        assert_eq!(svg.matches(&marker).count(), 3, "{}", series.region);
    }
    assert_eq!(svg.matches("<polyline").count(), 3 * timeline.series.len());
    for axis_title in [
        "throughput (ops/s)",
        "errors (%)",
        "p99 latency (ms)",
        "time (s)",
    ] {
        assert!(svg.contains(axis_title), "{axis_title}");
    }
    assert_eq!(svg.matches(r#"class="marker""#).count(), 2);
    assert!(svg.contains("heal 35.0 s") && svg.contains("converged 38.5 s"));
    assert_eq!(render(&timeline), svg, "same input, same bytes");
}

#[test]
fn shades_each_fault_window_with_its_escaped_label() {
    let svg = render(&example());
    assert_eq!(svg.matches(r#"<rect class="fault""#).count(), 2);
    assert!(svg.contains(">partition us-east</text>"));
    assert!(svg.contains(">kill n3 &quot;eu&quot;</text>"));
}

#[test]
fn escapes_the_title_and_region_names() {
    let mut timeline = example();
    timeline.title = "a <&> b 'q'".to_string();
    timeline.series[0].region = "r<1>&\u{1}".to_string();
    let svg = render(&timeline);
    assert_well_formed(&svg);
    assert!(svg.contains("a &lt;&amp;&gt; b &apos;q&apos;</text>"));
    assert!(svg.contains(r#"data-region="r&lt;1&gt;&amp;""#));
    assert!(!svg.contains("<&>"));
}

#[test]
fn renders_empty_and_degenerate_input() {
    let empty = Timeline {
        title: String::new(),
        series: Vec::new(),
        faults: Vec::new(),
        heal_s: None,
        converged_s: None,
    };
    let svg = render(&empty);
    assert_well_formed(&svg);
    assert!(!svg.contains("<polyline"));

    let degenerate = Timeline {
        title: "odd".to_string(),
        series: vec![
            RegionSeries {
                region: "empty".to_string(),
                points: Vec::new(),
            },
            RegionSeries {
                region: "single".to_string(),
                points: vec![point(5.0, 10.0, 0.0, None)],
            },
            RegionSeries {
                region: "odd".to_string(),
                points: vec![
                    point(f64::NAN, 1.0, 0.0, Some(1.0)),
                    point(1.0, f64::INFINITY, f64::NAN, Some(f64::NEG_INFINITY)),
                    point(2.0, 3.0, 0.5, Some(1e300)),
                    point(3.0, -1e300, 0.1, Some(2.0)),
                ],
            },
        ],
        faults: vec![FaultWindow {
            start_s: f64::NAN,
            end_s: 1.0,
            label: "bad".to_string(),
        }],
        heal_s: Some(f64::INFINITY),
        converged_s: None,
    };
    let svg = render(&degenerate);
    assert_well_formed(&svg);
    assert_eq!(svg.matches("<polyline").count(), 9);
    assert!(svg.contains(r#"data-region="empty" points="""#));
    assert!(svg.contains("<circle"), "a lone point is drawn as a dot");
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
    assert!(!svg.contains(r#"class="fault""#) && !svg.contains(r#"class="marker""#));
}

#[test]
fn ticks_are_round_numbers() {
    let axis = Axis::new(0.0, 937.0, 0.0, 100.0);
    assert_eq!(axis.ticks(), vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
    assert_eq!(axis.label(400.0), "400");
    let axis = Axis::new(0.0, 0.7, 0.0, 100.0);
    assert_eq!(axis.label(axis.ticks()[1]), "0.2");
    assert_eq!(Axis::new(-1.0, 1.0, 0.0, 1.0).label(-0.0), "0.0");
}

fn sample(region: &str, start_s: f64, latency_ms: f64, ok: bool) -> Sample {
    Sample {
        region: region.to_string(),
        start_s,
        latency_ms,
        ok,
    }
}

#[test]
fn bucket_computes_rates_errors_and_nearest_rank_p99() {
    let mut samples = Vec::new();
    // Region a, bucket [0, 2): 100 ok ops with latencies 1..=100 ms and 4 failures.
    for index in 0..100 {
        samples.push(sample(
            "a",
            index as f64 * 0.0199,
            f64::from(index + 1),
            true,
        ));
    }
    for _ in 0..4 {
        samples.push(sample("a", 1.5, 9999.0, false));
    }
    // Bucket [2, 4): empty for a. Bucket [4, 6): one failure only.
    samples.push(sample("a", 5.0, 1.0, false));
    samples.push(sample("b", 3.0, 7.0, true));
    samples.push(sample("b", f64::NAN, 7.0, true));
    samples.push(sample("ignored", 100.0, 7.0, true));
    let regions = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let series = bucket(&samples, 2.0, &regions);
    assert_eq!(series.len(), 3);
    let a = &series[0].points;
    assert_eq!(a.len(), 3);
    assert_eq!(a[0], point(0.0, 52.0, 4.0 / 104.0, Some(99.0)));
    assert_eq!(a[1], point(2.0, 0.0, 0.0, None));
    assert_eq!(a[2], point(4.0, 0.5, 1.0, None));
    let b = &series[1].points;
    assert_eq!(b[1], point(2.0, 0.5, 0.0, Some(7.0)));
    assert!(series[2]
        .points
        .iter()
        .all(|p| p.ops_per_s == 0.0 && p.p99_ms.is_none()));
}

#[test]
fn bucket_bounds_the_number_of_buckets_and_handles_empty_input() {
    let regions = vec!["a".to_string()];
    assert_eq!(
        bucket(&[], 1.0, &regions),
        vec![RegionSeries {
            region: "a".to_string(),
            points: Vec::new()
        }]
    );
    let samples = [
        sample("a", 0.0, 1.0, true),
        sample("a", 10_000.0, 1.0, true),
    ];
    let series = bucket(&samples, 0.5, &regions);
    let points = &series[0].points;
    assert!(points.len() <= TIMELINE_BUCKETS_MAX);
    let width_s = points[1].t_s - points[0].t_s;
    assert_eq!(width_s, 5.5, "a whole multiple of the requested width");
    assert_eq!(
        points.iter().map(|p| p.ops_per_s * width_s).sum::<f64>(),
        2.0
    );
    // 1 s buckets would be 10 001 of them: 6 s ones fit.
    assert_eq!(bucket(&samples, f64::NAN, &regions)[0].points.len(), 1667);
}

#[test]
#[ignore = "writes /tmp/timeline-example.svg to look at"]
fn write_example() {
    std::fs::write("/tmp/timeline-example.svg", render(&example())).expect("write example");
}
