//! The chaos suite's short form, as CI runs it: `sim/chaos.sh` against this build, every
//! scenario in `sim/` with its expected outcome (the unsafe one must have its loss
//! caught). Takes several minutes; its table is printed.

mod common;

#[test]
fn every_chaos_scenario_meets_its_expected_outcome() {
    let (passed, table) = common::run_sim_script("chaos.sh", &[], "CHAOS_OUT");
    assert!(passed, "a scenario missed its expected outcome:\n{table}");
    assert_eq!(table.matches("| pass").count(), 12, "{table}");
    assert!(table.contains("| unsafe-w1 | pass (caught)"), "{table}");
}
