use super::*;

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn region() -> Region {
    Region::new("us-east").unwrap()
}

#[test]
fn ca_is_created_once() {
    let dir = tempfile::tempdir().unwrap();
    create_cluster_ca(dir.path()).unwrap();
    assert!(dir.path().join(CA_CERT_FILE).exists());
    let error = create_cluster_ca(dir.path()).unwrap_err();
    assert!(matches!(error, TlsError::AlreadyExists { .. }));
    assert!(error.to_string().contains("refusing to overwrite"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "CA key must not be readable by others");
    }
}

#[test]
fn issued_certificate_names_the_node_and_round_trips_through_files() {
    let ca_dir = tempfile::tempdir().unwrap();
    create_cluster_ca(ca_dir.path()).unwrap();
    let alpha = node("alpha-1");
    let tls = issue_node_certificate(ca_dir.path(), &alpha, &region()).unwrap();
    tls.verify_for(&alpha).unwrap();
    assert!(matches!(
        tls.verify_for(&node("beta-1")),
        Err(TlsError::Untrusted { .. })
    ));

    let node_dir = tempfile::tempdir().unwrap();
    tls.write_files(node_dir.path(), &alpha).unwrap();
    let loaded = NodeTls::load(node_dir.path(), &alpha).unwrap();
    assert_eq!(loaded.cert_der, tls.cert_der);
    assert_eq!(loaded.ca_cert_der, tls.ca_cert_der);
    assert_eq!(loaded.key_der.secret_der(), tls.key_der.secret_der());
    assert!(matches!(
        tls.write_files(node_dir.path(), &alpha),
        Err(TlsError::AlreadyExists { .. })
    ));
    // Loading under another name fails: missing files.
    assert!(matches!(
        NodeTls::load(node_dir.path(), &node("beta-1")),
        Err(TlsError::Io { .. })
    ));
}

#[test]
fn certificate_from_another_ca_is_untrusted() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    create_cluster_ca(first.path()).unwrap();
    create_cluster_ca(second.path()).unwrap();
    let alpha = node("alpha");
    let ours = issue_node_certificate(first.path(), &alpha, &region()).unwrap();
    let theirs = issue_node_certificate(second.path(), &alpha, &region()).unwrap();
    let verifier = IdentityVerifier::new(&ours).unwrap();
    verifier.verify(&ours.cert_der, &alpha).unwrap();
    assert!(verifier.verify(&theirs.cert_der, &alpha).is_err());
}

#[test]
fn mismatched_ca_key_is_detected() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    create_cluster_ca(first.path()).unwrap();
    create_cluster_ca(second.path()).unwrap();
    std::fs::remove_file(first.path().join(CA_KEY_FILE)).unwrap();
    std::fs::copy(
        second.path().join(CA_KEY_FILE),
        first.path().join(CA_KEY_FILE),
    )
    .unwrap();
    assert!(matches!(
        issue_node_certificate(first.path(), &node("alpha"), &region()),
        Err(TlsError::CaMismatch { .. })
    ));
}

#[test]
fn invalid_node_name_and_garbage_pem_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    create_cluster_ca(dir.path()).unwrap();
    let bad = NodeId("Not A DNS Name".into());
    assert!(matches!(
        issue_node_certificate(dir.path(), &bad, &region()),
        Err(TlsError::Name(_))
    ));
    std::fs::write(dir.path().join(node_cert_file(&node("x"))), "garbage").unwrap();
    std::fs::write(dir.path().join(node_key_file(&node("x"))), "garbage").unwrap();
    assert!(matches!(
        NodeTls::load(dir.path(), &node("x")),
        Err(TlsError::Pem { .. })
    ));
}

#[test]
fn a_certificate_binds_its_node_to_one_region() {
    let dir = tempfile::tempdir().unwrap();
    create_cluster_ca(dir.path()).unwrap();
    let alpha = node("alpha");
    let tls = issue_node_certificate(dir.path(), &alpha, &region()).unwrap();
    assert_eq!(
        certificate_region(&tls.cert_der, &alpha).unwrap(),
        Some(region())
    );
    tls.check_region(&alpha, &region()).unwrap();
    let elsewhere = Region::new("eu-west").unwrap();
    let error = tls.check_region(&alpha, &elsewhere).unwrap_err();
    assert!(matches!(error, TlsError::WrongRegion { .. }), "{error}");
    let verifier = IdentityVerifier::new(&tls).unwrap();
    verifier
        .verify_in(&tls.cert_der, &alpha, &region())
        .unwrap();
    assert!(verifier
        .verify_in(&tls.cert_der, &alpha, &elsewhere)
        .is_err());
    assert!(verifier
        .verify_in(&tls.cert_der, &node("beta"), &region())
        .is_err());
}

#[test]
fn a_certificate_without_a_region_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    create_cluster_ca(dir.path()).unwrap();
    let alpha = node("alpha");
    let old = issue(dir.path(), &alpha, None).unwrap();
    old.verify_for(&alpha).unwrap();
    let error = old.check_region(&alpha, &region()).unwrap_err();
    assert!(matches!(error, TlsError::NoRegion { .. }));
    assert!(
        error.to_string().contains("re-run `cartwheel init`"),
        "{error}"
    );
}

#[test]
fn an_edge_certificate_serves_its_hosts_but_never_passes_for_a_node() {
    let dir = tempfile::tempdir().unwrap();
    create_cluster_ca(dir.path()).unwrap();
    let alpha = node("alpha");
    let hosts = vec!["127.0.0.1".to_string(), "alpha".to_string()];
    let (cert, key) = (dir.path().join("edge.pem"), dir.path().join("edge.key"));
    write_edge_certificate(dir.path(), &hosts, &cert, &key).unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chain.len(), 2, "leaf, then the CA");
    let edge = NodeTls {
        ca_cert_der: chain[1].clone(),
        cert_der: chain[0].clone(),
        key_der: PrivateKeyDer::from_pem_file(&key).unwrap(),
    };
    // Even naming a node's id, it carries no region, so a peer check refuses it.
    assert!(edge.check_region(&alpha, &region()).is_err());
    let error = write_edge_certificate(dir.path(), &hosts, &cert, &key).unwrap_err();
    assert!(matches!(error, TlsError::AlreadyExists { .. }), "{error}");
    let nameless = write_edge_certificate(dir.path(), &[], &dir.path().join("x"), &key);
    assert!(nameless.is_err());
    let bad = vec!["not a name!".to_string()];
    let (other_cert, other_key) = (dir.path().join("b.pem"), dir.path().join("b.key"));
    assert!(write_edge_certificate(dir.path(), &bad, &other_cert, &other_key).is_err());
    assert!(!other_key.exists(), "nothing written for a refused host");
}
