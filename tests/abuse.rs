//! The abuse suite's short form, as CI runs it: `sim/abuse.sh --short` against this
//! build. Every attack must be refused, memory must stay within each row's bound, and
//! the legitimate client must keep working; the table is printed.

use std::process::Command;

#[test]
fn every_attack_of_the_short_abuse_suite_is_held() {
    let out = tempfile::tempdir().expect("temporary directory");
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/sim/abuse.sh"))
        .arg("--short")
        .env("CARTWHEEL", env!("CARGO_BIN_EXE_cartwheel"))
        .env("ABUSE_OUT", out.path())
        .output()
        .expect("bash runs sim/abuse.sh");
    let table = String::from_utf8_lossy(&output.stdout);
    println!("{table}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        let kept = out.keep();
        eprintln!("kept {} for the failed run", kept.display());
    }
    assert!(output.status.success(), "an attack got through:\n{table}");
    let rows = table
        .lines()
        .filter(|line| line.starts_with("row: "))
        .count();
    assert_eq!(rows, 8, "one row per attack:\n{table}");
    assert_eq!(table.matches("| pass |").count(), 16, "{table}");
}
