//! The chaos suite as CI runs it: `sim/chaos.sh` against this build, on the scenarios
//! that cover each recovery mechanism once (a region lost whole, a node crashed and its
//! hints, a wiped disk and its new incarnation, a ring change under load) and the
//! deliberately unsafe one, whose loss the checker must catch. Every scenario runs
//! session clients beside its kv clients, so a broken session invariant (a revoked
//! token accepted, an acknowledged cart add missing, a live token refused) fails it
//! too; and RESP (Redis protocol) clients, so a RESP write lost, a deleted value back,
//! a counter out of its bounds or a read behind its own write fails it too. The whole
//! table (twelve scenarios) is `sim/chaos.sh`; its figures are in README.

mod common;

/// The scenarios CI runs on every change (about 3 minutes).
const SCENARIOS: &[&str] = &[
    "region-outage",
    "node-crash",
    "disk-wipe",
    "join-under-load",
    "unsafe-w1",
];

#[test]
fn the_chosen_chaos_scenarios_meet_their_expected_outcomes() {
    let (passed, table) = common::run_sim_script("chaos.sh", SCENARIOS, "CHAOS_OUT");
    assert!(passed, "a scenario missed its expected outcome:\n{table}");
    assert_eq!(table.matches("| pass").count(), SCENARIOS.len(), "{table}");
    assert!(table.contains("| unsafe-w1 | pass (caught)"), "{table}");
    // Session clients ran beside the kv ones ("-" would mean none did), and no session
    // invariant broke: revoked accepted / cart adds missing / live tokens refused.
    for name in SCENARIOS.iter().filter(|name| **name != "unsafe-w1") {
        let row = table
            .lines()
            .find(|line| line.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
        assert!(row.contains("| 0 / 0 / 0 |"), "{row}");
        let (invariants, ran) = resp_columns(row);
        assert_eq!(invariants, "0 / 0 / 0 / 0", "RESP invariants: {row}");
        // RESP clients ran ("-" would mean none did): operations answered, and keys
        // with an acknowledged write read back in every region after the run.
        let answered: u64 = ran.split(" / ").next().unwrap().parse().unwrap();
        let keys: u64 = ran
            .rsplit(", ")
            .next()
            .and_then(|keys| keys.strip_suffix(" keys"))
            .unwrap_or_else(|| panic!("no RESP key count in {row}"))
            .parse()
            .unwrap();
        assert!(answered > 0 && keys > 0, "no RESP work checked: {row}");
    }
}

/// The RESP invariants cell (lost / resurrected / counters out of range / reads behind
/// own writes) and the cell after it ("answered / attempted, p99 .. ms, .. keys").
fn resp_columns(row: &str) -> (&str, &str) {
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let ran = cells
        .iter()
        .position(|cell| cell.contains(", p99 ") && cell.ends_with(" keys"))
        .unwrap_or_else(|| panic!("no RESP column (no RESP clients ran?): {row}"));
    (cells[ran - 1], cells[ran])
}
