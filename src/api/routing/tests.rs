use super::*;

fn map(partitions: u32) -> RingMap {
    let node = |name: &str, state: &str| RingNode {
        node: name.into(),
        region: "r".into(),
        http: format!("127.0.0.1:{}", name.len()),
        state: state.into(),
    };
    RingMap {
        epoch: 1,
        change_pending: false,
        partitions,
        region: "r".into(),
        nodes: vec![node("a", "alive"), node("bb", "dead"), node("ccc", "alive")],
        replicas: (0..partitions)
            .map(|p| {
                if p.is_multiple_of(2) {
                    vec![0, 1]
                } else {
                    vec![2, 1]
                }
            })
            .collect(),
    }
}

#[test]
fn a_key_maps_to_its_partitions_live_replicas() {
    let map = map(8);
    for key in ["a", "b", "session/1", "k-000042"] {
        let partition = ObjectKey::kv(key.as_bytes()).partition(8).0;
        let expected = if partition.is_multiple_of(2) {
            "a"
        } else {
            "ccc"
        };
        let replicas = map.kv_replicas(key.as_bytes());
        assert_eq!(replicas.len(), 1, "the dead replica is left out");
        assert_eq!(replicas[0].node, expected, "key {key}");
    }
}

#[test]
fn a_map_whose_table_does_not_match_its_partition_count_routes_nothing() {
    let mut map = map(8);
    map.partitions = 16;
    assert!(map.kv_replicas(b"a").is_empty());
    map.partitions = 0;
    map.replicas.clear();
    assert!(map.kv_replicas(b"a").is_empty());
}
