use super::*;
use serde_json::json;

fn parse(text: &str) -> Expectations {
    let raw: BTreeMap<String, toml::Value> = toml::from_str(text).unwrap();
    Expectations::parse(&raw).unwrap()
}

#[test]
fn defaults_want_zero_and_convergence() {
    let clean = json!({"lost_acked_writes": 0, "keys_checked": 10, "converged": true});
    assert!(Expectations::default().misses(&clean).is_empty());
    let lost = json!({"lost_acked_writes": 3, "keys_checked": 10, "converged": true});
    assert_eq!(Expectations::default().misses(&lost).len(), 1);
    let apart = json!({"lost_acked_writes": 0, "converged": false});
    assert_eq!(Expectations::default().misses(&apart).len(), 1);
}

#[test]
fn a_caught_violation_passes_and_a_missed_one_fails() {
    let expect = parse("lost_acked_writes = \"some\"\nconverged = \"any\"\n");
    assert!(expect.expects_violation());
    let caught = json!({"lost_acked_writes": 5, "converged": false});
    assert!(expect.misses(&caught).is_empty());
    let missed = json!({"lost_acked_writes": 0, "converged": true});
    assert_eq!(expect.misses(&missed).len(), 1);
    let unknown = parse("resurrected_everything = \"zero\"\n");
    assert_eq!(unknown.misses(&json!({})).len(), 1);
}

#[test]
fn bad_values_are_refused() {
    let raw: BTreeMap<String, toml::Value> = toml::from_str("x = \"lots\"\n").unwrap();
    assert!(Expectations::parse(&raw).is_err());
    let raw: BTreeMap<String, toml::Value> = toml::from_str("x = 3\n").unwrap();
    assert!(Expectations::parse(&raw).is_err());
}
