//! `cartwheel node --config`: a real node process takes its flags from a TOML file
//! (relative paths from the file's folder), the command line wins over the file, and
//! a file with an unknown key or a wrong value stops the node naming the key.

use crate::common;

use common::{binary, init_one_node, wait_ready, NodeProcess};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A one-node cluster directory made by `cartwheel init` beside its topology, and a
/// `conf/` folder for config files: `ROOT/{topology.toml,cluster/,conf/}`.
fn cluster_root() -> tempfile::TempDir {
    let root = init_one_node(false);
    std::fs::create_dir(root.path().join("conf")).unwrap();
    root
}

/// `conf/node.toml`: every path relative to `conf/`, levels and durability that differ
/// from the defaults, and `extra` lines.
fn write_config(root: &Path, extra: &str) -> PathBuf {
    let path = root.join("conf").join("node.toml");
    let text = format!(
        "# a node of the one-node cluster beside this folder\n\
         id = \"local-1\"\n\
         dir = \"../cluster\"\n\
         topology = \"../topology.toml\"\n\
         memory = true\n\
         http = \"127.0.0.1:0\"\n\
         quic = \"127.0.0.1:0\"\n\
         resp = \"off\"\n\
         ready_file = \"ready.json\"\n\
         read = \"one\"\n\
         write = \"all\"\n\
         durability = \"flush\"\n\
         {extra}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `cartwheel node --config config` with `flags` after it; its `/v1/status`.
async fn status_of_node(config: &Path, flags: &[&str]) -> cartwheel::api::Status {
    let ready_file = config.parent().unwrap().join("ready.json");
    let _ = std::fs::remove_file(&ready_file);
    let mut child = Command::new(binary())
        .arg("node")
        .arg("--config")
        .arg(config)
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_ready(&ready_file, &mut child);
    let _running = NodeProcess(child);
    cartwheel::cluster::fetch_status(&reqwest::Client::new(), ready.http)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_runs_from_a_config_file_and_its_command_line_wins() {
    let root = cluster_root();
    let config = write_config(root.path(), "");
    let status = status_of_node(&config, &[]).await;
    assert_eq!(status.node, "local-1");
    assert_eq!(
        (
            status.read.as_str(),
            status.write.as_str(),
            status.durability.as_str()
        ),
        ("one", "all", "flush")
    );
    let status = status_of_node(&config, &["--read", "quorum", "--durability", "none"]).await;
    assert_eq!(
        (
            status.read.as_str(),
            status.write.as_str(),
            status.durability.as_str()
        ),
        ("quorum", "all", "none")
    );
}

/// Runs a node from `conf/node.toml` with `extra` lines, which must refuse to start;
/// its stderr.
fn refused_with(extra: &str) -> String {
    let root = cluster_root();
    let config = write_config(root.path(), extra);
    let output = Command::new(binary())
        .arg("node")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success(), "the node started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_config_file_with_an_unknown_key_or_a_wrong_value_stops_the_node() {
    let stderr = refused_with("replicas_per_regoin = 3\n");
    assert!(
        stderr.contains("unknown key `replicas_per_regoin`")
            && stderr.contains("did you mean `replicas-per-region`")
            && stderr.contains("node.toml"),
        "{stderr}"
    );
    let stderr = refused_with("threads = true\n");
    assert!(
        stderr.contains("`threads`") && stderr.contains("a boolean"),
        "{stderr}"
    );
    let stderr = refused_with("cache-mb = \"lots\"\n");
    assert!(
        stderr.contains("`cache-mb`") && stderr.contains("lots"),
        "{stderr}"
    );
}
