//! A chaos run's timeline as a standalone SVG: three stacked panels sharing the time
//! axis (throughput, error rate, p99 latency), one line per region, the fault windows
//! shaded across every panel, and markers at the heal and at convergence.
//!
//! It owns the bucketing of recorded operations into per-region series and the SVG
//! text. It is pure: it reads no clock, touches no disk and draws the same bytes for the
//! same input. It must never panic on what a run recorded: empty input, single points,
//! regions without points and non-finite values (which are skipped) all render.

use std::fmt::{self, Write as _};

/// Most buckets `bucket` produces per region; a run longer than this many requested
/// buckets gets buckets that are a whole multiple of the requested width instead.
pub const TIMELINE_BUCKETS_MAX: usize = 2000;

/// One bucket of one region.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Start of the bucket, seconds since the run started.
    pub t_s: f64,
    pub ops_per_s: f64,
    /// Failed operations over all operations, 0..1.
    pub error_rate: f64,
    /// Nearest-rank p99 of the successful operations; `None` when none succeeded.
    pub p99_ms: Option<f64>,
}

/// The points of one region, drawn as one line per panel.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionSeries {
    pub region: String,
    pub points: Vec<Point>,
}

/// A span of time during which a fault was injected, shaded on the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultWindow {
    pub start_s: f64,
    pub end_s: f64,
    pub label: String,
}

/// Everything one chart shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    pub title: String,
    pub series: Vec<RegionSeries>,
    pub faults: Vec<FaultWindow>,
    /// When the last fault was healed, seconds since the run started.
    pub heal_s: Option<f64>,
    /// When every replica agreed again, seconds since the run started.
    pub converged_s: Option<f64>,
}

/// One recorded operation, as the sim's clients see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub region: String,
    /// When the operation started, seconds since the run started.
    pub start_s: f64,
    pub latency_ms: f64,
    pub ok: bool,
}

/// Groups samples into buckets of `bucket_s` seconds, one series per entry of `regions`
/// (in that order; samples of other regions are ignored).
///
/// Every series has the same buckets, from the earliest sample (or 0, whichever is
/// earlier) to the latest, empty ones included so an outage shows as zero throughput.
/// Per bucket: `ops_per_s` counts every operation over the bucket's width,
/// `error_rate` is failed over all (0 for an empty bucket), `p99_ms` is the nearest-rank
/// p99 of the successful operations' latencies. Samples with a non-finite start are
/// skipped; a successful one with a non-finite latency counts as an operation but not
/// towards p99. A non-positive or non-finite `bucket_s` is treated as 1 s. More than
/// `TIMELINE_BUCKETS_MAX` buckets: the width grows by a whole factor until they fit.
pub fn bucket(samples: &[Sample], bucket_s: f64, regions: &[String]) -> Vec<RegionSeries> {
    let requested_s = if bucket_s.is_finite() && bucket_s > 0.0 {
        bucket_s
    } else {
        1.0
    };
    let wanted = |sample: &&Sample| sample.start_s.is_finite() && regions.contains(&sample.region);
    let (mut first_s, mut last_s) = (0.0_f64, f64::NEG_INFINITY);
    for sample in samples.iter().filter(wanted) {
        first_s = first_s.min(sample.start_s);
        last_s = last_s.max(sample.start_s);
    }
    if last_s == f64::NEG_INFINITY {
        return regions
            .iter()
            .map(|region| RegionSeries {
                region: region.clone(),
                points: Vec::new(),
            })
            .collect();
    }
    let (width_s, count) = bucket_grid(last_s - first_s, requested_s);
    // Per region, per bucket: operations, failures, successful latencies.
    let mut cells: Vec<Vec<(u64, u64, Vec<f64>)>> =
        vec![vec![(0, 0, Vec::new()); count]; regions.len()];
    for sample in samples.iter().filter(wanted) {
        let index = (((sample.start_s - first_s) / width_s).floor() as usize).min(count - 1);
        for (row, region) in regions.iter().enumerate() {
            if *region != sample.region {
                continue;
            }
            let cell = &mut cells[row][index];
            cell.0 += 1;
            if !sample.ok {
                cell.1 += 1;
            } else if sample.latency_ms.is_finite() {
                cell.2.push(sample.latency_ms);
            }
        }
    }
    regions
        .iter()
        .zip(cells)
        .map(|(region, row)| RegionSeries {
            region: region.clone(),
            points: row
                .into_iter()
                .enumerate()
                .map(|(index, (ops, failed, latencies_ms))| Point {
                    t_s: first_s + index as f64 * width_s,
                    ops_per_s: ops as f64 / width_s,
                    error_rate: if ops == 0 {
                        0.0
                    } else {
                        failed as f64 / ops as f64
                    },
                    p99_ms: p99_nearest_rank(latencies_ms),
                })
                .collect(),
        })
        .collect()
}

/// The bucket width and count covering `span_s` with buckets of `requested_s`, widened
/// by a whole factor when more than `TIMELINE_BUCKETS_MAX` would be needed.
fn bucket_grid(span_s: f64, requested_s: f64) -> (f64, usize) {
    let needed = (span_s / requested_s).floor() + 1.0;
    let factor = (needed / TIMELINE_BUCKETS_MAX as f64).ceil().max(1.0);
    let width_s = requested_s * factor;
    let count = ((span_s / width_s).floor() as usize + 1).min(TIMELINE_BUCKETS_MAX);
    (width_s, count)
}

/// The smallest value with at least 99% of the values at or below it.
fn p99_nearest_rank(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (0.99 * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

// ---- chart geometry (pixels) ---------------------------------------------------------

const WIDTH_PX: f64 = 900.0;
const MARGIN_LEFT_PX: f64 = 80.0;
const MARGIN_RIGHT_PX: f64 = 24.0;
const TITLE_BASELINE_PX: f64 = 28.0;
const LEGEND_TOP_PX: f64 = 44.0;
const LEGEND_ROW_PX: f64 = 18.0;
/// Room above the first panel for the fault labels.
const PANEL_HEADROOM_PX: f64 = 40.0;
const PANEL_HEIGHT_PX: f64 = 150.0;
const PANEL_GAP_PX: f64 = 28.0;
/// Room under the last panel for the time ticks and the axis title.
const FOOTER_PX: f64 = 52.0;
/// Rough width of one character of 12 px sans-serif, to lay out the legend.
const CHAR_WIDTH_PX: f64 = 7.0;
const TICKS_TARGET: f64 = 6.0;
/// Most ticks one axis draws, whatever rounding did to the step.
const AXIS_TICKS_MAX: usize = 50;
/// Largest magnitude an axis spans; values beyond it are drawn at the panel's edge.
const AXIS_VALUE_ABS_MAX: f64 = 1e12;

/// Line colours, one per region in order, repeating past the end.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// What one panel plots.
#[derive(Clone, Copy)]
enum Metric {
    Throughput,
    ErrorPercent,
    P99,
}

impl Metric {
    const ALL: [Metric; 3] = [Metric::Throughput, Metric::ErrorPercent, Metric::P99];

    fn axis_title(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput (ops/s)",
            Metric::ErrorPercent => "errors (%)",
            Metric::P99 => "p99 latency (ms)",
        }
    }

    /// The value this panel draws for a point; `None` is skipped.
    fn value(self, point: &Point) -> Option<f64> {
        let value = match self {
            Metric::Throughput => point.ops_per_s,
            Metric::ErrorPercent => point.error_rate * 100.0,
            Metric::P99 => point.p99_ms?,
        };
        (value.is_finite() && point.t_s.is_finite()).then_some(value)
    }
}

/// A linear map from a data range onto a pixel range, with round ticks.
struct Axis {
    low: f64,
    high: f64,
    step: f64,
    pixel_low: f64,
    pixel_high: f64,
}

impl Axis {
    /// Spans `low..high` (widened to round ticks) onto `pixel_low..pixel_high`.
    fn new(low: f64, high: f64, pixel_low: f64, pixel_high: f64) -> Axis {
        let low = low.clamp(-AXIS_VALUE_ABS_MAX, AXIS_VALUE_ABS_MAX);
        let high = high.clamp(-AXIS_VALUE_ABS_MAX, AXIS_VALUE_ABS_MAX);
        let (low, high) = if high > low {
            (low, high)
        } else {
            (low, low + 1.0)
        };
        let step = nice_step((high - low) / TICKS_TARGET);
        Axis {
            low: (low / step).floor() * step,
            high: (high / step).ceil() * step,
            step,
            pixel_low,
            pixel_high,
        }
    }

    fn pixel(&self, value: f64) -> f64 {
        let fraction = (value - self.low) / (self.high - self.low);
        self.pixel_low + fraction.clamp(0.0, 1.0) * (self.pixel_high - self.pixel_low)
    }

    /// The tick values, lowest first.
    fn ticks(&self) -> Vec<f64> {
        let count = (((self.high - self.low) / self.step).round() as usize).min(AXIS_TICKS_MAX);
        (0..=count)
            .map(|index| self.low + index as f64 * self.step)
            .collect()
    }

    /// A tick value with as many decimals as the step needs and no "-0".
    fn label(&self, value: f64) -> String {
        let decimals = (-self.step.log10().floor()).max(0.0) as usize;
        let text = format!("{value:.decimals$}");
        let unsigned = text.trim_start_matches('-');
        if unsigned.chars().all(|c| c == '0' || c == '.') {
            unsigned.to_string()
        } else {
            text
        }
    }
}

/// The round step (1, 2 or 5 times a power of ten) nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10_f64.powf(raw.log10().floor());
    let multiple = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|multiple| multiple * magnitude >= raw)
        .unwrap_or(10.0);
    multiple * magnitude
}

/// Where everything goes, computed once from the input.
struct Layout {
    time: Axis,
    /// Legend entries: (x, y) of each region's swatch.
    legend_px: Vec<(f64, f64)>,
    panels_top_px: f64,
    height_px: f64,
}

impl Layout {
    fn of(timeline: &Timeline) -> Layout {
        let (mut x_px, mut y_px) = (MARGIN_LEFT_PX, LEGEND_TOP_PX);
        let mut legend_px = Vec::with_capacity(timeline.series.len());
        for series in &timeline.series {
            let entry_px = 36.0 + CHAR_WIDTH_PX * series.region.chars().count() as f64;
            if x_px > MARGIN_LEFT_PX && x_px + entry_px > WIDTH_PX - MARGIN_RIGHT_PX {
                x_px = MARGIN_LEFT_PX;
                y_px += LEGEND_ROW_PX;
            }
            legend_px.push((x_px, y_px));
            x_px += entry_px;
        }
        let panels_top_px = y_px + PANEL_HEADROOM_PX;
        let height_px = panels_top_px + 3.0 * PANEL_HEIGHT_PX + 2.0 * PANEL_GAP_PX + FOOTER_PX;
        let (low_s, high_s) = time_range(timeline);
        Layout {
            time: Axis::new(low_s, high_s, MARGIN_LEFT_PX, WIDTH_PX - MARGIN_RIGHT_PX),
            legend_px,
            panels_top_px,
            height_px,
        }
    }

    fn panel_top_px(&self, index: usize) -> f64 {
        self.panels_top_px + index as f64 * (PANEL_HEIGHT_PX + PANEL_GAP_PX)
    }

    fn panels_bottom_px(&self) -> f64 {
        self.panel_top_px(2) + PANEL_HEIGHT_PX
    }
}

/// The earliest and latest finite time anything on the chart refers to; 0..1 if none.
fn time_range(timeline: &Timeline) -> (f64, f64) {
    let points = timeline
        .series
        .iter()
        .flat_map(|series| series.points.iter().map(|point| point.t_s));
    let faults = timeline
        .faults
        .iter()
        .flat_map(|fault| [fault.start_s, fault.end_s]);
    let markers = timeline.heal_s.into_iter().chain(timeline.converged_s);
    let (low, high) = points
        .chain(faults)
        .chain(markers)
        .filter(|t_s| t_s.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), t_s| {
            (low.min(t_s), high.max(t_s))
        });
    if low > high {
        (0.0, 1.0)
    } else {
        (low, high)
    }
}

/// The SVG text being written. Writing into a `String` cannot fail.
struct Svg {
    out: String,
}

impl Svg {
    fn line(&mut self, args: fmt::Arguments) {
        let _ = self.out.write_fmt(args);
        self.out.push('\n');
    }
}

/// Share of operations that succeeded in each region while any fault window was open
/// (regions with no operation then are left out).
pub fn availability(timeline: &Timeline) -> std::collections::BTreeMap<String, f64> {
    let inside = |t: f64| {
        timeline
            .faults
            .iter()
            .any(|window| t >= window.start_s && t < window.end_s.max(window.start_s + 1.0))
    };
    let mut shares = std::collections::BTreeMap::new();
    for series in &timeline.series {
        let (mut ok, mut all) = (0.0, 0.0);
        for point in series.points.iter().filter(|point| inside(point.t_s)) {
            if point.ops_per_s.is_finite() && point.error_rate.is_finite() {
                all += point.ops_per_s;
                ok += point.ops_per_s * (1.0 - point.error_rate);
            }
        }
        if all > 0.0 {
            shares.insert(series.region.clone(), ok / all);
        }
    }
    shares
}

/// Renders the timeline as a standalone SVG document.
pub fn render(timeline: &Timeline) -> String {
    let layout = Layout::of(timeline);
    let mut svg = Svg { out: String::new() };
    svg.line(format_args!(r#"<?xml version="1.0" encoding="UTF-8"?>"#));
    svg.line(format_args!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="sans-serif" font-size="12">"#,
        w = WIDTH_PX,
        h = layout.height_px,
    ));
    svg.line(format_args!(
        r#"<rect x="0" y="0" width="{WIDTH_PX:.0}" height="{:.0}" fill="white"/>"#,
        layout.height_px
    ));
    svg.line(format_args!(
        r#"<text class="title" x="{:.1}" y="{TITLE_BASELINE_PX:.1}" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        WIDTH_PX / 2.0,
        escape(&timeline.title)
    ));
    write_legend(&mut svg, timeline, &layout);
    write_faults(&mut svg, timeline, &layout);
    for (index, metric) in Metric::ALL.into_iter().enumerate() {
        write_panel(&mut svg, timeline, &layout, index, metric);
    }
    write_time_axis(&mut svg, &layout);
    write_markers(&mut svg, timeline, &layout);
    svg.line(format_args!("</svg>"));
    svg.out
}

fn write_legend(svg: &mut Svg, timeline: &Timeline, layout: &Layout) {
    for (index, (series, (x_px, y_px))) in timeline.series.iter().zip(&layout.legend_px).enumerate()
    {
        let colour = PALETTE[index % PALETTE.len()];
        svg.line(format_args!(
            r#"<line class="legend" x1="{x_px:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="3"/>"#,
            x_px + 22.0,
            y = y_px - 4.0,
        ));
        svg.line(format_args!(
            r#"<text x="{:.1}" y="{y_px:.1}">{}</text>"#,
            x_px + 28.0,
            escape(&series.region)
        ));
    }
}

/// One translucent band per fault window, spanning all three panels, labelled on top.
/// Labels of consecutive faults sit on alternating rows so neighbours do not overlap.
fn write_faults(svg: &mut Svg, timeline: &Timeline, layout: &Layout) {
    let top_px = layout.panel_top_px(0);
    let height_px = layout.panels_bottom_px() - top_px;
    for (index, fault) in timeline.faults.iter().enumerate() {
        if !(fault.start_s.is_finite() && fault.end_s.is_finite()) {
            continue;
        }
        let left_px = layout.time.pixel(fault.start_s.min(fault.end_s));
        let right_px = layout.time.pixel(fault.start_s.max(fault.end_s));
        svg.line(format_args!(
            r##"<rect class="fault" x="{left_px:.1}" y="{top_px:.1}" width="{:.1}" height="{height_px:.1}" fill="#f4a582" fill-opacity="0.3"/>"##,
            (right_px - left_px).max(1.0)
        ));
        svg.line(format_args!(
            r##"<text class="fault-label" x="{:.1}" y="{:.1}" fill="#b2182b">{}</text>"##,
            left_px + 2.0,
            top_px - 6.0 - 14.0 * (index % 2) as f64,
            escape(&fault.label)
        ));
    }
}

/// One panel: frame, value ticks with grid lines, time grid lines, one line per region.
fn write_panel(svg: &mut Svg, timeline: &Timeline, layout: &Layout, index: usize, metric: Metric) {
    let top_px = layout.panel_top_px(index);
    let bottom_px = top_px + PANEL_HEIGHT_PX;
    let (left_px, right_px) = (layout.time.pixel_low, layout.time.pixel_high);
    let values = timeline
        .series
        .iter()
        .flat_map(|series| series.points.iter().filter_map(|point| metric.value(point)));
    let (low, high) = values.fold((0.0_f64, f64::NEG_INFINITY), |(low, high), value| {
        (low.min(value), high.max(value))
    });
    let axis = Axis::new(low, high, bottom_px, top_px);
    svg.line(format_args!(r#"<g class="panel">"#));
    for tick in axis.ticks() {
        let y_px = axis.pixel(tick);
        svg.line(format_args!(
            r##"<line x1="{left_px:.1}" y1="{y_px:.1}" x2="{right_px:.1}" y2="{y_px:.1}" stroke="#e0e0e0"/>"##
        ));
        svg.line(format_args!(
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left_px - 6.0,
            y_px + 4.0,
            axis.label(tick)
        ));
    }
    for tick in layout.time.ticks() {
        let x_px = layout.time.pixel(tick);
        svg.line(format_args!(
            r##"<line x1="{x_px:.1}" y1="{top_px:.1}" x2="{x_px:.1}" y2="{bottom_px:.1}" stroke="#f0f0f0"/>"##
        ));
    }
    svg.line(format_args!(
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="middle" transform="rotate(-90 {x:.1} {y:.1})">{}</text>"#,
        metric.axis_title(),
        x = left_px - 56.0,
        y = (top_px + bottom_px) / 2.0,
    ));
    for (series_index, series) in timeline.series.iter().enumerate() {
        write_series(svg, series, series_index, metric, &layout.time, &axis);
    }
    svg.line(format_args!(
        r#"<rect x="{left_px:.1}" y="{top_px:.1}" width="{:.1}" height="{PANEL_HEIGHT_PX:.1}" fill="none" stroke="black"/>"#,
        right_px - left_px
    ));
    svg.line(format_args!("</g>"));
}

/// One polyline (empty when nothing is drawable), plus a dot when a single point would
/// otherwise be invisible. Points are drawn in time order; skipped values are bridged.
fn write_series(
    svg: &mut Svg,
    series: &RegionSeries,
    series_index: usize,
    metric: Metric,
    time: &Axis,
    axis: &Axis,
) {
    let colour = PALETTE[series_index % PALETTE.len()];
    let mut drawable: Vec<(f64, f64)> = series
        .points
        .iter()
        .filter_map(|point| Some((point.t_s, metric.value(point)?)))
        .collect();
    drawable.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut points = String::new();
    for (t_s, value) in &drawable {
        if !points.is_empty() {
            points.push(' ');
        }
        let _ = write!(points, "{:.1},{:.1}", time.pixel(*t_s), axis.pixel(*value));
    }
    svg.line(format_args!(
        r#"<polyline class="series" data-region="{}" points="{points}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-linejoin="round"/>"#,
        escape(&series.region)
    ));
    if let [(t_s, value)] = drawable[..] {
        svg.line(format_args!(
            r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#,
            time.pixel(t_s),
            axis.pixel(value)
        ));
    }
}

fn write_time_axis(svg: &mut Svg, layout: &Layout) {
    let bottom_px = layout.panels_bottom_px();
    for tick in layout.time.ticks() {
        svg.line(format_args!(
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            layout.time.pixel(tick),
            bottom_px + 16.0,
            layout.time.label(tick)
        ));
    }
    svg.line(format_args!(
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time (s)</text>"#,
        (layout.time.pixel_low + layout.time.pixel_high) / 2.0,
        bottom_px + 38.0
    ));
}

/// Dashed vertical lines at the heal and at convergence, labelled under the last panel.
fn write_markers(svg: &mut Svg, timeline: &Timeline, layout: &Layout) {
    let top_px = layout.panel_top_px(0);
    let bottom_px = layout.panels_bottom_px();
    let markers = [
        ("heal", timeline.heal_s, "#2166ac", 0.0),
        ("converged", timeline.converged_s, "#1a9850", 12.0),
    ];
    for (name, at_s, colour, offset_px) in markers {
        let Some(at_s) = at_s.filter(|at_s| at_s.is_finite()) else {
            continue;
        };
        let x_px = layout.time.pixel(at_s);
        svg.line(format_args!(
            r#"<line class="marker" x1="{x_px:.1}" y1="{top_px:.1}" x2="{x_px:.1}" y2="{bottom_px:.1}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="6 4"/>"#
        ));
        svg.line(format_args!(
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}" font-size="11" stroke="white" stroke-width="3" paint-order="stroke">{name} {}</text>"#,
            x_px + 3.0,
            bottom_px - 6.0 - offset_px,
            format_seconds(at_s)
        ));
    }
}

fn format_seconds(value_s: f64) -> String {
    format!("{value_s:.1} s")
}

/// Text safe inside XML content and attribute values. Characters XML 1.0 forbids
/// (control characters other than tab, newline and carriage return) are dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
