//! A cluster across network namespaces, each node with an address of its own: proves
//! that nothing between the nodes or towards their clients assumes loopback, and that
//! a node bound to every interface (0.0.0.0) publishes the address it is reached at.
//!
//! The test makes four namespaces named after its pid (`cw<pid>s`, `cw<pid>a`, `b`,
//! `c`): `s` holds a bridge, the switch; each of `a`, `b`, `c` a veth into it with an
//! address in 10.213.0.0/24 and `lo` up. Nothing is added to the host's namespace, so
//! the addresses cannot clash with the machine's networks and every packet the test
//! sends stays inside namespaces it made. Each node runs from its bundle (`cartwheel
//! init --bundles`) as `ip netns exec NS cartwheel node`, one region of 3 nodes with 3
//! replicas: nodes 1 and 3 bind 0.0.0.0:0 and advertise their address with port 0
//! (the bound port), node 2 binds its own address and advertises it by default; 2 and
//! 3 join through 1's advertised QUIC address, read from its ready file.
//!
//! The test reaches the nodes from a thread that joins namespace `a` (`setns`) and
//! speaks HTTP/1.0 over a plain socket: the simplest client that needs no tool on the
//! machine (no curl) and no address on the host. It waits, by bounded polling, for
//! every node to see 3 live members at their namespace addresses, writes a key through
//! node 1 at level `all` and reads it back through node 3. A guard kills the nodes and
//! deletes the namespaces (their links go with them), a panic included, and prints the
//! nodes' logs when the test failed.
//!
//! Where the machine cannot make namespaces (not root, no `ip`, `ip netns add` refused)
//! the test prints `SKIPPED: ...` and passes.

use crate::common;

use cartwheel::cluster::ReadyFile;
use common::{binary, single_region, wait_ready, NodeProcess};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The namespaces' subnet; it exists only inside them.
const SUBNET_PREFIX: [u8; 3] = [10, 213, 0];
const NODES: usize = 3;
/// How long the cluster may take to see all its members.
const CONVERGE_LIMIT: Duration = Duration::from_secs(60);
/// Connect, read and write timeout of one HTTP exchange.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(5);
/// Bytes of one HTTP answer the test reads at most.
const ANSWER_BYTES_MAX: u64 = 1 << 20;

/// The namespaces, links and node processes the test made; dropping it kills the
/// nodes and deletes the namespaces, which deletes the veths and the bridge in them.
struct Network {
    switch: String,
    hosts: Vec<String>,
    made: Vec<String>,
    nodes: Vec<NodeProcess>,
    logs: Vec<PathBuf>,
}

impl Network {
    /// Makes the namespaces; `Err` says why the machine cannot, for the skip message.
    fn create() -> Result<Network, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root, so no network namespaces can be made".into());
        }
        match Command::new("ip").arg("-V").output() {
            Ok(output) if output.status.success() => {}
            _ => return Err("no `ip` command (iproute2)".into()),
        }
        let pid = std::process::id();
        let mut network = Network {
            switch: format!("cw{pid}s"),
            hosts: ["a", "b", "c"].map(|name| format!("cw{pid}{name}")).into(),
            made: Vec::new(),
            nodes: Vec::new(),
            logs: Vec::new(),
        };
        let output = Command::new("ip")
            .args(["netns", "add", &network.switch])
            .output()
            .map_err(|error| format!("`ip netns add` failed: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "`ip netns add` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        network.made.push(network.switch.clone());
        network.wire();
        Ok(network)
    }

    /// The bridge, and each host's namespace, veth and address (past the first
    /// namespace a failure is a failure, not a skip).
    fn wire(&mut self) {
        let switch = self.switch.clone();
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for (index, host) in self.hosts.clone().iter().enumerate() {
            ip(&["netns", "add", host]);
            self.made.push(host.clone());
            let port = format!("p{index}");
            ip(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", host,
            ]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            let address = format!("{}/24", address_of(index));
            ip(&["-n", host, "addr", "add", &address, "dev", "eth0"]);
            ip(&["-n", host, "link", "set", "eth0", "up"]);
            ip(&["-n", host, "link", "set", "lo", "up"]);
        }
    }

    /// Starts node `index` (from 0) in its namespace with `flags`; waits for its ready
    /// file.
    fn start(&mut self, root: &Path, index: usize, flags: &[String]) -> ReadyFile {
        let id = format!("local-{}", index + 1);
        let bundle = root.join("bundles").join(&id);
        let ready_file = root.join(format!("ready-{id}.json"));
        let log = root.join(format!("{id}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                self.hosts[index].as_str(),
                binary(),
                "node",
                "--id",
                &id,
            ])
            .arg("--dir")
            .arg(&bundle)
            .arg("--topology")
            .arg(bundle.join("topology.toml"))
            .args(["--memory", "--resp", "off", "--ready-file"])
            .arg(&ready_file)
            .args(flags)
            .env("NO_COLOR", "1")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        self.logs.push(log);
        // Guarded before the wait, so a node that never gets ready is killed too.
        self.nodes.push(NodeProcess(command.spawn().unwrap()));
        let node = self.nodes.last_mut().unwrap();
        wait_ready(&ready_file, &mut node.0)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // `ip netns exec` execs the node, so each child is the node itself.
        self.nodes.clear();
        if std::thread::panicking() {
            for log in &self.logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                eprintln!("--- {}:\n{text}", log.display());
            }
        }
        for namespace in self.made.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
    }
}

/// Runs `ip ARGS`; panics with its error output when it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Node `index`'s address (10.213.0.1 for the first).
fn address_of(index: usize) -> IpAddr {
    let [a, b, c] = SUBNET_PREFIX;
    IpAddr::V4(Ipv4Addr::new(a, b, c, index as u8 + 1))
}

/// Runs `work` on a thread inside the network namespace `namespace`: the sockets it
/// opens are that namespace's.
fn inside<T: Send>(namespace: &str, work: impl FnOnce() -> T + Send) -> T {
    let path = Path::new("/run/netns").join(namespace);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let handle = std::fs::File::open(&path).unwrap();
                // SAFETY: the descriptor is an open namespace file, and only this
                // thread, which ends after `work`, moves to its namespace.
                let moved = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(
                    moved,
                    0,
                    "setns {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
                work()
            })
            .join()
            .unwrap()
    })
}

/// One HTTP/1.0 exchange (the answer ends with the connection, never chunked): the
/// status code and body, or why it failed.
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, EXCHANGE_LIMIT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(EXCHANGE_LIMIT)).unwrap();
    stream.set_write_timeout(Some(EXCHANGE_LIMIT)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nhost: {addr}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    stream.write_all(body).map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .take(ANSWER_BYTES_MAX)
        .read_to_end(&mut answer)
        .map_err(|e| e.to_string())?;
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let status_line = String::from_utf8_lossy(&answer[..split]);
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line: {status_line}"))?;
    Ok((code, answer[split + 4..].to_vec()))
}

/// A node's `/v1/status`, or why it could not be read.
fn status(addr: SocketAddr) -> Result<cartwheel::api::Status, String> {
    let (code, body) = exchange(addr, "GET", "/v1/status", b"")?;
    if code != 200 {
        return Err(format!("status {code}"));
    }
    serde_json::from_slice(&body).map_err(|error| error.to_string())
}

/// Whether `status` shows every node alive, a member, at its namespace address.
fn sees_everyone(status: &cartwheel::api::Status, nodes: &[ReadyFile]) -> bool {
    nodes.iter().all(|node| {
        status.members.iter().any(|member| {
            member.node == node.id.as_str()
                && member.state == "alive"
                && member.status == "member"
                && member.http == node.http.to_string()
                && member.quic == node.quic.to_string()
        })
    })
}

/// Polls `attempt` until it returns `Some`; panics with the last error after `limit`.
fn poll<T>(
    limit: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Result<Option<T>, String>,
) -> T {
    let deadline = Instant::now() + limit;
    let mut last = String::from("never tried");
    while Instant::now() < deadline {
        match attempt() {
            Ok(Some(value)) => return value,
            Ok(None) => last = "not yet".into(),
            Err(error) => last = error,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} within {limit:?}; last: {last}");
}

/// The flags that bind node `index` to every interface and advertise its address,
/// the bound ports kept (port 0).
fn bound_everywhere(index: usize) -> Vec<String> {
    let advertised = SocketAddr::new(address_of(index), 0).to_string();
    [
        "--quic",
        "0.0.0.0:0",
        "--advertise-quic",
        &advertised,
        "--http",
        "0.0.0.0:0",
        "--advertise-http",
        &advertised,
    ]
    .map(String::from)
    .into()
}

/// Starts the 3 nodes: 1 and 3 bound to every interface, 2 to its own address; 2 and
/// 3 join through 1. Their ready files, which hold the advertised addresses.
fn start_cluster(network: &mut Network, root: &Path) -> [ReadyFile; NODES] {
    let first = network.start(root, 0, &bound_everywhere(0));
    let seeds = vec!["--seeds".to_string(), format!("local-1@{}", first.quic)];
    let own = SocketAddr::new(address_of(1), 0).to_string();
    let second_flags = [
        vec!["--quic".into(), own.clone(), "--http".into(), own],
        seeds.clone(),
    ]
    .concat();
    let second = network.start(root, 1, &second_flags);
    let third = network.start(root, 2, &[bound_everywhere(2), seeds].concat());
    let nodes = [first, second, third];
    for (index, node) in nodes.iter().enumerate() {
        // Advertised: the namespace's address with the bound port, never 0.0.0.0.
        assert_eq!(node.quic.ip(), address_of(index), "{}", node.id);
        assert_eq!(node.http.ip(), address_of(index), "{}", node.id);
        assert_ne!(node.quic.port(), 0);
        assert_ne!(node.http.port(), 0);
    }
    nodes
}

/// Waits until every node sees the 3 members alive at their advertised addresses.
fn wait_members(nodes: &[ReadyFile]) {
    for node in nodes {
        let what = format!("{} sees all 3 members", node.id);
        let seen = poll(CONVERGE_LIMIT, &what, || {
            let status = status(node.http)?;
            Ok(sees_everyone(&status, nodes).then_some(status))
        });
        assert_eq!(seen.members.len(), NODES, "{:?}", seen.members);
        assert_eq!(seen.http, node.http.to_string());
        assert_eq!(seen.quic, node.quic.to_string());
        let members: Vec<String> = seen
            .members
            .iter()
            .map(|member| format!("{} quic {} http {}", member.node, member.quic, member.http))
            .collect();
        println!("{} sees {}", node.id, members.join(", "));
    }
}

/// Writes a key at level `all` through node 1, so every replica holds it when it
/// answers, and reads it back through node 3.
fn write_and_read_across(nodes: &[ReadyFile]) {
    let path = "/v1/kv/across?consistency=all";
    poll(
        CONVERGE_LIMIT,
        "a write at level all through local-1",
        || {
            let (code, body) = exchange(nodes[0].http, "PUT", path, b"namespaces")?;
            match code {
                204 => Ok(Some(())),
                _ => Err(format!("{code}: {}", String::from_utf8_lossy(&body))),
            }
        },
    );
    let (code, body) = exchange(nodes[2].http, "GET", path, b"").unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, b"namespaces");
    for node in nodes {
        let status = status(node.http).unwrap();
        assert_eq!(status.keys, 1, "{} holds the key", node.id);
    }
}

#[test]
fn a_cluster_runs_across_network_namespaces_on_its_own_addresses() {
    let started = Instant::now();
    // Made first so that it outlives the network's guard, which prints the logs in it.
    let root = tempfile::tempdir().unwrap();
    let mut network = match Network::create() {
        Ok(network) => network,
        Err(reason) => {
            println!("SKIPPED: {reason}; this test runs a cluster across network namespaces");
            return;
        }
    };
    // A one-region, 3-node, 3-replica cluster's bundles under `root/bundles`.
    common::init_in(
        root.path(),
        &single_region(NODES as u32, NODES as u32),
        true,
    );
    let nodes = start_cluster(&mut network, root.path());
    inside(&network.hosts[0], || {
        wait_members(&nodes);
        write_and_read_across(&nodes);
    });
    println!("netns cluster test took {:?}", started.elapsed());
}
