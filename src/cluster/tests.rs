use super::*;

#[test]
fn a_certificate_without_region_is_moved_aside_and_reissued() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path();
    transport::create_cluster_ca(tls).unwrap();
    let node = NodeId::new("a-1").unwrap();
    let region = Region::new("east").unwrap();
    transport::tls::issue_legacy_node_certificate(tls, &node)
        .unwrap()
        .write_files(tls, &node)
        .unwrap();
    ensure_node_certificate(tls, &node, &region).unwrap();
    let reissued = transport::NodeTls::load(tls, &node).unwrap();
    reissued.check_region(&node, &region).unwrap();
    let aside = tls.join(format!(
        "{}.no-region",
        transport::tls::node_key_file(&node)
    ));
    assert!(aside.exists(), "the old key is kept, not overwritten");
    // Already right: untouched.
    ensure_node_certificate(tls, &node, &region).unwrap();
    let again = transport::NodeTls::load(tls, &node).unwrap();
    assert_eq!(again.cert_der, reissued.cert_der);
    // Another region than the topology's: an error, nothing changes.
    let west = Region::new("west").unwrap();
    let error = ensure_node_certificate(tls, &node, &west).unwrap_err();
    assert!(error.to_string().contains("names region east"), "{error}");
    let still = transport::NodeTls::load(tls, &node).unwrap();
    assert_eq!(still.cert_der, reissued.cert_der);
}

#[test]
fn a_node_process_is_known_by_its_id_whatever_the_binary_is_called() {
    // `sh -c SCRIPT ARG0 ARGS..`: the shell's command line names a node, as a renamed
    // or copied binary's would; `; true` keeps the shell from replacing itself.
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "sleep 30; true",
            "renamed-binary",
            "node",
            "--id",
            "east-7",
        ])
        .spawn()
        .unwrap();
    let pid = child.id();
    let (node, other) = (
        NodeId::new("east-7").unwrap(),
        NodeId::new("east-8").unwrap(),
    );
    // Readiness: its command line appears once the exec is through (bounded wait).
    let started = std::time::Instant::now();
    while std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| line.is_empty())
        && started.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::yield_now();
    }
    let seen = process_is_node(pid, &node);
    let other_seen = process_is_node(pid, &other);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen, "the node's own id names it");
    assert!(!other_seen, "another id does not");
    assert!(!process_is_node(pid, &node), "gone once it exited");
    assert!(
        !process_is_node(std::process::id(), &node),
        "not this test process"
    );
}

#[test]
fn the_prometheus_config_lists_every_node_with_its_labels() {
    let node = |id: &str, region: &str, port: u16| NodeEntry {
        id: NodeId::new(id).unwrap(),
        region: Region::new(region).unwrap(),
        http: format!("127.0.0.1:{port}").parse().unwrap(),
        quic: "127.0.0.1:1".parse().unwrap(),
        resp: None,
        pid: 1,
    };
    let file = ClusterFile {
        topology: "t.toml".into(),
        args: Vec::new(),
        nodes: vec![node("east-1", "east", 4001), node("west-1", "west", 4002)],
    };
    let config = file.prometheus_config();
    assert!(config.contains("metrics_path: /metrics"), "{config}");
    assert!(
        config.contains(
            "      - targets: [\"127.0.0.1:4001\"]\n        labels: {node: \"east-1\", region: \"east\"}\n"
        ),
        "{config}"
    );
    assert!(config.contains("\"127.0.0.1:4002\""), "{config}");
}
