//! Latency histograms per region and operation, the printed table and the JSON summary.

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Highest latency a histogram records (60 s, in microseconds); longer ones are clamped.
pub const LATENCY_US_MAX: u64 = 60_000_000;

/// Outcomes of one (region, operation) pair.
#[derive(Clone)]
pub struct OpStats {
    pub latency_us: Histogram<u64>,
    pub errors: u64,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("valid histogram bounds"),
            errors: 0,
        }
    }
}

impl OpStats {
    pub fn record_ok(&mut self, micros: u64) {
        self.latency_us
            .saturating_record(micros.clamp(1, LATENCY_US_MAX));
    }

    pub fn merge(&mut self, other: &OpStats) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms share bounds");
        self.errors += other.errors;
    }

    fn ms(&self, quantile: f64) -> f64 {
        if self.latency_us.is_empty() {
            return 0.0;
        }
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.latency_us.max() as f64 / 1000.0
    }
}

/// Stats keyed by (region, operation).
pub type Table = BTreeMap<(String, String), OpStats>;

/// Rows that sum other rows (writes per data class of the session workload): listed,
/// but not counted again in `ops`.
pub const CLASS_ROWS: [&str; 2] = ["auth_write", "user_write"];

/// Whether a row repeats operations that another row already counts.
fn is_repeat(op: &str) -> bool {
    op.ends_with("_during_fault") || CLASS_ROWS.contains(&op)
}

/// How many faults are on now: clients count their operations during a fault apart
/// (the `*_during_fault` rows), over the same windows as the timeline's.
#[derive(Debug, Default)]
pub struct FaultsOn {
    on: AtomicUsize,
    /// The last fault step carried out, as its log line says it.
    last: std::sync::Mutex<String>,
}

impl FaultsOn {
    pub fn any(&self) -> bool {
        self.on.load(Ordering::Relaxed) > 0
    }

    pub(super) fn begin(&self) {
        self.on.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn end(&self) {
        // Saturating: a restart with no kill before it ends nothing.
        let _ = self
            .on
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |on| on.checked_sub(1));
    }

    /// Notes the step just carried out (for the live progress lines).
    pub(super) fn note(&self, line: &str) {
        *self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = line.to_string();
    }

    /// The last step carried out while a fault is on.
    pub fn in_force(&self) -> Option<String> {
        let last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (self.any() && !last.is_empty()).then(|| last.clone())
    }
}

/// What the final check found.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    pub keys_checked: u64,
    pub lost_acked_writes: u64,
    pub unreadable_keys: u64,
    /// Reads during the run that found nothing for a key with an acknowledged write.
    pub acked_reads_not_found: u64,
    /// Keys whose last acknowledged operation was a delete, read back with a value.
    pub resurrected_deletes: u64,
    pub examples: Vec<String>,
}

/// Availability per region as the table shows it ("us-east 100%, ..."); "-" if none.
fn shares(value: &Value) -> String {
    let text = value
        .as_object()
        .map(|regions| {
            regions
                .iter()
                .map(|(region, share)| {
                    let percent = share.as_f64().unwrap_or(0.0) * 100.0;
                    // 99.95 % is not 100 %: one decimal below a whole one.
                    if (99.0..100.0).contains(&percent) {
                        format!("{region} {:.1}%", (percent * 10.0).floor() / 10.0)
                    } else {
                        format!("{region} {percent:.0}%")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    if text.is_empty() {
        "-".to_string()
    } else {
        text
    }
}

/// One line for `sim/chaos.sh`'s table (it starts with `row:`): the scenario, its
/// verdict, and the figures the table shows: the kv ones, the worst region's p99 of
/// reads (kv and session), session document writes and logins while faults were on,
/// then the session invariants
/// (revoked tokens accepted / acknowledged cart adds missing / live tokens refused)
/// and the session operations' availability per region while faults were on ("-"
/// without session clients), the RESP invariants and what the RESP clients did
/// (`resp_columns`), and the drivers' retries / failovers over all regions.
pub fn row(summary: &Value, expects_violation: bool, misses: &[String]) -> String {
    let invariants = &summary["invariants"];
    let verdict = match (misses.is_empty(), expects_violation) {
        (true, true) => "pass (caught)",
        (true, false) => "pass",
        (false, _) => "FAIL",
    };
    let number = |value: &Value| value.as_u64().unwrap_or(0);
    let converged = match summary["convergence_s"].as_f64() {
        Some(seconds) => format!("{seconds:.1} s"),
        None => "-".to_string(),
    };
    let availability = shares(&summary["availability_during_faults"]);
    let session_invariants = if summary["sessions"].is_object() {
        format!(
            "{} / {} / {}",
            number(&invariants["revoked_token_accepted"]),
            number(&invariants["cart_adds_missing"]),
            number(&invariants["valid_token_rejected"])
        )
    } else {
        "-".to_string()
    };
    let session_availability = shares(&summary["session_availability_during_faults"]);
    let driver_total = |field: &str| -> u64 {
        summary["driver"]
            .as_object()
            .map(|regions| regions.values().map(|counts| number(&counts[field])).sum())
            .unwrap_or(0)
    };
    let worst = |op: &str| worst_p99_during_faults(summary, op);
    let reads = worst("read").max(worst("session_read"));
    let user_writes = worst("user_write");
    let logins = worst("session_login");
    let resp = resp_columns(summary);
    format!(
        "row: | {} | {verdict} | {} | {} | {} | {} | {converged} | {availability} | {reads:.0} / {user_writes:.0} / {logins:.0} | {session_invariants} | {session_availability} | {resp} | {} / {} | {} |",
        summary["scenario"].as_str().unwrap_or("?"),
        number(&summary["ops"]["acked"]),
        number(&invariants["lost_acked_writes"]),
        number(&invariants["resurrected_deletes"]),
        number(&summary["ops"]["failed"]),
        driver_total("retries"),
        driver_total("failovers"),
        feed_column(summary),
    )
}

/// The chaos table's feed column: acknowledged kv writes no region's feed reported nor
/// covered / "behind" notices the subscribers got; "-" without kv clients.
fn feed_column(summary: &Value) -> String {
    let feed = &summary["feed"];
    if !feed.is_object() {
        return "-".to_string();
    }
    let behinds: u64 = feed["regions"]
        .as_object()
        .map(|regions| {
            regions
                .values()
                .map(|region| region["behinds"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    format!("{} / {behinds}", feed["missed"].as_u64().unwrap_or(0))
}

/// The chaos table's two RESP columns: the invariants (lost / resurrected / counters
/// out of range / reads behind own writes) and what ran (operations answered /
/// attempted, p99, keys with an acknowledged write read back); "-" for both without
/// RESP clients.
fn resp_columns(summary: &Value) -> String {
    let resp = &summary["resp"];
    if !resp.is_object() {
        return "- | -".to_string();
    }
    let invariants = &summary["invariants"];
    let number = |value: &Value| value.as_u64().unwrap_or(0);
    format!(
        "{} / {} / {} / {} | {} / {}, p99 {:.0} ms, {} keys",
        number(&invariants["resp_lost"]),
        number(&invariants["resp_resurrected"]),
        number(&invariants["resp_counters_out_of_range"]),
        number(&invariants["resp_read_your_writes"]),
        number(&resp["ops_ok"]),
        number(&resp["ops_attempted"]),
        resp["p99_ms"].as_f64().unwrap_or(0.0),
        number(&resp["acked_keys_checked"]),
    )
}

/// The highest p99 over the regions of `op` while faults were on (its whole-run row
/// where a region has no operation during a fault), in ms; 0 where no region has it.
fn worst_p99_during_faults(summary: &Value, op: &str) -> f64 {
    let during = format!("{op}_during_fault");
    summary["latency_ms"]
        .as_object()
        .map(|regions| {
            regions
                .values()
                .filter_map(|ops| {
                    let row = ops.get(during.as_str()).unwrap_or(&ops[op]);
                    row["p99"].as_f64()
                })
                .fold(0.0_f64, f64::max)
        })
        .unwrap_or(0.0)
}

/// The printed table: one row per region and operation.
pub fn render(table: &Table) -> String {
    let width = table
        .keys()
        .map(|(_, op)| op.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut text = format!(
        "{:<10} {:<width$} {:>9} {:>7} {:>9} {:>9} {:>9}\n",
        "region", "op", "count", "errors", "p50 ms", "p99 ms", "max ms"
    );
    for ((region, op), stats) in table {
        text.push_str(&format!(
            "{:<10} {:<width$} {:>9} {:>7} {:>9.2} {:>9.2} {:>9.2}\n",
            region,
            op,
            stats.latency_us.len(),
            stats.errors,
            stats.ms(0.5),
            stats.ms(0.99),
            stats.max_ms()
        ));
    }
    text
}

/// The JSON summary written by `--json`.
pub fn summary(
    scenario: &str,
    seed: u64,
    duration_s: f64,
    table: &Table,
    verdict: &Verdict,
) -> Value {
    // Operations during a fault, and writes per class, are also listed apart; count
    // each once.
    let once = || {
        table
            .iter()
            .filter(|((_, op), _)| !is_repeat(op))
            .map(|(_, stats)| stats)
    };
    let acked: u64 = once().map(|stats| stats.latency_us.len()).sum();
    let failed: u64 = once().map(|stats| stats.errors).sum();
    let mut latency = Map::new();
    for ((region, op), stats) in table {
        let region_entry = latency.entry(region.clone()).or_insert_with(|| json!({}));
        region_entry[op] = json!({
            "count": stats.latency_us.len(),
            "errors": stats.errors,
            "p50": stats.ms(0.5),
            "p99": stats.ms(0.99),
            "max": stats.max_ms(),
        });
    }
    json!({
        "scenario": scenario,
        "seed": seed,
        "duration_s": duration_s,
        "ops": { "acked": acked, "failed": failed, "per_s": acked as f64 / duration_s.max(0.001) },
        "invariants": {
            "lost_acked_writes": verdict.lost_acked_writes,
            "unreadable_keys": verdict.unreadable_keys,
            "acked_reads_not_found": verdict.acked_reads_not_found,
            "resurrected_deletes": verdict.resurrected_deletes,
            "keys_checked": verdict.keys_checked,
        },
        "latency_ms": latency,
    })
}

#[cfg(test)]
mod tests;
