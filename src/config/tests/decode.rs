//! Property tests of the topology decoder: whatever a topology file holds (arbitrary
//! bytes, arbitrary text, or TOML of the right shape with hostile numbers and names),
//! loading it gives a `Topology` or a `ConfigError`, never a panic.

use super::super::*;
use proptest::prelude::*;

/// TOML of a topology's shape with any numbers and names, so the decoder gets past the
/// parser into validation (limits, replica counts, the latency matrix).
fn shaped_topology() -> impl Strategy<Value = String> {
    (
        any::<i64>(),
        any::<i64>(),
        proptest::collection::vec(("[a-z0-9/-]{0,12}", any::<i64>(), any::<i64>()), 0..4),
        proptest::collection::vec(("[a-z0-9/]{0,12}", any::<f64>()), 0..4),
        any::<f64>(),
    )
        .prop_map(|(partitions, replicas, regions, rtts, jitter)| {
            let mut text =
                format!("[cluster]\npartitions = {partitions}\nreplicas_per_region = {replicas}\n");
            for (name, nodes, replicas) in regions {
                text += &format!(
                    "[[regions]]\nname = \"{name}\"\nnodes = {}\nreplicas = {replicas}\n",
                    nodes.rem_euclid(2000)
                );
            }
            text += &format!("[latency]\njitter_ms = {jitter:?}\n[latency.rtt_ms]\n");
            for (pair, rtt) in rtts {
                text += &format!("\"{pair}\" = {rtt:?}\n");
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_is_a_topology_or_a_typed_error(text in "\\PC{0,200}") {
        match Topology::parse(&text) {
            Ok(topology) => prop_assert!(!topology.regions.is_empty()),
            Err(ConfigError::Parse { .. } | ConfigError::Invalid { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn shaped_topologies_are_validated_without_panics(text in shaped_topology()) {
        if let Ok(topology) = Topology::parse(&text) {
            let nodes = topology.nodes().count();
            prop_assert!((1..=limits::RING_MEMBERS_MAX).contains(&nodes));
            prop_assert!((1..=limits::PARTITIONS_MAX).contains(&topology.partitions));
        }
    }

    #[test]
    fn arbitrary_bytes_in_a_file_are_a_typed_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topology.toml");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(error) = Topology::load(&path) {
            // The file's path is in every message, so an operator knows which file.
            let invalid = matches!(error, ConfigError::Invalid { .. });
            prop_assert!(error.to_string().contains("topology.toml") || invalid, "{}", error);
        }
    }
}

#[test]
fn a_topology_naming_more_nodes_than_a_ring_holds_is_refused() {
    let mut text = String::new();
    for region in 0..3 {
        text += &format!("[[regions]]\nname = \"r{region}\"\nnodes = 1000\n");
    }
    let error = Topology::parse(&text).unwrap_err().to_string();
    assert!(error.contains("regions[1].nodes"), "{error}");
}

#[test]
fn a_topology_file_past_its_byte_limit_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    let mut text = String::from("[[regions]]\nname = \"a\"\nnodes = 3\n");
    text += &"# padding\n".repeat(limits::TOPOLOGY_BYTES_MAX / 10 + 1);
    std::fs::write(&path, text).unwrap();
    let error = Topology::load(&path).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }), "{error}");
    assert!(error.to_string().contains("huge.toml"), "{error}");
}
