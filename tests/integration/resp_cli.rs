//! The real `redis-cli` against a node of a 3-node cluster: `--scan` and `--scan
//! --pattern` list exactly the keys seeded through the other nodes, and commands fed
//! on its standard input are answered as Redis answers them.

use crate::common::{single_region, InProcessCluster};

use cartwheel::config::TuningFlags;
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The longest one `redis-cli` run may take.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Whether `redis-cli` is installed (a skip, or a failure under
/// `CARTWHEEL_REAL_CLIENTS=require`, when not).
fn redis_cli_installed() -> bool {
    let found = std::process::Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    crate::common::real_client_available(
        "redis-cli",
        found,
        "these tests run the real Redis command line client; install it with \
         `apt-get install -y redis-tools` (.ci/run does when it is absent)",
    )
}

/// Runs `redis-cli -h 127.0.0.1 -p port args...` with `input` on its standard input;
/// its standard output.
async fn redis_cli(port: u16, args: &[&str], input: &str) -> String {
    let mut child = tokio::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-cli starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("input written");
    drop(stdin);
    let output = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .expect("redis-cli finishes in time")
        .expect("redis-cli runs");
    assert!(
        output.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("redis-cli prints text")
}

fn lines(output: &str) -> BTreeSet<String> {
    output.lines().map(String::from).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_cli_scans_the_cluster_and_answers_commands_from_stdin() {
    if !redis_cli_installed() {
        return;
    }
    let cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let ports: Vec<u16> = cluster
        .nodes
        .iter()
        .map(|node| node.resp_addr.expect("in-process nodes serve RESP").port())
        .collect();
    // Seeded through nodes 1 and 2; listed through node 0.
    let mut seed = String::new();
    let mut expected = BTreeSet::new();
    for index in 0..40 {
        seed.push_str(&format!("SET cli:{index} {index}\n"));
        expected.insert(format!("cli:{index}"));
    }
    for index in 0..5 {
        seed.push_str(&format!("HSET other:{index} field {index}\n"));
        expected.insert(format!("other:{index}"));
    }
    let (first, second) = seed.split_at(seed.find("SET cli:20 ").expect("the 20th key"));
    redis_cli(ports[1], &[], first).await;
    redis_cli(ports[2], &[], second).await;

    let all = redis_cli(ports[0], &["--scan"], "").await;
    assert_eq!(lines(&all), expected);
    assert_eq!(all.lines().count(), expected.len(), "each key once: {all}");
    let matching = redis_cli(ports[0], &["--scan", "--pattern", "cli:1*"], "").await;
    let tens: BTreeSet<String> = std::iter::once("cli:1".to_string())
        .chain((10..20).map(|index| format!("cli:{index}")))
        .collect();
    assert_eq!(lines(&matching), tens);
    let hashes = redis_cli(ports[0], &["--scan", "--pattern", "other:[0-2]"], "").await;
    assert_eq!(
        lines(&hashes),
        ["other:0", "other:1", "other:2"].map(String::from).into()
    );

    // Commands typed on the standard input, answered in order.
    let typed = "PING\nSET typed hello\nGET typed\nDBSIZE\nTYPE other:0\nGET missing\n";
    let answers = redis_cli(ports[0], &[], typed).await;
    assert_eq!(
        answers.lines().collect::<Vec<_>>(),
        vec!["PONG", "OK", "hello", "46", "hash", ""]
    );
    let read_elsewhere = redis_cli(ports[2], &["GET", "typed"], "").await;
    assert_eq!(read_elsewhere.trim_end(), "hello");
    cluster.shutdown().await;
}
