use super::*;

#[test]
fn the_table_has_defaults_and_is_checked() {
    let mix = RespMix::from_raw(&RawResp::default()).unwrap();
    assert_eq!(mix.clients_per_region, 2);
    assert!(mix.ops_per_s > 0.0);
    for bad in [
        "clients_per_region = 0",
        "ops_per_s = 0.0",
        "keys_per_kind = 0",
        "fields_per_hash = 100000",
    ] {
        let raw: RawResp = toml::from_str(bad).unwrap();
        let error = RespMix::from_raw(&raw).unwrap_err().to_string();
        let field = bad.split(' ').next().unwrap();
        assert!(error.contains(&format!("resp.{field}")), "{error}");
    }
    assert!(toml::from_str::<RawResp>("clients = 1").is_err());
}

#[test]
fn the_summary_holds_the_invariants_and_what_ran() {
    let mut value = json!({ "invariants": {} });
    let verdict = RespVerdict {
        lost: 1,
        resurrected: 2,
        counters_out_of_range: 3,
        read_your_writes: 4,
        ops_ok: 90,
        ops_attempted: 100,
        p99_ms: 12.4,
        acked_keys_checked: 30,
        ..RespVerdict::default()
    };
    add_to_summary(&mut value, &verdict);
    assert_eq!(value["invariants"]["resp_lost"], 1);
    assert_eq!(value["invariants"]["resp_keys_unreadable"], 0);
    assert_eq!(value["invariants"]["resp_read_your_writes"], 4);
    assert_eq!(value["resp"]["ops_attempted"], 100);
    assert_eq!(value["resp"]["acked_keys_checked"], 30);
}
