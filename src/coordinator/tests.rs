//! The read fan-out against a fake cluster: which replicas a read asks, and when it
//! asks more. Time is paused, so the speculation delay passes without waiting.

use super::*;
use crate::membership::ownership::Owner;
use crate::membership::swim::Status;
use crate::ring::RingConfig;
use futures::future::BoxFuture;
use std::sync::atomic::Ordering;

/// What the fake replicas do with a `Get`.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Answer,
    Fail,
    /// The first remote replica asked never answers; the others do.
    FirstRemoteSilent,
    /// Every replica holds the same object.
    AllHold,
    /// a-1 and a-2 hold the object, a-3 nothing.
    ThirdBehind,
    /// The first remote replica asked holds nothing and answers only after twice the
    /// speculation delay; the others hold the object.
    FirstRemoteLateAndBehind,
    /// Every replica holds the object; the remote ones are of a build before digest
    /// reads: they refuse a digest request, and are not asked for one after that.
    NoDigests,
    /// The first `Apply` sent never answers (lost); every later copy is applied and
    /// answered (a replica applies an `Apply` once, so each copy answers alike).
    FirstApplyLost,
    /// Every replica refuses a mint through the transport: the replica's own error,
    /// typed, as the batcher hands it over.
    RefuseMints,
}

struct Fake {
    view: Arc<RingView>,
    behaviour: Behaviour,
    asked: Mutex<Vec<NodeId>>,
    /// The replicas asked for a digest (also in `asked`).
    digests_asked: Mutex<Vec<NodeId>>,
    /// The first remote replica asked.
    first_remote: Mutex<Option<NodeId>>,
    /// Reads of a-1 (this node) are answered in place (`Dispatch::read_here`), and
    /// listed here instead of in `asked`.
    in_place: Option<Mutex<Vec<NodeId>>>,
    /// The replicas that refused a digest request (`Behaviour::NoDigests`).
    digestless: Mutex<Vec<NodeId>>,
}

impl ClusterView for Fake {
    fn view(&self) -> Arc<RingView> {
        self.view.clone()
    }
    fn is_dead(&self, _node: &NodeId) -> bool {
        false
    }
}

impl Dispatch for Fake {
    fn digests(&self, to: &NodeId) -> bool {
        !self.digestless.lock().unwrap().contains(to)
    }

    fn read_here(&self, to: &NodeId, request: &PeerRequest) -> Option<PeerResponse> {
        let in_place = self.in_place.as_ref()?;
        assert_eq!(
            to.as_str(),
            "a-1",
            "only this node's reads are answered in place"
        );
        in_place.lock().unwrap().push(to.clone());
        // a-1 holds the object unless every replica holds nothing.
        let stored = (self.behaviour != Behaviour::Answer).then(held);
        Some(match request {
            PeerRequest::Digest { .. } => PeerResponse::Digest(stored.as_ref().map(Object::digest)),
            _ => PeerResponse::Object(stored),
        })
    }

    fn send(
        &self,
        to: &NodeId,
        request: PeerRequest,
    ) -> BoxFuture<'static, Result<PeerResponse, DispatchError>> {
        let mut asked = self.asked.lock().unwrap();
        if matches!(request, PeerRequest::Mint { .. }) && self.behaviour == Behaviour::RefuseMints {
            asked.push(to.clone());
            let error = crate::wire::PeerError::Refused {
                refusal: Refusal::Limit,
                message: "too many cart lines".to_string(),
            };
            let peer = to.clone();
            return Box::pin(async move { Err(DispatchError::Peer { peer, error }) });
        }
        if matches!(request, PeerRequest::Apply { .. })
            && self.behaviour == Behaviour::FirstApplyLost
        {
            asked.push(NodeId(format!("apply:{to}")));
            let copies = asked
                .iter()
                .filter(|node| node.as_str().starts_with("apply:"));
            let lost = copies.count() == 1;
            return Box::pin(async move {
                if lost {
                    std::future::pending::<()>().await;
                }
                Ok(PeerResponse::Applied {
                    stored: Box::new(held()),
                    delta: Box::new(held()),
                    outcome: None,
                })
            });
        }
        if let PeerRequest::Merge { .. } = request {
            asked.push(NodeId(format!("merge:{to}")));
            return Box::pin(async { Ok(PeerResponse::Done) });
        }
        asked.push(to.clone());
        let digest = matches!(request, PeerRequest::Digest { .. });
        if digest {
            self.digests_asked.lock().unwrap().push(to.clone());
        }
        let remote = to.as_str() != "a-1";
        let first_remote = remote
            && self
                .first_remote
                .lock()
                .unwrap()
                .get_or_insert_with(|| to.clone())
                == to;
        let behaviour = self.behaviour;
        if digest && remote && behaviour == Behaviour::NoDigests {
            self.digestless.lock().unwrap().push(to.clone());
            let refused = DispatchError::Refused {
                peer: to.clone(),
                reason: crate::transport::Refusal::FrameRejected,
            };
            return Box::pin(async { Err(refused) });
        }
        let holds_nothing = to.as_str() == "a-3";
        let peer = to.clone();
        Box::pin(async move {
            let stored = match behaviour {
                Behaviour::Fail if remote => {
                    return Err(DispatchError::Unreachable {
                        peer,
                        reason: "down".to_string(),
                    })
                }
                Behaviour::FirstRemoteSilent if first_remote => std::future::pending().await,
                Behaviour::AllHold | Behaviour::NoDigests => Some(held()),
                Behaviour::ThirdBehind if !holds_nothing => Some(held()),
                Behaviour::FirstRemoteLateAndBehind if first_remote => {
                    let late = Duration::from_millis(2 * limits::READ_SPECULATE_MS);
                    tokio::time::sleep(late).await;
                    None
                }
                Behaviour::FirstRemoteLateAndBehind => Some(held()),
                _ => None,
            };
            Ok(match digest {
                true => PeerResponse::Digest(stored.as_ref().map(Object::digest)),
                false => PeerResponse::Object(stored),
            })
        })
    }
}

struct Epoch;

impl WallClock for Epoch {
    fn now_ms(&self) -> u64 {
        1_700_000_000_000
    }
}

/// Three replicas in one region; the coordinator is a-1, one of them.
fn coordinator(behaviour: Behaviour) -> (Coordinator, Arc<Fake>) {
    coordinator_with(behaviour, false)
}

/// `coordinator`, reading a-1 in place when `in_place`.
fn coordinator_with(behaviour: Behaviour, in_place: bool) -> (Coordinator, Arc<Fake>) {
    let owners: Vec<Owner> = (1..=3)
        .map(|i| Owner {
            node: NodeId(format!("a-{i}")),
            region: Region("a".into()),
            weight: 1,
            status: Status::Member,
            ready_for: 0,
            dead: false,
        })
        .collect();
    let config = RingConfig {
        partitions: 16,
        replicas_per_region: [(Region("a".into()), 3)].into(),
    };
    let fake = Arc::new(Fake {
        view: Arc::new(RingView::new(&owners, &config, 1).unwrap()),
        behaviour,
        asked: Mutex::new(Vec::new()),
        digests_asked: Mutex::new(Vec::new()),
        first_remote: Mutex::new(None),
        in_place: in_place.then(|| Mutex::new(Vec::new())),
        digestless: Mutex::new(Vec::new()),
    });
    let coordinator = Coordinator::new(
        NodeId("a-1".into()),
        Region("a".into()),
        fake.clone(),
        fake.clone(),
        Arc::new(Epoch),
        Duration::from_secs(10),
        true,
    );
    (coordinator, fake)
}

/// Reads key `k` at `level` through `coordinator`.
async fn read_k(
    coordinator: &Coordinator,
    level: Level,
) -> Result<Option<Object>, CoordinatorError> {
    coordinator.get(&ObjectKey::kv(b"k"), level).await
}

fn asked(fake: &Fake) -> Vec<String> {
    asked_nodes(&fake.asked)
}

#[tokio::test(start_paused = true)]
async fn a_read_asks_only_the_replicas_its_level_needs_itself_included() {
    let (coordinator, fake) = coordinator(Behaviour::Answer);
    let found = read_k(&coordinator, Level::Count(2)).await.unwrap();
    assert!(found.is_none());
    let asked = asked(&fake);
    assert_eq!(asked.len(), 2, "asked {asked:?}");
    // This node is one of them, asked after the remote one is on its way.
    assert_eq!(asked[1], "a-1");
    // `all` still asks every replica.
    read_k(&coordinator, Level::All).await.unwrap();
    assert_eq!(fake.asked.lock().unwrap().len(), 5);
}

/// The object the fake replicas hold: one value written by a-1.
fn held() -> Object {
    crate::object::sample_kv(b"v")
}

/// Lets the coordinator's background tasks run (time is paused; bounded).
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn replicas_that_agree_send_one_object_and_digests() {
    let (coordinator, fake) = coordinator(Behaviour::AllHold);
    let found = read_k(&coordinator, Level::All).await.unwrap();
    assert_eq!(found, Some(held()));
    // This node sends the object; the others only its digest, once.
    let asked = asked(&fake);
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert_eq!(asked[2], "a-1");
    let mut digests = asked_nodes(&fake.digests_asked);
    digests.sort();
    assert_eq!(digests, ["a-2", "a-3"]);
    assert_eq!(
        coordinator.stats.digest_mismatches.load(Ordering::Relaxed),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn a_digest_that_differs_makes_the_read_ask_every_replica_for_its_object() {
    // a-3 holds nothing: its digest differs from a-1's object, so the objects are read.
    let (coordinator, fake) = coordinator(Behaviour::ThirdBehind);
    let found = read_k(&coordinator, Level::All).await.unwrap();
    assert_eq!(found, Some(held()));
    let reads: Vec<String> = asked(&fake)
        .into_iter()
        .filter(|node| !node.starts_with("merge:"))
        .collect();
    assert_eq!(
        reads.len(),
        6,
        "a digest round, then an object round: {reads:?}"
    );
    assert_eq!(asked_nodes(&fake.digests_asked).len(), 2);
    assert_eq!(
        coordinator.stats.digest_mismatches.load(Ordering::Relaxed),
        1
    );
    settle().await;
    assert!(asked(&fake).contains(&"merge:a-3".to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_late_digest_that_differs_gets_its_replica_read_and_repaired() {
    let (coordinator, fake) = coordinator(Behaviour::FirstRemoteLateAndBehind);
    let found = read_k(&coordinator, Level::Count(2)).await.unwrap();
    // The late replica's digest had not come: the speculative one met the level.
    assert_eq!(found, Some(held()));
    let late = fake
        .first_remote
        .lock()
        .unwrap()
        .clone()
        .expect("a remote was asked");
    assert_eq!(asked(&fake).len(), 3);
    // Its digest differs when it comes: its object is read, then it gets the merge.
    tokio::time::sleep(Duration::from_millis(4 * limits::READ_SPECULATE_MS)).await;
    settle().await;
    let asked = asked(&fake);
    assert_eq!(asked.len(), 5, "{asked:?}");
    assert_eq!(asked[3], late.as_str());
    assert_eq!(asked[4], format!("merge:{late}"));
}

#[tokio::test(start_paused = true)]
async fn this_nodes_replica_is_read_in_place_and_the_others_over_the_network() {
    let (coordinator, fake) = coordinator_with(Behaviour::AllHold, true);
    let found = read_k(&coordinator, Level::All).await.unwrap();
    assert_eq!(found, Some(held()));
    assert_eq!(asked_nodes(fake.in_place.as_ref().unwrap()), ["a-1"]);
    let mut sent = asked(&fake);
    sent.sort();
    assert_eq!(sent, ["a-2", "a-3"], "only the remote digests are sent");
    // A digest that differs: the full read reads a-1 in place again and repairs a-3.
    let (coordinator, fake) = coordinator_with(Behaviour::ThirdBehind, true);
    let found = read_k(&coordinator, Level::All).await.unwrap();
    assert_eq!(found, Some(held()));
    assert_eq!(asked_nodes(fake.in_place.as_ref().unwrap()), ["a-1", "a-1"]);
    settle().await;
    let sent = asked(&fake);
    assert_eq!(
        sent.len(),
        5,
        "two digests, two objects, one repair: {sent:?}"
    );
    assert!(sent.contains(&"merge:a-3".to_string()));
}

#[tokio::test(start_paused = true)]
async fn replicas_that_refuse_digests_are_read_in_full_then_asked_for_objects() {
    let (coordinator, fake) = coordinator(Behaviour::NoDigests);
    // Both remotes refuse the digest: the read is done again with objects only.
    let found = read_k(&coordinator, Level::Count(2)).await.unwrap();
    assert_eq!(found, Some(held()));
    let mut refused = asked_nodes(&fake.digestless);
    refused.sort();
    assert_eq!(refused, ["a-2", "a-3"]);
    let digests_before = fake.digests_asked.lock().unwrap().len();
    let sent_before = fake.asked.lock().unwrap().len();
    // From then on they are asked for their objects, which agree: one round, no digest.
    let found = read_k(&coordinator, Level::Count(2)).await.unwrap();
    assert_eq!(found, Some(held()));
    assert_eq!(fake.digests_asked.lock().unwrap().len(), digests_before);
    assert_eq!(fake.asked.lock().unwrap().len(), sent_before + 2);
    assert_eq!(
        coordinator.stats.digest_mismatches.load(Ordering::Relaxed),
        0
    );
    assert_eq!(coordinator.stats.failures.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_read_repairs_only_a_replica_that_answered_less() {
    let (agreeing, fake) = coordinator(Behaviour::AllHold);
    let found = read_k(&agreeing, Level::All).await.unwrap();
    assert_eq!(found, Some(held()));
    settle().await;
    assert!(
        !asked(&fake).iter().any(|node| node.starts_with("merge:")),
        "replicas that agree are not repaired: {:?}",
        asked(&fake)
    );
    let (behind, fake) = coordinator(Behaviour::ThirdBehind);
    let found = read_k(&behind, Level::All).await.unwrap();
    assert_eq!(found, Some(held()));
    settle().await;
    let merges: Vec<String> = asked(&fake)
        .into_iter()
        .filter(|node| node.starts_with("merge:"))
        .collect();
    assert_eq!(merges, ["merge:a-3"]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_replica_makes_the_read_ask_the_next_one_at_once() {
    let (coordinator, fake) = coordinator(Behaviour::Fail);
    let started = Instant::now();
    let error = read_k(&coordinator, Level::Count(2)).await.unwrap_err();
    // Both remote replicas fail: the level cannot be met, and that is known at once.
    assert!(
        matches!(error, CoordinatorError::QuorumNotReached { acked: 1, .. }),
        "{error}"
    );
    assert_eq!(asked(&fake).len(), 3);
    assert!(started.elapsed() < Duration::from_millis(limits::READ_SPECULATE_MS));
    let found = read_k(&coordinator, Level::One).await.unwrap();
    assert!(found.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_silent_replica_costs_one_speculation_delay_not_the_timeout() {
    let (coordinator, fake) = coordinator(Behaviour::FirstRemoteSilent);
    let started = Instant::now();
    read_k(&coordinator, Level::Count(2)).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(limits::READ_SPECULATE_MS),
        "{took:?}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(asked(&fake).len(), 3);
}

/// Every replica has answered within 2 ms lately, as far as `coordinator` measured.
fn measured_fast(coordinator: &Coordinator) {
    let mut latency = coordinator.latency.lock().unwrap();
    for node in ["a-1", "a-2", "a-3"] {
        for _ in 0..limits::LATENCY_SAMPLES_MIN {
            latency.record(&NodeId(node.into()), 2, 0);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_replica_costs_the_replicas_p99_once_measured() {
    let (coordinator, fake) = coordinator(Behaviour::FirstRemoteSilent);
    measured_fast(&coordinator);
    let started = Instant::now();
    read_k(&coordinator, Level::Count(2)).await.unwrap();
    let took = started.elapsed();
    // The floor, not the fixed 50 ms: the replicas asked answer within 2 ms.
    let floor = Duration::from_millis(limits::READ_SPECULATE_FLOOR_MS);
    assert!(took >= floor && took < 2 * floor, "{took:?}");
    assert_eq!(asked(&fake).len(), 3);
    assert_eq!(coordinator.stats.speculations.load(Ordering::Relaxed), 1);
    assert_eq!(
        coordinator
            .stats
            .speculations_refused
            .load(Ordering::Relaxed),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_speculation_budget_makes_the_read_wait_for_those_it_asked() {
    let (coordinator, fake) = coordinator(Behaviour::FirstRemoteSilent);
    measured_fast(&coordinator);
    *coordinator.budget.lock().unwrap() = latency::SpeculationBudget::empty();
    let error = read_k(&coordinator, Level::Count(2)).await.unwrap_err();
    assert!(matches!(error, CoordinatorError::Timeout { .. }), "{error}");
    // Only the two it asked: the silent one again at each resend, nobody else.
    let asked = asked(&fake);
    let resends = usize::try_from(limits::RESENDS_MAX).unwrap();
    assert_eq!(asked.len(), 2 + resends, "{asked:?}");
    assert_eq!(
        asked.iter().filter(|node| **node == asked[0]).count(),
        1 + resends
    );
    assert_eq!(coordinator.stats.speculations.load(Ordering::Relaxed), 0);
    assert_eq!(
        coordinator
            .stats
            .speculations_refused
            .load(Ordering::Relaxed),
        1
    );
}

/// A cluster where this node (a-1) mints for itself and its own flush ends only when
/// the test says, with how; the other replicas store merges at once.
struct Flushing {
    view: Arc<RingView>,
    merges: Mutex<Vec<NodeId>>,
    flushed: tokio::sync::watch::Sender<Option<Result<(), String>>>,
}

impl ClusterView for Flushing {
    fn view(&self) -> Arc<RingView> {
        self.view.clone()
    }
    fn is_dead(&self, _node: &NodeId) -> bool {
        false
    }
}

impl Dispatch for Flushing {
    fn send(
        &self,
        to: &NodeId,
        request: PeerRequest,
    ) -> BoxFuture<'static, Result<PeerResponse, DispatchError>> {
        assert!(
            matches!(request, PeerRequest::Merge { .. }),
            "only merges go out"
        );
        self.merges.lock().unwrap().push(to.clone());
        Box::pin(async { Ok(PeerResponse::Done) })
    }

    fn mint_here(&self, to: &NodeId, request: &PeerRequest) -> Option<(PeerResponse, Durable)> {
        assert_eq!(to.as_str(), "a-1", "this node mints for itself");
        assert!(matches!(request, PeerRequest::Mint { .. }));
        let mut flushed = self.flushed.subscribe();
        let durable: Durable = Box::pin(async move {
            match flushed.wait_for(Option::is_some).await {
                Ok(outcome) => match outcome.clone().expect("waited for an outcome") {
                    Ok(()) => Ok(()),
                    Err(reason) => Err(DispatchError::NotDurable { reason }),
                },
                Err(_) => Err(DispatchError::NotDurable {
                    reason: "flusher gone".to_string(),
                }),
            }
        });
        let stored = Object::Kv(crate::object::KvObject::new());
        Some((PeerResponse::Stored(stored), durable))
    }
}

fn flushing_coordinator() -> (Coordinator, Arc<Flushing>) {
    let (plain, _) = coordinator(Behaviour::Answer);
    let cluster = Arc::new(Flushing {
        view: plain.cluster.view(),
        merges: Mutex::new(Vec::new()),
        flushed: tokio::sync::watch::channel(None).0,
    });
    let coordinator = Coordinator::new(
        NodeId("a-1".into()),
        Region("a".into()),
        cluster.clone(),
        cluster.clone(),
        Arc::new(Epoch),
        Duration::from_secs(10),
        true,
    );
    (coordinator, cluster)
}

fn put(
    coordinator: Arc<Coordinator>,
    level: Level,
) -> tokio::task::JoinHandle<Result<Object, CoordinatorError>> {
    tokio::spawn(async move {
        coordinator
            .put(
                &ObjectKey::kv(b"k"),
                Some(Blob(b"v".to_vec())),
                VersionVector::new(),
                level,
            )
            .await
    })
}

#[tokio::test(start_paused = true)]
async fn a_version_minted_here_travels_while_this_node_flushes_and_counts_once_durable() {
    let (coordinator, cluster) = flushing_coordinator();
    let write = put(Arc::new(coordinator), Level::All);
    // Virtual time passes only once every task is idle: the write has sent its merges,
    // had both answers and waits on this node's flush.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut merged = asked_nodes(&cluster.merges);
    merged.sort();
    assert_eq!(merged, ["a-2", "a-3"]);
    assert!(
        !write.is_finished(),
        "`all` needs this node's copy durable too"
    );
    cluster.flushed.send_replace(Some(Ok(())));
    write.await.unwrap().expect("every copy durable");
}

#[tokio::test(start_paused = true)]
async fn a_failed_flush_here_is_a_failed_acknowledgement() {
    let (coordinator, cluster) = flushing_coordinator();
    let write = put(Arc::new(coordinator), Level::All);
    cluster
        .flushed
        .send_replace(Some(Err("disk full".to_string())));
    let error = write.await.unwrap().unwrap_err();
    assert!(
        matches!(error, CoordinatorError::QuorumNotReached { needed: 3, .. }),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn two_durable_copies_elsewhere_meet_a_quorum_while_this_node_still_flushes() {
    let (coordinator, cluster) = flushing_coordinator();
    // The flush here never ends; the other two replicas are enough for two copies.
    put(Arc::new(coordinator), Level::Count(2))
        .await
        .unwrap()
        .expect("two durable copies");
    assert_eq!(asked_nodes(&cluster.merges).len(), 2);
}

fn asked_nodes(nodes: &Mutex<Vec<NodeId>>) -> Vec<String> {
    nodes
        .lock()
        .unwrap()
        .iter()
        .map(|node| node.as_str().to_string())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_replica_refusing_a_mint_through_the_transport_is_the_clients_answer() {
    let (coordinator, fake) = coordinator(Behaviour::RefuseMints);
    let error = put(Arc::new(coordinator), Level::Quorum)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            error,
            CoordinatorError::Refused {
                refusal: Refusal::Limit,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        fake.asked.lock().unwrap().len(),
        1,
        "a refusal is not retried on another replica"
    );
}

#[tokio::test(start_paused = true)]
async fn a_replica_silent_for_a_second_is_not_waited_for_and_gets_a_probe() {
    let (coordinator, fake) = coordinator(Behaviour::FirstRemoteSilent);
    let coordinator = Arc::new(coordinator);
    read_k(&coordinator, Level::Count(2)).await.unwrap();
    let silent = fake.first_remote.lock().unwrap().clone().unwrap();
    // Asked, and not one answer since: silent once PEER_SILENT_AFTER_MS has passed.
    tokio::time::advance(Duration::from_millis(limits::PEER_SILENT_AFTER_MS)).await;
    fake.asked.lock().unwrap().clear();
    fake.digests_asked.lock().unwrap().clear();
    let started = Instant::now();
    read_k(&coordinator, Level::Count(2)).await.unwrap();
    // Treated as dead: the read asks this node and the other replica at once.
    assert!(started.elapsed() < Duration::from_millis(limits::READ_SPECULATE_FLOOR_MS));
    assert_eq!(coordinator.stats.speculations.load(Ordering::Relaxed), 1);
    // It got one probe (a digest read), whose answer would end its silence.
    let probes = fake
        .digests_asked
        .lock()
        .unwrap()
        .iter()
        .filter(|node| **node == silent)
        .count();
    let asked_silent = asked(&fake)
        .iter()
        .filter(|node| **node == silent.as_str())
        .count();
    assert_eq!((asked_silent, probes), (1, 1), "{:?}", asked(&fake));
    assert_eq!(coordinator.stats.silent_probes.load(Ordering::Relaxed), 1);
    // A write its level needs the silent replica for fails at once, and mints nothing.
    fake.asked.lock().unwrap().clear();
    let error = put(coordinator.clone(), Level::All)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, CoordinatorError::QuorumNotReached { .. }),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_millis(limits::READ_SPECULATE_FLOOR_MS));
    assert!(
        asked(&fake).is_empty(),
        "nothing minted: {:?}",
        asked(&fake)
    );
    // The probe is not repeated before its interval.
    read_k(&coordinator, Level::Count(2)).await.unwrap();
    assert!(!asked(&fake).contains(&silent.as_str().to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_lost_apply_goes_again_to_its_minter_after_the_resend_wait() {
    let (coordinator, fake) = coordinator(Behaviour::FirstApplyLost);
    let started = Instant::now();
    // An increment: not safe to hand to another minter, safe to send its minter again.
    let op = crate::crdt::DocOp::Redis(crate::crdt::redis::RedisOp::IncrBy(1));
    let policy = Policy {
        sloppy: true,
        sync_repair: false,
    };
    let key = ObjectKey::kv(b"k");
    coordinator
        .apply(&key, op, Level::Count(1), policy)
        .await
        .unwrap();
    // Nothing measured: the resend wait is its most; not the 10 s request timeout.
    let took = started.elapsed();
    let wait = Duration::from_millis(limits::RESEND_MAX_MS);
    assert!(took >= wait && took < 2 * wait, "{took:?}");
    let asked = asked(&fake);
    let applies: Vec<&String> = asked
        .iter()
        .filter(|node| node.starts_with("apply:"))
        .collect();
    assert_eq!(
        applies,
        ["apply:a-1", "apply:a-1"],
        "the same minter, twice"
    );
    assert_eq!(coordinator.stats.resends.load(Ordering::Relaxed), 1);
}
