//! The logs of real node processes: with `--log-format json` every line is one JSON
//! object naming its node and region, a request's `x-request-id` names the lines its
//! handler logged, and no secret reaches a log, even at `RUST_LOG=debug`: not a
//! session token or CSRF token issued, not the admin or session secret as the cluster
//! directory stores them, not a RESP password (right or wrong).

use crate::common;

use base64::Engine;
use common::sessions::{code, Client, Session};
use common::{binary, single_region, wait_ready, NodeProcess, ProcessCluster};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Every log file under `dir/logs`, by node id.
fn logs_of(dir: &Path) -> Vec<(String, String)> {
    let mut logs: Vec<(String, String)> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let node = path.file_stem().unwrap().to_string_lossy().into_owned();
            (node, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    logs.sort();
    logs
}

/// The cluster directory's secrets as its files store them, and as hex and as the
/// decoded bytes would print.
fn stored_secrets(dir: &Path) -> Vec<String> {
    let mut secrets = vec![cartwheel::cluster::load_admin_secret(dir).unwrap()];
    let keys = std::fs::read_to_string(cartwheel::cluster::session_secret_path(dir)).unwrap();
    for line in keys.lines() {
        let encoded = line.split_whitespace().last().unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .unwrap();
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        secrets.extend([encoded.to_string(), hex, format!("{bytes:?}")]);
    }
    secrets
}

/// Asserts that no line of `logs` holds any of `secrets`.
fn assert_none_logged(logs: &[(String, String)], secrets: &[String]) {
    for (node, text) in logs {
        for secret in secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{node}'s log holds a secret ({} characters)",
                secret.len()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_name_their_node_and_no_secret_is_logged_at_debug() {
    let cluster = ProcessCluster::up_with_environment(
        &single_region(3, 3),
        &["--log-format", "json"],
        &[("RUST_LOG", "debug")],
    );
    let client = |node: &str| Client {
        http: reqwest::Client::new(),
        base: cluster.url(node, ""),
    };
    let (first, second) = (client("local-1"), client("local-2"));
    let mut issued = Vec::new();
    let mut keep = |session: &Session| issued.extend([session.token.clone(), session.csrf.clone()]);

    let phone = first.login("alice", "phone").await;
    keep(&phone);
    assert_eq!(second.get(&phone).await.0, 200);
    assert_eq!(first.cart(&phone, "add", "sku-1", 2).await.0, 200);
    let forged = Session {
        token: phone.token.clone(),
        csrf: format!("{}x", phone.csrf),
    };
    assert_eq!(first.cart(&forged, "add", "sku-1", 1).await.0, 403);
    let (status, body) = first
        .send(reqwest::Method::POST, "/v1/session/rotate", &phone, None)
        .await;
    assert_eq!(status, 200, "{body}");
    let rotated = Session {
        token: body["token"].as_str().unwrap().to_string(),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    };
    keep(&rotated);
    // The rotated-away token used again, under a request id: refused and logged.
    let reuse = first
        .http
        .get(format!("{}/v1/session", first.base))
        .bearer_auth(&phone.token)
        .header("x-request-id", "reuse-check-1")
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.headers()["x-request-id"], "reuse-check-1");
    assert_eq!(reuse.status(), 401);
    let laptop = second.login("alice", "laptop").await;
    keep(&laptop);
    let (status, _) = second
        .send(reqwest::Method::DELETE, "/v1/session", &laptop, None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = first.get(&laptop).await;
    assert_eq!((status, code(&body)), (401, "token_revoked"));
    let tablet = first.login("alice", "tablet").await;
    keep(&tablet);
    let (status, body) = first
        .send(reqwest::Method::DELETE, "/v1/session/all", &tablet, None)
        .await;
    assert_eq!(status, 200, "{body}");

    let admin = cartwheel::cluster::load_admin_secret(cluster.dir.path()).unwrap();
    let remove = |token: String| {
        first
            .http
            .post(format!("{}/v1/admin/remove/nobody-9", first.base))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(remove(admin.clone()).await.unwrap().status(), 404);
    assert_eq!(remove(format!("{admin}x")).await.unwrap().status(), 401);

    let down = cluster.down();
    assert!(down.status.success());
    let logs = logs_of(cluster.dir.path());
    assert_eq!(logs.len(), 3);
    let mut debug_lines = 0;
    let mut reuse_lines = Vec::new();
    for (node, text) in &logs {
        assert!(!text.is_empty(), "{node} logged nothing");
        for line in text.lines() {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("{node}: not JSON ({error}): {line}"));
            assert_eq!(event["node"], node.as_str(), "{line}");
            assert_eq!(event["region"], "local", "{line}");
            debug_lines += usize::from(event["level"] == "DEBUG");
            if event["fields"]["message"] == "a rotated session token was used again" {
                reuse_lines.push(event);
            }
        }
    }
    assert!(debug_lines > 0, "RUST_LOG=debug reached the nodes");
    assert_eq!(reuse_lines.len(), 1, "{reuse_lines:?}");
    assert_eq!(reuse_lines[0]["node"], "local-1");
    assert_eq!(
        reuse_lines[0]["spans"][0]["request_id"], "reuse-check-1",
        "{}",
        reuse_lines[0]
    );
    let mut secrets = stored_secrets(cluster.dir.path());
    secrets.extend(issued);
    assert!(secrets.len() >= 10);
    assert_none_logged(&logs, &secrets);
}

/// Sends one RESP command; the first line of its answer.
fn resp_command(connection: &mut BufReader<std::net::TcpStream>, words: &[&str]) -> String {
    let mut request = format!("*{}\r\n", words.len());
    for word in words {
        request += &format!("${}\r\n{word}\r\n", word.len());
    }
    connection.get_mut().write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    connection.read_line(&mut line).unwrap();
    line
}

#[test]
fn a_resp_password_is_never_logged_at_debug() {
    let root = tempfile::tempdir().unwrap();
    let topology = root.path().join("topology.toml");
    std::fs::write(&topology, single_region(1, 1)).unwrap();
    let dir = root.path().join("cluster");
    let init = Command::new(binary())
        .args(["init", "--dir"])
        .arg(&dir)
        .arg("--topology")
        .arg(&topology)
        .output()
        .unwrap();
    assert!(init.status.success());
    let password = "resp-password-that-must-stay-secret-7f3a";
    let wrong = "a-wrong-guess-that-must-not-be-logged-either";
    std::fs::write(root.path().join("password"), format!("{password}\n")).unwrap();
    std::fs::create_dir(dir.join("logs")).unwrap();
    let log = std::fs::File::create(dir.join("logs").join("local-1.log")).unwrap();
    let ready_file = root.path().join("ready.json");
    let mut child = Command::new(binary())
        .env("RUST_LOG", "debug")
        .args([
            "node",
            "--log-format",
            "json",
            "--id",
            "local-1",
            "--memory",
        ])
        .arg("--dir")
        .arg(&dir)
        .arg("--topology")
        .arg(&topology)
        .arg("--resp-password-file")
        .arg(root.path().join("password"))
        .arg("--ready-file")
        .arg(&ready_file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let ready = wait_ready(&ready_file, &mut child);
    let node = NodeProcess(child);
    let stream = std::net::TcpStream::connect(ready.resp.unwrap()).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut connection = BufReader::new(stream);
    assert!(resp_command(&mut connection, &["SET", "k", "v"]).starts_with("-NOAUTH"));
    assert!(resp_command(&mut connection, &["AUTH", wrong]).starts_with("-WRONGPASS"));
    assert_eq!(
        resp_command(&mut connection, &["AUTH", password]),
        "+OK\r\n"
    );
    assert!(resp_command(
        &mut connection,
        &["HELLO", "3", "AUTH", "default", password]
    )
    .starts_with('%'));
    drop(connection);
    drop(node);
    let logs = logs_of(&dir);
    assert!(
        logs[0].1.contains("\"DEBUG\""),
        "RUST_LOG=debug reached the node"
    );
    assert_none_logged(&logs, &[password.to_string(), wrong.to_string()]);
}
