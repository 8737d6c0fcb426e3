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
