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
