//! Node bundles and node start checks, through the real binary: `cartwheel init
//! --bundles` writes what one node needs, a node runs from it and checks the operator's
//! token with the hash it holds; bad secret files, `--chaos` on a reachable address and
//! a bind to every interface with no address to advertise stop a node at start with a
//! clear error.

use crate::common;

use common::{binary, init_one_node, wait_ready, NodeProcess};
use std::path::PathBuf;
use std::process::{Command, Output};

/// A cluster directory and bundles for a one-node topology, made by `cartwheel init`.
struct Bundled {
    root: tempfile::TempDir,
}

impl Bundled {
    fn new() -> Bundled {
        let root = init_one_node(true);
        Bundled { root }
    }

    fn bundle(&self) -> PathBuf {
        self.root.path().join("bundles").join("local-1")
    }

    fn node(&self, extra: &[&str]) -> Command {
        let bundle = self.bundle();
        let mut command = Command::new(binary());
        command
            .args(["node", "--id", "local-1", "--memory", "--dir"])
            .arg(&bundle)
            .arg("--topology")
            .arg(bundle.join("topology.toml"))
            .args(extra);
        command
    }
}

/// Runs a node that must refuse to start; its output.
fn refused(mut command: Command) -> Output {
    let output = command.output().unwrap();
    assert!(!output.status.success(), "the node started");
    output
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_runs_from_its_bundle_and_checks_the_operator_by_hash() {
    let bundled = Bundled::new();
    let tls = bundled.bundle().join("tls");
    assert!(!tls.join("ca.key").exists() && !tls.join("admin.secret").exists());
    let ready_file = bundled.root.path().join("ready.json");
    let mut child = bundled
        .node(&["--ready-file", ready_file.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_ready(&ready_file, &mut child);
    let _running = NodeProcess(child);
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", ready.http);
    let put = http.put(url("/v1/kv/k")).body("v").send().await.unwrap();
    assert_eq!(put.status(), 204);
    let read = http.get(url("/v1/kv/k")).send().await.unwrap();
    assert_eq!(read.bytes().await.unwrap().as_ref(), b"v");
    // The operator's secret stays in the cluster directory; the node knows its hash.
    let secret =
        cartwheel::cluster::load_admin_secret(&bundled.root.path().join("cluster")).unwrap();
    let remove = |token: String| {
        http.post(url("/v1/admin/remove/nobody-9"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(remove(secret.clone()).await.unwrap().status(), 404);
    assert_eq!(remove(format!("{secret}x")).await.unwrap().status(), 401);
    let hash = std::fs::read_to_string(tls.join("admin.hash")).unwrap();
    assert_eq!(
        remove(hash).await.unwrap().status(),
        401,
        "the hash is not the token"
    );
}

#[test]
fn a_node_refuses_empty_or_short_secret_files_naming_them() {
    let bundled = Bundled::new();
    let session = bundled.bundle().join("tls").join("session.secret");
    let admin = bundled.bundle().join("tls").join("admin.hash");
    std::fs::write(&session, "").unwrap();
    let output = refused(bundled.node(&[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("session.secret"), "{stderr}");
    std::fs::write(&session, "c2hvcnQ\n").unwrap();
    let output = refused(bundled.node(&[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("session.secret") && stderr.contains("32"),
        "{stderr}"
    );
    std::fs::remove_file(&session).unwrap();
    std::fs::write(&admin, "").unwrap();
    let output = refused(bundled.node(&[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("admin.hash"), "{stderr}");
}

#[test]
fn chaos_is_refused_on_an_address_other_than_loopback() {
    let bundled = Bundled::new();
    for (flag, address) in [("--http", "0.0.0.0:0"), ("--quic", "0.0.0.0:0")] {
        let output = refused(bundled.node(&["--chaos", flag, address]));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--chaos") && stderr.contains(address),
            "{stderr}"
        );
    }
}

#[test]
fn a_node_bound_to_every_interface_must_be_told_what_to_advertise() {
    let bundled = Bundled::new();
    let cases = [
        (vec!["--quic", "0.0.0.0:0"], "--advertise-quic", "0.0.0.0:0"),
        (vec!["--http", "[::]:0"], "--advertise-http", "[::]:0"),
        (
            vec!["--advertise-http", "0.0.0.0:8080"],
            "--advertise-http",
            "0.0.0.0:8080",
        ),
    ];
    for (flags, named, address) in cases {
        let output = refused(bundled.node(&flags));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(named) && stderr.contains(address),
            "{flags:?}: {stderr}"
        );
    }
    // A config file may name the advertised addresses like any other flag.
    let config = bundled.root.path().join("node.toml");
    std::fs::write(
        &config,
        "quic = \"0.0.0.0:0\"\nadvertise-quic = \"[::]:7000\"\n",
    )
    .unwrap();
    let output = refused(bundled.node(&["--config", config.to_str().unwrap()]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--advertise-quic [::]:7000"), "{stderr}");
}

#[test]
fn init_rotates_the_session_key_keeping_the_old_ones() {
    let bundled = Bundled::new();
    let dir = bundled.root.path().join("cluster");
    let before = cartwheel::cluster::load_session_secrets(&dir).unwrap();
    let rotate = Command::new(binary())
        .args(["init", "--rotate-session-secret", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    let after = cartwheel::cluster::load_session_secrets(&dir).unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[1..], before[..]);
}
