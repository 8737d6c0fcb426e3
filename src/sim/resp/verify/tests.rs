use super::*;
use crate::sim::resp::history::{CounterWrite, RegisterWrite};

fn register(key: &str, field: Option<&str>, acked: bool) -> Register {
    Register {
        key: key.into(),
        field: field.map(str::to_string),
        writes: vec![RegisterWrite {
            version: Some(1),
            acked,
            sends: 1,
        }],
        reads: Vec::new(),
    }
}

#[test]
fn every_key_is_read_back_once_with_its_hash_fields_together() {
    let result = RespClientResult {
        region: 0,
        index: 0,
        registers: vec![
            register("s0", None, false),
            register("h0", Some("f0"), false),
            register("h0", Some("f1"), true),
        ],
        counters: vec![Counter {
            key: "n0".into(),
            writes: vec![CounterWrite {
                amount: 1,
                sends: 1,
                acked: true,
            }],
            reads: Vec::new(),
        }],
        table: Default::default(),
        samples: Vec::new(),
        truncated: false,
        errors: Vec::new(),
    };
    let results = [result];
    let targets = targets(&results);
    let keys: Vec<&str> = targets.iter().map(Target::key).collect();
    assert_eq!(keys, ["s0", "h0", "n0"]);
    let acked: Vec<bool> = targets.iter().map(Target::acked).collect();
    assert_eq!(acked, [false, true, true]);
    let Target::Hash(_, fields) = &targets[1] else {
        panic!("h0 is a hash");
    };
    assert_eq!(fields.len(), 2);
}

#[test]
fn findings_name_the_rule_and_the_field() {
    let mut lost = register("h0", Some("f1"), true);
    lost.writes.push(RegisterWrite {
        version: Some(2),
        acked: true,
        sends: 1,
    });
    let Some(Finding::Lost(text)) = judge(&lost, Some(1)) else {
        panic!("an older version is lost");
    };
    assert!(text.contains("h0 field f1"), "{text}");
    lost.writes.push(RegisterWrite {
        version: None,
        acked: true,
        sends: 1,
    });
    assert!(matches!(
        judge(&lost, Some(2)),
        Some(Finding::Resurrected(_))
    ));
    assert_eq!(judge(&lost, None), None);
}
