//! The abuse suite's short form, as CI runs it: `sim/abuse.sh --short` against this
//! build. Every attack must be refused, memory must stay within each row's bound, and
//! the legitimate client must keep working; the table is printed.

mod common;

#[test]
fn every_attack_of_the_short_abuse_suite_is_held() {
    let (passed, table) = common::run_sim_script("abuse.sh", &["--short"], "ABUSE_OUT");
    assert!(passed, "an attack got through:\n{table}");
    let rows = table
        .lines()
        .filter(|line| line.starts_with("row: "))
        .count();
    assert_eq!(rows, 8, "one row per attack:\n{table}");
    assert_eq!(table.matches("| pass |").count(), 16, "{table}");
}
