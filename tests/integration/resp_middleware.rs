//! A real web application on an unmodified, published session middleware, over RESP:
//! a Flask shop (tests/middleware/shop_app.py) keeps its sessions through Flask-Session's
//! Redis backend and redis-py, pinned in tests/middleware/requirements.txt and installed
//! into a virtual environment this test creates (cached under the cargo target
//! directory). Two instances serve HTTP, one pointed at a node of each region of a
//! cluster of `cartwheel` processes: a user logs in through one region, fills the cart
//! kept in the session through both, logs out through the other, and the session is
//! gone everywhere. A recording relay in front of each node names every command the
//! middleware sent, so README's list of them is checked here.
//!
//! It needs `python3` with `venv` and `pip` on PATH (CI has them) and, on its first run,
//! PyPI; without python3 it is skipped, saying so (it fails under
//! `CARTWHEEL_REAL_CLIENTS=require`, as `.ci/run` sets).

use crate::common::{self, ProcessCluster};

use bytes::BytesMut;
use cartwheel::resp::codec::Decoder;
use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUIREMENTS: &str = "tests/middleware/requirements.txt";
const SHOP_APP: &str = "tests/middleware/shop_app.py";
/// Creating the virtual environment, and installing the pinned packages into it (a
/// first run downloads them).
const VENV_CREATE_LIMIT: Duration = Duration::from_secs(120);
const PIP_INSTALL_LIMIT: Duration = Duration::from_secs(600);
/// From starting the shop to its "listening PORT" line.
const SHOP_READY_LIMIT: Duration = Duration::from_secs(30);
/// One HTTP request to a shop, or one RESP exchange with a node.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);
/// Distinct command names a relay keeps (the middleware sends a handful).
const COMMAND_NAMES_MAX: usize = 64;
/// Where Flask-Session keeps a session: this prefix (the shop's `SESSION_KEY_PREFIX`)
/// and the session id, which is the cookie's value (no signer).
const SESSION_KEY_PREFIX: &str = "shop:session:";
const SESSION_COOKIE: &str = "session";

/// Two regions of three nodes, every key on three nodes of each (N = 6), 67 ms apart
/// (us-east to us-west, as in regions/default.toml) so that cross-region replication
/// takes real time.
const TWO_REGIONS: &str = r#"
[cluster]
partitions = 64
replicas_per_region = 3
[[regions]]
name = "east"
nodes = 3
[[regions]]
name = "west"
nodes = 3
[latency]
intra_region_rtt_ms = 0.0
jitter_ms = 2.0
[latency.rtt_ms]
"east/west" = 67.0
"#;

/// The levels a shop whose users move between regions runs: `each_quorum` session
/// writes, so that a `local_quorum` read in any region meets every acknowledged write
/// (the default `region_safe` holds one copy outside the writer's region, which a
/// local quorum there may miss). README "Session middleware".
const SHOP_LEVELS: [&str; 2] = ["--user-write", "each_quorum"];

/// The commands the pinned middleware sends for login, cart, read and logout (with
/// `CLIENT`'s subcommand): README "Session middleware" lists these. redis-py asks for
/// `CLIENT MAINT_NOTIFICATIONS` (Redis 8) on a RESP3 connection and goes on without
/// them when refused, as Redis 7.2 (and cartwheel) refuses it.
const MIDDLEWARE_COMMANDS: [&str; 6] = [
    "CLIENT MAINT_NOTIFICATIONS",
    "CLIENT SETINFO",
    "DEL",
    "GET",
    "HELLO",
    "SET",
];

/// Runs `command` with its output in `log`, killing it after `limit`; panics with what
/// it printed unless it succeeded.
fn run_bounded(command: &mut Command, limit: Duration, log: &Path, what: &str) {
    let output = std::fs::File::create(log).expect("log file");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("log file"))
        .stderr(output)
        .spawn()
        .unwrap_or_else(|error| panic!("{what} cannot start: {error}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} took more than {limit:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "{what} failed ({status}):\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// The version line of `python3`, or a failure saying what the test needs.
pub(crate) fn python3_version() -> String {
    let needed = "this test needs python3 with the venv and pip modules on PATH \
                  (Debian: apt-get install python3 python3-venv python3-pip)";
    let output = Command::new("python3")
        .args(["-c", "import sys, venv, ensurepip; print(sys.version)"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("{needed}: python3 cannot run: {error}"));
    assert!(
        output.status.success(),
        "{needed}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The python of a virtual environment with the pinned requirements, made once per
/// requirements file and python version under the cargo target directory. Tests racing
/// to make it each build their own in a temporary directory beside it and rename it into
/// place; the loser uses the winner's.
pub(crate) fn shop_python() -> PathBuf {
    let requirements = common::repo_file(REQUIREMENTS);
    let text = std::fs::read(&requirements).expect("the requirements file");
    let mut hasher = blake3::Hasher::new();
    hasher.update(python3_version().as_bytes());
    hasher.update(&text);
    let hash = hasher.finalize().to_hex();
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = parent.join(format!("test-venv-{}", &hash[..16]));
    let ready = |venv: &Path| venv.join("cartwheel-ready").exists();
    if ready(&venv) {
        return venv.join("bin").join("python");
    }
    std::fs::create_dir_all(parent).expect("the cargo target directory");
    let building = tempfile::Builder::new()
        .prefix("test-venv-building-")
        .tempdir_in(parent)
        .expect("a temporary directory");
    let fresh = building.path().join("venv");
    let log = building.path().join("log.txt");
    println!("creating the virtual environment {}", venv.display());
    run_bounded(
        Command::new("python3").args(["-m", "venv"]).arg(&fresh),
        VENV_CREATE_LIMIT,
        &log,
        "python3 -m venv",
    );
    run_bounded(
        Command::new(fresh.join("bin").join("python"))
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(["--no-input", "--timeout", "30", "--retries", "2", "-r"])
            .arg(&requirements),
        PIP_INSTALL_LIMIT,
        &log,
        "pip install",
    );
    std::fs::write(fresh.join("cartwheel-ready"), &text).expect("mark it ready");
    // A virtual environment moves: its python finds its packages beside itself.
    if let Err(error) = std::fs::rename(&fresh, &venv) {
        assert!(ready(&venv), "cannot move {}: {error}", fresh.display());
    }
    venv.join("bin").join("python")
}

/// A shop process serving HTTP on a loopback port; killed on drop (a panic included).
/// Its standard input stays open while it lives: it exits on its own when that closes,
/// so it dies with the test process even when that is killed.
struct Shop {
    child: Child,
    base: String,
    log: tempfile::NamedTempFile,
    http: reqwest::Client,
}

impl Shop {
    fn start(python: &Path, redis_url: &str, region: &str) -> Shop {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut child = Command::new(python)
            .arg(common::repo_file(SHOP_APP))
            .args(["--redis-url", redis_url, "--region", region])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .expect("the shop starts");
        let stdout = child.stdout.take().expect("its stdout");
        let (sender, receiver) = mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = sender.send(line);
            }
            // Drains whatever else it prints, so that it never blocks on a full pipe.
            for _ in lines {}
        });
        let mut shop = Shop {
            child,
            base: String::new(),
            log,
            http: reqwest::Client::builder()
                .timeout(EXCHANGE_LIMIT)
                .build()
                .expect("an HTTP client"),
        };
        let line = receiver.recv_timeout(SHOP_READY_LIMIT);
        let port = line
            .as_deref()
            .ok()
            .and_then(|line| line.strip_prefix("listening "))
            .and_then(|port| port.parse::<u16>().ok());
        let Some(port) = port else {
            panic!(
                "the {region} shop did not say where it listens within {SHOP_READY_LIMIT:?} \
                 ({line:?}):\n{}",
                shop.printed()
            );
        };
        shop.base = format!("http://127.0.0.1:{port}");
        shop
    }

    fn printed(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends a request with the session cookie, if any: status, JSON body and the
    /// session cookie's value the answer set, if it set one.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, Option<String>) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", format!("{SESSION_COOKIE}={cookie}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{path}: {error}\n{}", self.printed()));
        let status = response.status().as_u16();
        let set_cookie = session_cookie(response.headers());
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body, set_cookie)
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value the answer gives the session cookie (`Set-Cookie: session=VALUE; ...`).
fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .filter_map(|pair| pair.trim().strip_prefix(&format!("{SESSION_COOKIE}=")))
        .map(str::to_string)
        .next()
}

type SeenCommands = Arc<Mutex<BTreeSet<String>>>;

/// A loopback relay to `upstream` that notes the name of every command passing through
/// (with its subcommand for `CLIENT`).
async fn recording_relay(upstream: SocketAddr) -> (SocketAddr, SeenCommands) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("its address");
    let seen = SeenCommands::default();
    let noted = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(client, upstream, noted.clone()));
        }
    });
    (addr, seen)
}

async fn relay(client: TcpStream, upstream: SocketAddr, seen: SeenCommands) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut decoder = Decoder::new();
    let mut pending = BytesMut::new();
    let mut chunk = vec![0; 16 * 1024];
    loop {
        let read = match client_read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if server_write.write_all(&chunk[..read]).await.is_err() {
            break;
        }
        pending.extend_from_slice(&chunk[..read]);
        loop {
            let name = match decoder.decode(&mut pending) {
                Ok(Some(args)) => command_name(&args),
                Ok(None) => break,
                Err(error) => format!("<undecodable: {error}>"),
            };
            let mut seen = seen.lock().expect("not poisoned");
            if seen.len() < COMMAND_NAMES_MAX {
                seen.insert(name);
            }
        }
    }
    let _ = server_write.shutdown().await;
    let _ = answers.await;
}

fn command_name(args: &[bytes::Bytes]) -> String {
    let word = |index: usize| {
        args.get(index)
            .map(|arg| String::from_utf8_lossy(arg).to_uppercase())
            .unwrap_or_default()
    };
    match word(0).as_str() {
        "CLIENT" => format!("CLIENT {}", word(1)),
        name => name.to_string(),
    }
}

async fn connect(addr: SocketAddr) -> MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("a Redis URL");
    tokio::time::timeout(EXCHANGE_LIMIT, client.get_multiplexed_async_connection())
        .await
        .expect("the node answers in time")
        .expect("a RESP connection")
}

/// `EXISTS key` and `GET key` through every node's RESP address: what each answered.
async fn session_everywhere(cluster: &ProcessCluster, key: &str) -> Vec<(String, i64, bool)> {
    let mut found = Vec::new();
    for node in &cluster.nodes {
        let addr = node
            .resp
            .expect("cluster.json names each node's RESP address");
        let mut connection = connect(addr).await;
        let exists: i64 = tokio::time::timeout(
            EXCHANGE_LIMIT,
            redis::cmd("EXISTS").arg(key).query_async(&mut connection),
        )
        .await
        .expect("EXISTS in time")
        .expect("EXISTS");
        let value: Option<Vec<u8>> = tokio::time::timeout(
            EXCHANGE_LIMIT,
            redis::cmd("GET").arg(key).query_async(&mut connection),
        )
        .await
        .expect("GET in time")
        .expect("GET");
        found.push((node.id.to_string(), exists, value.is_some()));
    }
    found
}

/// The commands the relays saw are README's list, and the one cartwheel refuses is
/// refused as Redis 7.2 refuses it (which redis-py ignores).
async fn assert_middleware_commands(
    relays: [&SeenCommands; 2],
    node: SocketAddr,
    shops: [&Shop; 2],
) {
    let mut seen = BTreeSet::new();
    for relay in relays {
        seen.extend(relay.lock().expect("not poisoned").iter().cloned());
    }
    println!("commands the middleware sent: {seen:?}");
    let expected: BTreeSet<String> = MIDDLEWARE_COMMANDS
        .iter()
        .map(|name| name.to_string())
        .collect();
    assert_eq!(
        seen,
        expected,
        "east:\n{}\nwest:\n{}",
        shops[0].printed(),
        shops[1].printed()
    );
    let mut connection = connect(node).await;
    let refused = tokio::time::timeout(
        EXCHANGE_LIMIT,
        redis::cmd("CLIENT")
            .arg(&[
                "MAINT_NOTIFICATIONS",
                "ON",
                "moving-endpoint-type",
                "internal-ip",
            ])
            .query_async::<()>(&mut connection),
    )
    .await
    .expect("CLIENT MAINT_NOTIFICATIONS in time")
    .expect_err("refused as Redis 7.2 does");
    assert!(
        refused.to_string().contains("unknown subcommand"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flask_session_started_in_one_region_goes_on_in_another_and_ends_everywhere() {
    let found = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success());
    let hint = "this test runs a Flask shop in a virtual environment: python3 with the venv \
                and pip modules (Debian: apt-get install python3 python3-venv python3-pip)";
    if !crate::common::real_client_available("python3 with venv and pip", found, hint) {
        return;
    }
    let python = shop_python();
    let cluster = ProcessCluster::up(TWO_REGIONS, &SHOP_LEVELS);
    let resp_of = |id: &str| cluster.node(id).resp.expect("the node serves RESP");
    let (east_relay, east_seen) = recording_relay(resp_of("east-1")).await;
    let (west_relay, west_seen) = recording_relay(resp_of("west-2")).await;
    let east = Shop::start(&python, &format!("redis://{east_relay}/0"), "east");
    let west = Shop::start(&python, &format!("redis://{west_relay}/0"), "west");
    use reqwest::Method;

    // Logged in through the east: the cookie names the session, stored under its key.
    let (status, body, cookie) = east
        .send(Method::POST, "/login", None, Some(json!({"user": "dana"})))
        .await;
    assert_eq!(status, 200, "login: {body}");
    let cookie = cookie.filter(|value| !value.is_empty());
    let cookie = cookie.expect("the login sets the session cookie");
    let key = format!("{SESSION_KEY_PREFIX}{cookie}");
    for (node, exists, value) in session_everywhere(&cluster, &key).await {
        assert!(exists == 1 && value, "{node} does not see the new session");
    }

    // The cart is filled through both regions, each seeing what the other added.
    for (shop, item) in [(&west, "socks"), (&east, "scarf")] {
        let (status, body, _) = shop
            .send(
                Method::POST,
                "/cart",
                Some(&cookie),
                Some(json!({"item": item})),
            )
            .await;
        assert_eq!(status, 200, "adding to the cart: {body}");
    }
    for shop in [&east, &west] {
        let (status, body, _) = shop.send(Method::GET, "/cart", Some(&cookie), None).await;
        assert_eq!(status, 200, "reading the cart: {body}");
        assert_eq!(body["user"], "dana", "{body}");
        assert_eq!(body["cart"], json!(["socks", "scarf"]), "{body}");
    }

    // Logged out through the west: the cookie is cleared, the east no longer knows
    // the session, and no node serves its key.
    let (status, body, cleared) = west
        .send(Method::POST, "/logout", Some(&cookie), None)
        .await;
    assert_eq!(status, 200, "logout: {body}");
    assert_eq!(cleared.as_deref(), Some(""), "the logout clears the cookie");
    let (status, body, _) = east.send(Method::GET, "/cart", Some(&cookie), None).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("not_logged_in")),
        "{body}"
    );
    for (node, exists, value) in session_everywhere(&cluster, &key).await {
        assert!(
            exists == 0 && !value,
            "{node} still serves the ended session"
        );
    }

    assert_middleware_commands([&east_seen, &west_seen], resp_of("east-1"), [&east, &west]).await;
}
