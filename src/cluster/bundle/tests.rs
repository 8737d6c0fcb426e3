use super::*;
use crate::cluster::{ensure_certificates, load_admin_key, secrets::admin_secret_path};
use crate::config::{Topology, TuningFlags};
use std::os::unix::fs::PermissionsExt;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_bundle_runs_one_node_without_the_ca_key_or_the_admin_secret() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cluster");
    let topology = root.path().join("topology.toml");
    let text = "[[regions]]\nname = \"a\"\nnodes = 2\nreplicas = 1\n";
    std::fs::write(&topology, text).unwrap();
    let settings = Settings::new(Topology::parse(text).unwrap(), &TuningFlags::default()).unwrap();
    ensure_certificates(&dir, &settings).unwrap();
    let out = root.path().join("bundles");
    let bundles = write_bundles(&dir, &topology, &settings, &out).unwrap();
    assert_eq!(bundles.len(), 2);
    let node = NodeId::new("a-1").unwrap();
    let bundle = out.join("a-1");
    let mut names: Vec<String> = std::fs::read_dir(bundle.join("tls"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "admin.hash",
            "ca.pem",
            "node-a-1.key",
            "node-a-1.pem",
            "session.secret"
        ]
    );
    // What the node loads at start.
    NodeTls::load(&bundle.join("tls"), &node).unwrap();
    let secret = load_admin_secret(&dir).unwrap();
    let key = load_admin_key(&bundle).unwrap().expect("an admin key");
    assert!(key.verify(&secret));
    assert!(!key.verify(&format!("{secret}x")));
    assert!(!std::fs::read_to_string(admin_hash_path(&bundle))
        .unwrap()
        .contains(&secret));
    assert_eq!(
        load_session_secrets(&bundle).unwrap(),
        load_session_secrets(&dir).unwrap()
    );
    assert!(bundle.join(BUNDLE_TOPOLOGY_FILE).exists());
    // Readable by the owner only, from the directory down.
    assert_eq!(mode(&bundle), 0o700);
    for private in [
        bundle.join("tls").join("node-a-1.key"),
        session_secret_path(&bundle),
        admin_hash_path(&bundle),
    ] {
        assert_eq!(mode(&private), 0o600, "{}", private.display());
    }
    assert!(!admin_secret_path(&bundle).exists());
    // Another node's key is not in this bundle; bundles are never overwritten.
    assert!(NodeTls::load(&bundle.join("tls"), &NodeId::new("a-2").unwrap()).is_err());
    assert!(write_bundles(&dir, &topology, &settings, &out).is_err());
}
