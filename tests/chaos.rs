//! The chaos suite's short form, as CI runs it: `sim/chaos.sh` against this build, every
//! scenario in `sim/` with its expected outcome (the unsafe one must have its loss
//! caught). Takes several minutes; its table is printed.

use std::process::Command;

#[test]
fn every_chaos_scenario_meets_its_expected_outcome() {
    let out = tempfile::tempdir().expect("temporary directory");
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/sim/chaos.sh"))
        .env("CARTWHEEL", env!("CARGO_BIN_EXE_cartwheel"))
        .env("CHAOS_OUT", out.path())
        .output()
        .expect("bash runs sim/chaos.sh");
    let table = String::from_utf8_lossy(&output.stdout);
    println!("{table}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        // The table names this directory for the summaries and node logs: keep it.
        let kept = out.keep();
        eprintln!("kept {} for the failed run", kept.display());
    }
    assert!(
        output.status.success(),
        "a scenario missed its expected outcome:\n{table}"
    );
    assert_eq!(table.matches("| pass").count(), 12, "{table}");
    assert!(table.contains("| unsafe-w1 | pass (caught)"), "{table}");
}
