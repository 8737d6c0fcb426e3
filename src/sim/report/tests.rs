use super::*;

#[test]
fn summary_holds_the_documented_fields() {
    let mut table = Table::new();
    let mut stats = OpStats::default();
    for micros in [1000, 2000, 3000, 50_000] {
        stats.record_ok(micros);
    }
    stats.errors = 2;
    table.insert(("us-east".into(), "read".into()), stats);
    let verdict = Verdict {
        keys_checked: 4,
        lost_acked_writes: 1,
        ..Default::default()
    };
    let value = summary("steady", 7, 2.0, &table, &verdict);
    assert_eq!(value["ops"]["acked"], 4);
    assert_eq!(value["ops"]["failed"], 2);
    assert_eq!(value["invariants"]["lost_acked_writes"], 1);
    let p99 = value["latency_ms"]["us-east"]["read"]["p99"]
        .as_f64()
        .unwrap();
    assert!((49.0..51.0).contains(&p99), "{p99}");
    assert!(render(&table).contains("us-east"));
    let mut class = OpStats::default();
    class.record_ok(1000);
    table.insert(("us-east".into(), "user_write".into()), class);
    let value = summary("steady", 7, 2.0, &table, &verdict);
    assert_eq!(value["ops"]["acked"], 4, "class rows are not counted twice");
    assert!(value["latency_ms"]["us-east"]["user_write"]["p99"].is_number());
}

#[test]
fn the_chaos_row_shows_the_session_invariants_and_availability() {
    let verdict = Verdict::default();
    let mut value = summary("node-crash", 7, 2.0, &Table::new(), &verdict);
    value["availability_during_faults"] = serde_json::json!({ "us-east": 0.9996, "us-west": 1.0 });
    let row = row(&value, false, &[]);
    assert!(row.contains("| us-east 99.9%, us-west 100% |"), "{row}");
    assert!(
        row.ends_with("| - | - | - | - | 0 / 0 | - |"),
        "no session or RESP clients: {row}"
    );
    value["sessions"] = serde_json::json!({});
    value["invariants"]["revoked_token_accepted"] = serde_json::json!(2);
    value["invariants"]["cart_adds_missing"] = serde_json::json!(0);
    value["invariants"]["valid_token_rejected"] = serde_json::json!(5);
    value["session_availability_during_faults"] = serde_json::json!({ "eu-west": 0.5 });
    value["driver"] = serde_json::json!({
        "us-east": { "retries": 3, "failovers": 1 },
        "us-west": { "retries": 4, "failovers": 2 },
    });
    value["latency_ms"] = serde_json::json!({
        "us-east": {
            "read": { "p99": 80.0 },
            "read_during_fault": { "p99": 20.0 },
            "session_read_during_fault": { "p99": 31.0 },
            "user_write": { "p99": 95.0 },
            "session_login": { "p99": 70.0 },
        },
        "us-west": {
            "read": { "p99": 12.0 },
            "user_write_during_fault": { "p99": 99.4 },
        },
    });
    let row = super::row(&value, false, &["revoked_token_accepted = 2".into()]);
    assert!(row.contains("| FAIL |"), "{row}");
    assert!(
        row.contains("| 31 / 99 / 70 |"),
        "the worst region's p99 during faults (whole run where none): {row}"
    );
    assert!(
        row.ends_with("| 2 / 0 / 5 | eu-west 50% | - | - | 7 / 3 | - |"),
        "{row}"
    );
    value["resp"] = serde_json::json!({ "ops_ok": 8, "ops_attempted": 9, "p99_ms": 4.0, "acked_keys_checked": 5 });
    value["invariants"]["resp_read_your_writes"] = serde_json::json!(1);
    value["feed"] = serde_json::json!({
        "missed": 2,
        "regions": { "us-east": { "behinds": 1 }, "us-west": { "behinds": 3 } },
    });
    let row = super::row(&value, false, &[]);
    assert!(
        row.ends_with("| eu-west 50% | 0 / 0 / 0 / 1 | 8 / 9, p99 4 ms, 5 keys | 7 / 3 | 2 / 4 |"),
        "{row}"
    );
}
