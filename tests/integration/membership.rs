//! Membership over real processes: join through seeds, graceful leave, removal of a
//! dead node, failure detection, the refusals, and forged claims of a peer that holds a
//! valid certificate.

use crate::common;

use cartwheel::ids::{NodeId, Region};
use cartwheel::membership::swim::{
    Liveness, MemberInfo, MemberState, Status, StatusProof, SwimMessage,
};
use cartwheel::runtime::proof;
use cartwheel::transport::{self, Handler, PeerInfo, Transport, TransportConfig, WanModel};
use cartwheel::wire::{PeerRequest, PeerResponse};
use common::{single_region, ProcessCluster};
use std::sync::Arc;
use std::time::Duration;

const KEYS: usize = 150;

async fn write_keys(cluster: &ProcessCluster, via: &str) {
    let http = reqwest::Client::new();
    for i in 0..KEYS {
        let put = http
            .put(cluster.url(via, &format!("/v1/kv/key-{i}?consistency=all")))
            .body(format!("value-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204, "key-{i}");
    }
}

/// Reads every key at `level` through `via`; returns how many were missing or wrong.
async fn missing_keys(cluster: &ProcessCluster, via: &str, level: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut missing = Vec::new();
    for i in 0..KEYS {
        let read = http
            .get(cluster.url(via, &format!("/v1/kv/key-{i}?consistency={level}")))
            .send()
            .await
            .unwrap();
        let status = read.status();
        let body = read.text().await.unwrap();
        if status != 200 || body != format!("value-{i}") {
            missing.push(format!("key-{i}: {status} {body}"));
        }
    }
    missing
}

fn succeeded(output: &std::process::Output) -> bool {
    if !output.status.success() {
        eprintln!(
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.status.success()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_joins_through_the_seeds_and_fetches_its_partitions_without_misses() {
    let mut cluster = ProcessCluster::up(&single_region(3, 2), &[]);
    write_keys(&cluster, "local-1").await;
    // Readers run through the whole join: no acknowledged key may read as missing.
    let reader = {
        let urls: Vec<String> = (0..KEYS)
            .map(|i| cluster.url("local-2", &format!("/v1/kv/key-{i}")))
            .collect();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut misses = 0;
            for round in 0..4 {
                for url in &urls {
                    let status = http.get(url).send().await.unwrap().status();
                    if status != 200 {
                        misses += 1;
                        eprintln!("round {round}: {url} -> {status}");
                    }
                }
            }
            misses
        })
    };
    assert!(succeeded(&cluster.cli(&["add", "--region", "local"])));
    cluster.reload();
    let joined = cluster
        .wait_status("local-4", Duration::from_secs(60), |s| {
            s.members
                .iter()
                .any(|m| m.node == "local-4" && m.status == "member")
        })
        .await;
    assert!(
        joined.partitions_owned > 0,
        "the joiner owns partitions: {joined:?}"
    );
    assert_eq!(joined.partitions_held, joined.partitions_owned);
    assert!(joined.objects_fetched > 0, "it fetched objects");
    assert_eq!(
        reader.await.unwrap(),
        0,
        "keys read as missing during the join"
    );
    assert_eq!(
        missing_keys(&cluster, "local-4", "all").await,
        Vec::<String>::new()
    );
    let refused = cluster.cli(&["add", "--region", "mars"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("region mars is not in the topology"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaving_node_streams_its_partitions_then_exits() {
    let mut cluster = ProcessCluster::up(&single_region(4, 2), &[]);
    write_keys(&cluster, "local-1").await;
    let (pid, id) = (
        cluster.node("local-2").pid,
        cluster.node("local-2").id.clone(),
    );
    assert!(succeeded(&cluster.cli(&["leave", "local-2"])));
    assert!(
        !cartwheel::cluster::process_is_node(pid, &id),
        "the node exited"
    );
    cluster.reload();
    assert_eq!(cluster.nodes.len(), 3);
    let status = cluster
        .wait_status("local-1", Duration::from_secs(20), |s| {
            s.members
                .iter()
                .any(|m| m.node == "local-2" && m.status == "left")
                && !s.ring_change_pending
        })
        .await;
    assert!(
        status
            .members
            .iter()
            .filter(|m| m.status == "member")
            .count()
            == 3
    );
    assert_eq!(
        missing_keys(&cluster, "local-3", "all").await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_dead_node_rebuilds_its_partitions_from_the_other_replicas() {
    let mut cluster = ProcessCluster::up(&single_region(4, 2), &[]);
    write_keys(&cluster, "local-1").await;
    cluster.kill("local-3");
    assert!(succeeded(&cluster.cli(&["remove", "local-3"])));
    cluster.reload();
    for id in ["local-1", "local-2", "local-4"] {
        cluster
            .wait_status(id, Duration::from_secs(30), |s| {
                s.partitions_missing == 0 && s.transfers_in_flight == 0
            })
            .await;
    }
    assert_eq!(
        missing_keys(&cluster, "local-2", "all").await,
        Vec::<String>::new()
    );
    // Balanced placement may also move partitions between the nodes that stay: their
    // old holders drop them once DROP_GRACE_MS has passed.
    let dropped = Duration::from_millis(cartwheel::limits::DROP_GRACE_MS) + Duration::from_secs(30);
    for id in ["local-1", "local-2", "local-4"] {
        cluster
            .wait_status(id, dropped, |s| s.partitions_held == s.partitions_owned)
            .await;
    }
    let total: u64 =
        futures::future::join_all(["local-1", "local-2", "local-4"].map(|id| cluster.status(id)))
            .await
            .iter()
            .map(|s| s.keys)
            .sum();
    assert_eq!(
        total,
        2 * KEYS as u64,
        "every key on its two replicas again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_leave_of_the_last_replicas_and_a_duplicate_id() {
    let cluster = ProcessCluster::up(&single_region(2, 2), &[]);
    let output = cluster.cli(&["leave", "local-1"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("refused") && message.contains("local"),
        "{message}"
    );
    // A second process with the id of a live member is refused.
    let seed = format!("local-1@{}", cluster.node("local-1").quic);
    let topology = cluster.dir.path().join("topology.toml");
    let duplicate = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(common::binary())
            .args([
                "node", "--id", "local-2", "--memory", "--seeds", &seed, "--dir",
            ])
            .arg(cluster.dir.path())
            .arg("--topology")
            .arg(&topology)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the duplicate exits by itself")
    .unwrap();
    assert!(!duplicate.status.success());
    assert!(
        String::from_utf8_lossy(&duplicate.stderr).contains("already used"),
        "{}",
        String::from_utf8_lossy(&duplicate.stderr)
    );
    let status = cluster.status("local-1").await;
    assert!(
        status.members.iter().all(|m| m.state == "alive"),
        "{:?}",
        status.members
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_node_is_detected_and_costs_no_timeout_afterwards() {
    let cluster = ProcessCluster::up(
        &single_region(3, 3),
        &["--w", "2", "--r", "2", "--request-timeout-ms", "5000"],
    );
    cluster.kill("local-3");
    for id in ["local-1", "local-2"] {
        cluster
            .wait_status(id, Duration::from_secs(15), |s| {
                s.members
                    .iter()
                    .any(|m| m.node == "local-3" && m.state == "dead")
            })
            .await;
    }
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let put = http
        .put(cluster.url("local-1", "/v1/kv/fast"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let all = http
        .get(cluster.url("local-2", "/v1/kv/fast?r=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        all.status(),
        503,
        "r=3 fails fast when a replica is known dead"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}: a dead replica cost a timeout",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_pause_is_never_declared_dead() {
    let cluster = ProcessCluster::up(&single_region(3, 3), &[]);
    let pid = cluster.node("local-3").pid;
    cartwheel::cluster::signal(pid, libc::SIGSTOP);
    tokio::time::sleep(Duration::from_millis(700)).await;
    cartwheel::cluster::signal(pid, libc::SIGCONT);
    // Watch for a while after the resume: suspicion may come and must be refuted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        for id in ["local-1", "local-2"] {
            let status = cluster.status(id).await;
            let member = status.members.iter().find(|m| m.node == "local-3").unwrap();
            assert_ne!(member.state, "dead", "{id} declared a paused node dead");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_node_restarted_in_turn_right_after_a_clean_stop_is_let_back_in() {
    let mut cluster =
        common::InProcessCluster::start(&common::single_region(3, 2), Default::default()).await;
    for index in 0..3 {
        let id = cluster.stop(index).await;
        cluster.start_again(index, &id).await;
        for (position, node) in cluster.nodes.iter_mut().enumerate() {
            let exited =
                tokio::time::timeout(std::time::Duration::from_millis(300), node.exited()).await;
            assert!(
                exited.is_err(),
                "round {index}: node {position} stopped: {exited:?}"
            );
        }
    }
    cluster.shutdown().await;
}

/// A peer of the cluster (its certificate made with the cluster's own CA) that forges
/// membership claims.
struct Forger;

impl Handler<PeerRequest, PeerResponse> for Forger {
    async fn handle(&self, _from: PeerInfo, _request: PeerRequest) -> PeerResponse {
        PeerResponse::Done
    }
}

async fn forger(
    cluster: &ProcessCluster,
) -> (Transport<PeerRequest, PeerResponse>, transport::NodeTls) {
    let tls_dir = cluster.dir.path().join("tls");
    let name = NodeId::new("intruder").unwrap();
    let region = Region::new("local").unwrap();
    let tls = transport::issue_node_certificate(&tls_dir, &name, &region).unwrap();
    let config = TransportConfig {
        node: name.clone(),
        region: region.clone(),
        bind: "127.0.0.1:0".parse().unwrap(),
        tls: tls.clone(),
        wan: WanModel::disabled(),
        request_timeout: Duration::from_secs(5),
    };
    let transport = Transport::start(config, Arc::new(Forger)).await.unwrap();
    (transport, tls)
}

fn state_of(status: &cartwheel::api::Status, node: &str) -> MemberState {
    let member = status.members.iter().find(|m| m.node == node).unwrap();
    MemberState {
        info: MemberInfo {
            node: NodeId::new(node).unwrap(),
            region: Region::new(&member.region).unwrap(),
            quic: member.quic.parse().unwrap(),
            http: member.http.parse().unwrap(),
            weight: 1,
        },
        incarnation: member.incarnation,
        liveness: Liveness::Alive,
        status: Status::Member,
        status_version: 1,
        ready_for: 0,
        proof: None,
    }
}

/// Who is what, as `status` sees it: (node, alive/…, member/…, incarnation, partitions).
fn table(status: &cartwheel::api::Status) -> Vec<(String, String, String, u64, usize)> {
    status
        .members
        .iter()
        .map(|m| {
            (
                m.node.clone(),
                m.state.clone(),
                m.status.clone(),
                m.incarnation,
                m.partitions_owned,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_with_a_valid_certificate_cannot_remove_others_or_exhaust_incarnations() {
    let cluster = ProcessCluster::up(&single_region(3, 2), &[]);
    let before = cluster.status("local-1").await;
    let (rogue, intruder) = forger(&cluster).await;
    let target = cluster.node("local-1");
    rogue
        .set_peer(target.id.clone(), target.region.clone(), target.quic)
        .unwrap();

    // Removed with no proof, Removed and Left signed with the intruder's own key, and
    // another member at an incarnation next to the maximum.
    let mut unsigned = state_of(&before, "local-2");
    unsigned.status = Status::Removed;
    let mut left = state_of(&before, "local-2");
    left.status = Status::Left;
    left.status_version = 2;
    left.proof = Some(Box::new(StatusProof {
        certificate: intruder.cert_der.to_vec(),
        signature: Vec::new(),
    }));
    let signed_left = {
        let mut as_intruder = left.clone();
        as_intruder.info.node = NodeId::new("intruder").unwrap();
        let proof = proof::sign_left(&intruder, &as_intruder).unwrap();
        let mut forged = left.clone();
        forged.proof = Some(proof);
        forged
    };
    let mut near_maximum = state_of(&before, "local-3");
    near_maximum.incarnation = u64::MAX - 1;
    near_maximum.liveness = Liveness::Dead;
    let mut alive_near_maximum = near_maximum.clone();
    alive_near_maximum.liveness = Liveness::Alive;
    for update in [
        unsigned,
        left,
        signed_left,
        near_maximum,
        alive_near_maximum,
    ] {
        let answer = rogue
            .request(
                &target.id,
                &PeerRequest::Swim(SwimMessage::Gossip {
                    updates: vec![update],
                }),
            )
            .await;
        assert!(
            matches!(answer, Ok(PeerResponse::Done)),
            "the peer is heard: {answer:?}"
        );
    }
    // A full table of forged final statuses costs at most PROOF_CHECKS_PER_MESSAGE_MAX
    // checks; the rest are dropped unchecked, counted the same.
    let forged_table: Vec<MemberState> = (0..40)
        .map(|version| {
            let mut removed = state_of(&before, "local-2");
            removed.status = Status::Removed;
            removed.status_version = version;
            removed.proof = Some(Box::new(StatusProof {
                certificate: Vec::new(),
                signature: vec![0x30; 70],
            }));
            removed
        })
        .collect();
    let sync = SwimMessage::Sync {
        members: forged_table,
        reply: false,
    };
    let answer = rogue.request(&target.id, &PeerRequest::Swim(sync)).await;
    assert!(matches!(answer, Ok(PeerResponse::Done)), "{answer:?}");
    // The node handled each message before answering it.
    let after = cluster.status("local-1").await;
    assert_eq!(table(&after), table(&before), "nothing changed");
    assert_eq!(after.ring_epoch, before.ring_epoch);
    assert!(after
        .members
        .iter()
        .all(|m| m.state == "alive" && m.status == "member"));
    assert_eq!(
        after.swim.final_statuses_unproven,
        3 + 40,
        "{:?}",
        after.swim
    );
    assert_eq!(after.swim.counters_near_maximum_ignored, 2);
    for id in ["local-2", "local-3"] {
        let status = cluster.status(id).await;
        assert!(status
            .members
            .iter()
            .all(|m| m.state == "alive" && m.status == "member" && m.incarnation < 1 << 32));
    }

    // The operator's removal, signed with the CA key, is still taken by everyone.
    cluster.kill("local-3");
    assert!(succeeded(&cluster.cli(&["remove", "local-3"])));
    for id in ["local-1", "local-2"] {
        cluster
            .wait_status(id, Duration::from_secs(30), |s| {
                s.members
                    .iter()
                    .any(|m| m.node == "local-3" && m.status == "removed")
            })
            .await;
    }
    rogue.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_cannot_place_itself_or_others_in_another_region() {
    let topology = "[cluster]\npartitions = 64\nreplicas_per_region = 1\n[[regions]]\nname = \"east\"\nnodes = 1\n[[regions]]\nname = \"west\"\nnodes = 1\n[latency]\nintra_region_rtt_ms = 0.0\n[latency.rtt_ms]\n\"east/west\" = 0.0\n";
    let cluster = ProcessCluster::up(topology, &[]);
    let target = cluster.nodes[0].clone();
    let before = cluster.status(target.id.as_str()).await;
    let other = cluster.nodes[1].id.to_string();
    // The intruder's certificate names region east.
    let tls_dir = cluster.dir.path().join("tls");
    let name = NodeId::new("intruder").unwrap();
    let east = Region::new("east").unwrap();
    let tls = transport::issue_node_certificate(&tls_dir, &name, &east).unwrap();
    let config = TransportConfig {
        node: name.clone(),
        region: east.clone(),
        bind: "127.0.0.1:0".parse().unwrap(),
        tls,
        wan: WanModel::disabled(),
        request_timeout: Duration::from_secs(5),
    };
    let rogue: Transport<PeerRequest, PeerResponse> =
        Transport::start(config, Arc::new(Forger)).await.unwrap();
    rogue
        .set_peer(target.id.clone(), target.region.clone(), target.quic)
        .unwrap();
    // Itself in west (a join), and the other real node moved to the target's region.
    let mut itself = state_of(&before, &other);
    itself.info.node = name.clone();
    itself.info.region = Region::new("west").unwrap();
    let mut moved = state_of(&before, &other);
    moved.info.region = target.region.clone();
    moved.incarnation += 5;
    for message in [
        SwimMessage::Join { member: itself },
        SwimMessage::Gossip {
            updates: vec![moved],
        },
    ] {
        let answer = rogue.request(&target.id, &PeerRequest::Swim(message)).await;
        assert!(matches!(answer, Ok(PeerResponse::Done)), "{answer:?}");
    }
    let after = cluster.status(target.id.as_str()).await;
    assert_eq!(table(&after), table(&before), "nothing changed");
    assert!(after.members.iter().all(|m| m.node != "intruder"));
    assert_eq!(after.swim.region_changes_ignored, 2, "{:?}", after.swim);
    rogue.shutdown().await;
}
