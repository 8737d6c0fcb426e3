use super::*;

const THREE: &str = r#"
[cluster]
replicas_per_region = 2
[[regions]]
name = "a"
nodes = 3
[[regions]]
name = "b"
nodes = 3
[[regions]]
name = "c"
nodes = 2
[latency.rtt_ms]
"a/b" = 10
"a/c" = 20
"b/c" = 30
"#;

fn error_of(text: &str) -> String {
    Topology::parse(text).unwrap_err().to_string()
}

#[test]
fn the_shipped_topologies_are_valid() {
    for name in ["default.toml", "local.toml", "bench.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("regions")
            .join(name);
        Topology::load(&path).unwrap_or_else(|error| panic!("{name}: {error}"));
    }
    let default =
        Topology::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("regions/default.toml"))
            .unwrap();
    assert!(default.regions.len() >= 3);
    for spec in &default.regions {
        assert!(spec.nodes.len() >= 3 && spec.nodes.len() > spec.replicas as usize);
        // One node of the region down leaves a majority of its replicas (2 of 3), so
        // `local_quorum` and `each_quorum` are still met.
        let majority = spec.replicas / 2 + 1;
        assert!(
            spec.replicas > majority,
            "{}: {} replicas lose their majority with one node down",
            spec.name,
            spec.replicas
        );
        let nearest = default
            .regions
            .iter()
            .filter(|other| other.name != spec.name)
            .map(|other| default.latency.rtt_between(&spec.name, &other.name))
            .fold(f64::MAX, f64::min);
        assert!(
            nearest < 100.0,
            "{} has no neighbour under 100 ms",
            spec.name
        );
    }
}

#[test]
fn a_valid_topology_names_nodes_by_region() {
    let topology = Topology::parse(THREE).unwrap();
    assert_eq!(topology.replicas_total(), 6);
    assert_eq!(
        topology.region_of(&NodeId("c-2".into())),
        Some(&Region("c".into()))
    );
    assert_eq!(
        topology
            .latency
            .rtt_between(&Region("c".into()), &Region("a".into())),
        20.0
    );
}

#[test]
fn topology_errors_name_the_field_and_rule() {
    let too_many = THREE.replace("replicas_per_region = 2", "replicas_per_region = 3");
    let message = error_of(&too_many);
    assert!(
        message.contains("cluster.replicas_per_region") && message.contains("region c has 2 nodes"),
        "{message}"
    );
    let missing = THREE.replace("\"b/c\" = 30\n", "");
    let message = error_of(&missing);
    assert!(
        message.contains("missing the round trip between b and c"),
        "{message}"
    );
    let unknown = THREE.replace("\"a/b\"", "\"a/z\"");
    assert!(error_of(&unknown).contains("region z is not in the topology"));
    let typo = THREE.replace("nodes = 2", "nodez = 2");
    assert!(error_of(&typo).contains("nodez"), "{}", error_of(&typo));
    let bad_name = THREE.replace("name = \"a\"", "name = \"A B\"");
    assert!(error_of(&bad_name).contains("regions[0].name"));
    let twice = THREE.replace("name = \"b\"", "name = \"a\"");
    assert!(error_of(&twice).contains("listed twice"));
}

#[test]
fn flags_are_checked_against_the_topology() {
    let topology = Topology::parse(THREE).unwrap();
    let flags = TuningFlags {
        w: Some(7),
        ..Default::default()
    };
    let message = Settings::new(topology.clone(), &flags)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("--w") && message.contains("needs 7"),
        "{message}"
    );
    let flags = TuningFlags {
        replicas_per_region: Some(3),
        ..Default::default()
    };
    let message = Settings::new(topology.clone(), &flags)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("--replicas-per-region") && message.contains("region c"),
        "{message}"
    );
    let flags = TuningFlags {
        r: Some(1),
        w: Some(2),
        ..Default::default()
    };
    let settings = Settings::new(topology.clone(), &flags).unwrap();
    assert_eq!(settings.read, Level::Count(1));
    assert!(settings.warnings[0].contains("R + W = 1 + 2 <= N = 6"));
    let defaults = Settings::new(topology, &TuningFlags::default()).unwrap();
    assert_eq!(
        (defaults.read, defaults.write),
        (Level::LocalQuorum, Level::RegionSafe)
    );
    assert!(defaults.warnings.is_empty());
}

#[test]
fn flags_round_trip_to_child_arguments() {
    let flags = TuningFlags {
        replicas_per_region: Some(2),
        read: Some(Level::Quorum),
        w: Some(2),
        ..Default::default()
    };
    assert_eq!(
        flags.to_args(),
        ["--replicas-per-region", "2", "--read", "quorum", "--w", "2"]
    );
}

#[test]
fn every_flag_survives_a_child_command_line() {
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        flags: TuningFlags,
    }
    let flags = TuningFlags {
        durability: Some("flush".parse().unwrap()),
        threads: Some(3),
        probe_interval_ms: Some(500),
        suspicion_multiplier: Some(5),
        hint_window: Some(Duration::from_secs(60)),
        hint_replay_rate: Some(10),
        strict_quorum: true,
        chaos: true,
        ..Default::default()
    };
    let args = std::iter::once("x".to_string()).chain(flags.to_args());
    let parsed = <Wrapper as clap::Parser>::parse_from(args).flags;
    assert_eq!(parsed.to_args(), flags.to_args());
    assert!(parsed.chaos && parsed.strict_quorum);
    assert_eq!(parsed.hint_window, Some(Duration::from_secs(60)));
    assert_eq!(parsed.probe_interval_ms, Some(500));
    assert_eq!(parsed.threads, Some(3));
}

mod decode;

#[test]
fn large_regions_are_recommended_a_larger_q() {
    let with = |nodes: usize, partitions: u32| {
        let text = format!(
            "[cluster]\npartitions = {partitions}\nreplicas_per_region = 3\n\
             [[regions]]\nname = \"a\"\nnodes = {nodes}\n"
        );
        Topology::parse(&text).unwrap().recommended_partitions()
    };
    // The default shape, 4 nodes of which 3 replicas: Q = 1024 is plenty.
    assert_eq!(with(4, 1024), None);
    // 100 nodes: 900 x 97 / 3 = 29100, so 32768 (measured: 16384 misses the bound).
    assert_eq!(with(100, 1024), Some(32_768));
    assert_eq!(with(100, 16_384), Some(32_768));
    assert_eq!(with(100, 32_768), None);
    // The order table bounds it: 1000 nodes may have at most 16384 partitions.
    assert_eq!(with(1000, 1024), Some(16_384));
}
