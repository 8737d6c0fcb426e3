//! The session service over a coordinator whose one replica is an in-memory fake that
//! counts every request: what a validation costs, key rotation, single-use rotation,
//! the not-before time and the negative cache.

use super::tokens::TokenKeys;
use super::*;
use crate::clock::Actor;
use crate::config::{SessionFlags, SessionSettings, Topology};
use crate::coordinator::{ClusterView, Coordinator, Dispatch, DispatchError, WallClock};
use crate::crdt::{Doc, OpId};
use crate::ids::{NodeId, Region};
use crate::membership::ownership::{Owner, RingView};
use crate::membership::swim::Status;
use crate::object::Object;
use crate::ring::RingConfig;
use crate::wire::{PeerError, PeerRequest, PeerResponse, Refusal};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: [u8; 32] = [3; 32];

/// The one replica: documents by key, and how many requests it was sent.
#[derive(Default)]
struct Replica {
    docs: Mutex<BTreeMap<Vec<u8>, Doc>>,
    requests: AtomicU64,
}

struct Cluster {
    view: Arc<RingView>,
    replica: Arc<Replica>,
}

impl ClusterView for Cluster {
    fn view(&self) -> Arc<RingView> {
        self.view.clone()
    }
    fn is_dead(&self, _node: &NodeId) -> bool {
        false
    }
}

impl Replica {
    fn answer(&self, request: PeerRequest) -> PeerResponse {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut docs = self.docs.lock().unwrap();
        match request {
            PeerRequest::Get { key } => {
                PeerResponse::Object(docs.get(&key.storage_bytes()).cloned().map(Object::Doc))
            }
            PeerRequest::Digest { key } => PeerResponse::Digest(
                docs.get(&key.storage_bytes())
                    .map(|doc| Object::Doc(doc.clone()).digest()),
            ),
            PeerRequest::Apply { key, op, at } => {
                let stored = docs.get(&key.storage_bytes()).cloned();
                let Some(mut doc) = stored.or_else(|| Doc::empty_for(&op)) else {
                    return PeerResponse::Done;
                };
                match doc.apply(&op, Actor(1), at, at.wall_ms) {
                    Ok(delta) => {
                        docs.insert(key.storage_bytes(), doc.clone());
                        PeerResponse::Applied {
                            stored: Box::new(Object::Doc(doc)),
                            delta: Box::new(Object::Doc(delta)),
                            outcome: None,
                        }
                    }
                    Err(error) => PeerResponse::Error(PeerError::Refused {
                        refusal: Refusal::of(&error),
                        message: error.to_string(),
                    }),
                }
            }
            PeerRequest::Merge { key, object } => {
                if let Object::Doc(theirs) = object {
                    let entry = docs.entry(key.storage_bytes());
                    match entry {
                        std::collections::btree_map::Entry::Occupied(mut mine) => {
                            let _ = mine.get_mut().merge(&theirs);
                        }
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            slot.insert(theirs);
                        }
                    }
                }
                PeerResponse::Done
            }
            _ => PeerResponse::Done,
        }
    }
}

/// Sends every request to the one replica; with `in_place`, reads of this node's own
/// copy are answered in place too, as a node's are, and not counted as requests.
struct Send {
    replica: Arc<Replica>,
    in_place: bool,
}

impl Dispatch for Send {
    fn send(
        &self,
        _to: &NodeId,
        request: PeerRequest,
    ) -> BoxFuture<'static, Result<PeerResponse, DispatchError>> {
        let answer = self.replica.answer(request);
        Box::pin(async move { Ok(answer) })
    }

    fn read_here(&self, _to: &NodeId, request: &PeerRequest) -> Option<PeerResponse> {
        let PeerRequest::Get { key } = request else {
            return None;
        };
        let docs = self.replica.docs.lock().unwrap();
        let doc = docs.get(&key.storage_bytes()).cloned();
        self.in_place
            .then(|| PeerResponse::Object(doc.map(Object::Doc)))
    }
}

struct Clock(AtomicU64);

impl WallClock for Clock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Setup {
    replica: Arc<Replica>,
    clock: Arc<Clock>,
    coordinator: Arc<Coordinator>,
    settings: SessionSettings,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_reads_in_place(false)
    }

    fn with_reads_in_place(in_place: bool) -> Setup {
        let owners = vec![Owner {
            node: NodeId("a-1".into()),
            region: Region("a".into()),
            weight: 1,
            status: Status::Member,
            ready_for: 0,
            dead: false,
        }];
        let config = RingConfig {
            partitions: 16,
            replicas_per_region: [(Region("a".into()), 1)].into(),
        };
        let replica = Arc::new(Replica::default());
        let cluster = Arc::new(Cluster {
            view: Arc::new(RingView::new(&owners, &config, 1).unwrap()),
            replica: replica.clone(),
        });
        let clock = Arc::new(Clock(AtomicU64::new(1_700_000_000_000)));
        let coordinator = Arc::new(Coordinator::new(
            NodeId("a-1".into()),
            Region("a".into()),
            cluster.clone(),
            Arc::new(Send {
                replica: cluster.replica.clone(),
                in_place,
            }),
            clock.clone(),
            Duration::from_secs(5),
            false,
        ));
        let topology = Topology::parse(
            "[cluster]\npartitions = 16\nreplicas_per_region = 1\n[[regions]]\nname = \"a\"\nnodes = 1\n",
        )
        .unwrap();
        let flags = SessionFlags {
            rotation_grace: Some(Duration::from_secs(10)),
            ..SessionFlags::default()
        };
        let settings = SessionSettings::new(&topology, &flags, false, &mut Vec::new()).unwrap();
        Setup {
            replica,
            clock,
            coordinator,
            settings,
        }
    }

    fn service(&self, keys: &[(u8, [u8; 32])]) -> SessionService {
        SessionService::new(
            self.coordinator.clone(),
            self.settings.clone(),
            TokenKeys::new(keys).unwrap(),
            self.clock.clone(),
        )
    }

    fn requests(&self) -> u64 {
        self.replica.requests.load(Ordering::Relaxed)
    }

    fn advance(&self, ms: u64) {
        self.clock.0.fetch_add(ms, Ordering::Relaxed);
    }
}

fn rejection(result: Result<Authenticated, SessionError>) -> Option<&'static str> {
    match result {
        Err(SessionError::Token(rejection) | SessionError::Limited(rejection)) => {
            Some(rejection.code())
        }
        _ => None,
    }
}

#[tokio::test]
async fn made_up_tokens_cost_no_request_at_all() {
    let setup = Setup::new();
    let service = setup.service(&[(0, SECRET)]);
    let other_secret = TokenKeys::new(&[(0, [4; 32])]).unwrap().issue_token();
    let other_id = TokenKeys::new(&[(7, SECRET)]).unwrap().issue_token();
    let before = setup.requests();
    for made_up in [
        other_secret.text.as_str(),
        other_id.text.as_str(),
        &"A".repeat(66),
    ] {
        let refused = service.authenticate(Some(made_up), None).await;
        assert_eq!(rejection(refused), Some("token_unknown"));
    }
    for malformed in [None, Some(""), Some("short")] {
        assert!(rejection(service.authenticate(malformed, None).await).is_some());
    }
    assert_eq!(setup.requests(), before, "no replica was asked");
    assert_eq!(service.stats.validation_reads.load(Ordering::Relaxed), 0);
    assert_eq!(service.stats.forged.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn a_genuine_unknown_token_is_looked_up_once_and_a_new_login_is_found() {
    let setup = Setup::new();
    let service = setup.service(&[(0, SECRET)]);
    let never_stored = TokenKeys::new(&[(0, SECRET)]).unwrap().issue_token();
    for _ in 0..5 {
        let refused = service.authenticate(Some(&never_stored.text), None).await;
        assert_eq!(rejection(refused), Some("token_unknown"));
    }
    let stats = &service.stats;
    assert_eq!(stats.remote_validation_reads.load(Ordering::Relaxed), 1);
    assert_eq!(stats.negative_cache_hits.load(Ordering::Relaxed), 4);
    let login = service.login("ivy", "phone").await.unwrap();
    assert!(service.authenticate(Some(&login.token), None).await.is_ok());
    assert_eq!(stats.remote_validation_reads.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_new_session_key_keeps_tokens_of_the_old_one_valid() {
    let setup = Setup::new();
    let old = setup.service(&[(0, SECRET)]);
    let before = old.login("jack", "phone").await.unwrap();
    let rotated = setup.service(&[(1, [9; 32]), (0, SECRET)]);
    let auth = rotated
        .authenticate(Some(&before.token), None)
        .await
        .unwrap();
    rotated.check_csrf(&auth, Some(&before.csrf_token)).unwrap();
    let after = rotated.login("jack", "laptop").await.unwrap();
    assert!(rotated.authenticate(Some(&after.token), None).await.is_ok());
    // A node without the new key refuses its tokens by arithmetic.
    let requests = setup.requests();
    let refused = old.authenticate(Some(&after.token), None).await;
    assert_eq!(rejection(refused), Some("token_unknown"));
    assert_eq!(setup.requests(), requests);
}

#[tokio::test]
async fn two_rotations_of_one_token_leave_one_valid_successor() {
    let setup = Setup::new();
    let service = setup.service(&[(0, SECRET)]);
    let login = service.login("kim", "phone").await.unwrap();
    let auth = service
        .authenticate(Some(&login.token), None)
        .await
        .unwrap();
    let (first, second) = tokio::join!(service.rotate(&auth, None), service.rotate(&auth, None));
    let outcomes = [first, second];
    let conflicts = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(SessionError::RotationConflict)))
        .count();
    assert_eq!(conflicts, 1, "one replica: the second is refused");
    let mut valid = 0;
    for successor in outcomes.iter().flatten() {
        if service
            .authenticate(Some(&successor.token), None)
            .await
            .is_ok()
        {
            valid += 1;
        }
    }
    assert_eq!(valid, 1);
}

#[tokio::test]
async fn a_rotation_retried_with_its_idempotency_key_gets_the_same_successor_past_the_grace() {
    let setup = Setup::new();
    let service = setup.service(&[(0, SECRET)]);
    let login = service.login("ira", "phone").await.unwrap();
    let auth = service
        .authenticate(Some(&login.token), None)
        .await
        .unwrap();
    let key = OpId::of_key("rotate-1");
    let first = service.rotate(&auth, Some(key)).await.unwrap();
    // The answer was lost; the client retries past the grace with the same key.
    setup.advance(11_000);
    let retry = service
        .authenticate_rotation(Some(&login.token), None, Some(key))
        .await
        .expect("this rotation retried, not a reuse");
    let second = service.rotate(&retry, Some(key)).await.unwrap();
    assert_eq!(second.token, first.token, "the same successor");
    assert_eq!(second.csrf_token, first.csrf_token);
    assert!(service
        .authenticate(Some(&second.token), None)
        .await
        .is_ok());
    // Another key is another rotation of an already rotated token: a reuse.
    let other = service
        .authenticate_rotation(Some(&login.token), None, Some(OpId::of_key("rotate-2")))
        .await;
    assert_eq!(rejection(other), Some("token_reused"));
    let revoked = service.authenticate(Some(&second.token), None).await;
    assert_eq!(rejection(revoked), Some("token_revoked"));
}

#[tokio::test]
async fn reuse_revokes_the_family_and_logout_everywhere_refuses_older_tokens() {
    let setup = Setup::new();
    let service = setup.service(&[(0, SECRET)]);
    let login = service.login("lee", "phone").await.unwrap();
    let auth = service
        .authenticate(Some(&login.token), None)
        .await
        .unwrap();
    let successor = service.rotate(&auth, None).await.unwrap();
    setup.advance(11_000); // past the rotation grace
    let reused = service.authenticate(Some(&login.token), None).await;
    assert_eq!(rejection(reused), Some("token_reused"));
    let revoked = service.authenticate(Some(&successor.token), None).await;
    assert_eq!(rejection(revoked), Some("token_revoked"));
    let record = service.user_auth("lee").await.unwrap();
    assert_eq!(record.audit.len(), 1);
    assert_eq!(record.audit[0].device, "phone");
    assert_eq!(record.audit[0].region, "a");

    // Logout everywhere: tokens created before are refused, later ones are not.
    let laptop = service.login("lee", "laptop").await.unwrap();
    let tablet = service.login("lee", "tablet").await.unwrap();
    let tablet_auth = service
        .authenticate(Some(&tablet.token), None)
        .await
        .unwrap();
    setup.advance(1);
    service.logout_all(&tablet_auth).await.unwrap();
    setup.advance(1);
    let refused = service.authenticate(Some(&laptop.token), None).await;
    assert_eq!(rejection(refused), Some("token_revoked"));
    let after = service.login("lee", "laptop").await.unwrap();
    assert!(service.authenticate(Some(&after.token), None).await.is_ok());
}

#[tokio::test]
async fn an_address_over_its_failures_keeps_local_answers_but_reads_no_other_region() {
    let setup = Setup::new();
    let service = setup.service(&[(0, SECRET)]);
    let address: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let keys = TokenKeys::new(&[(0, SECRET)]).unwrap();
    let remote = || {
        service
            .stats
            .remote_validation_reads
            .load(Ordering::Relaxed)
    };
    // Genuine tokens never stored, a new one each time (the negative cache knows none):
    // each costs a cross-region read until the address is over its burst.
    let mut failures = 0;
    loop {
        let never_stored = keys.issue_token();
        let before = remote();
        let outcome = service
            .authenticate(Some(&never_stored.text), Some(address))
            .await;
        assert_eq!(rejection(outcome), Some("token_unknown"));
        if remote() == before {
            break;
        }
        failures += 1;
        assert!(
            failures < 4 * crate::limits::FAILED_VALIDATIONS_BURST,
            "never limited"
        );
    }
    assert!(failures >= crate::limits::FAILED_VALIDATIONS_BURST);
    assert_eq!(service.stats.rate_limited.load(Ordering::Relaxed), 1);
    // A valid token from the same address still gets in.
    let login = service.login("kim", "phone").await.unwrap();
    assert!(service
        .authenticate(Some(&login.token), Some(address))
        .await
        .is_ok());
}

#[test]
fn debug_of_a_login_and_a_session_prints_no_token() {
    let login = Login {
        token: "the-token-text".into(),
        csrf_token: "the-csrf-text".into(),
        expires_at_ms: 5,
        idle_expires_at_ms: 4,
    };
    let printed = format!("{login:?}");
    assert!(!printed.contains("the-token-text") && !printed.contains("the-csrf-text"));
}

/// A view of two other regions for the fence, fixed by the test.
struct Regions {
    view: super::fence::RegionsView,
    caught_up: bool,
}

impl super::regions::RegionHealth for Regions {
    fn view(&self) -> super::fence::RegionsView {
        self.view.clone()
    }
    fn now_wall_ms(&self) -> u64 {
        1_000
    }
    fn now_monotonic_ms(&self) -> u64 {
        1_000_000
    }
    fn caught_up_since(&self, _since_wall_ms: u64) -> bool {
        self.caught_up
    }
}

/// Regions `b` and `c` of three nodes: `alive` of each alive, and all dead (since 0)
/// when none is.
fn regions(alive: [usize; 2], caught_up: bool) -> Arc<Regions> {
    let others = ["b", "c"]
        .iter()
        .zip(alive)
        .map(|(name, alive)| super::fence::RegionLiveness {
            region: Region(name.to_string()),
            nodes: 3,
            alive,
            all_dead_since_ms: (alive == 0).then_some(0),
        })
        .collect();
    let view = super::fence::RegionsView {
        others,
        version: 1,
        stalled_ms: 0,
    };
    Arc::new(Regions { view, caught_up })
}

#[tokio::test]
async fn fenced_and_catching_up_validations_are_counted_and_answered() {
    let setup = Setup::new();
    let fenced = setup
        .service(&[(0, SECRET)])
        .with_region_health(regions([0, 3], true));
    let login = fenced.login("ann", "phone").await.unwrap();
    fenced.authenticate(Some(&login.token), None).await.unwrap();
    let stats = &fenced.stats;
    assert_eq!(stats.fenced_validations.load(Ordering::Relaxed), 1);
    assert_eq!(stats.guard_mode.load(Ordering::Relaxed), 1, "fenced");
    let behind = setup
        .service(&[(0, SECRET)])
        .with_region_health(regions([3, 3], false));
    behind.authenticate(Some(&login.token), None).await.unwrap();
    let stats = &behind.stats;
    assert_eq!(stats.catching_up_validations.load(Ordering::Relaxed), 1);
    assert_eq!(stats.guard_mode.load(Ordering::Relaxed), 2, "catching up");
    let caught_up = setup
        .service(&[(0, SECRET)])
        .with_region_health(regions([3, 3], true));
    caught_up
        .authenticate(Some(&login.token), None)
        .await
        .unwrap();
    assert_eq!(caught_up.stats.guard_mode.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_revocation_without_a_majority_of_the_regions_is_refused_at_once() {
    let setup = Setup::new();
    let flags = SessionFlags {
        auth_revoke_write: Some(crate::coordinator::quorum::Level::MajorityQuorum),
        ..SessionFlags::default()
    };
    let topology = Topology::parse(
        "[cluster]\npartitions = 16\nreplicas_per_region = 1\n[[regions]]\nname = \"a\"\nnodes = 1\n",
    )
    .unwrap();
    let settings = SessionSettings::new(&topology, &flags, false, &mut Vec::new()).unwrap();
    let service = SessionService::new(
        setup.coordinator.clone(),
        settings,
        TokenKeys::new(&[(0, SECRET)]).unwrap(),
        setup.clock.clone(),
    )
    .with_region_health(regions([0, 0], true));
    let login = service.login("bo", "phone").await.unwrap();
    let auth = service
        .authenticate(Some(&login.token), None)
        .await
        .unwrap();
    let before = setup.requests();
    let refused = service.logout(&auth).await;
    assert!(
        matches!(refused, Err(SessionError::RevocationUnconfirmed { .. })),
        "{refused:?}"
    );
    let stats = &service.stats;
    assert_eq!(stats.revocations_unconfirmed.load(Ordering::Relaxed), 1);
    // Only the device list's write went out: no auth write was tried.
    assert_eq!(setup.requests() - before, 1);
}

#[tokio::test]
async fn a_token_seen_before_is_checked_in_one_round_and_still_refused_once_revoked() {
    let setup = Setup::new();
    let service = setup.service(&[(0, SECRET)]);
    let stats = &service.stats;
    let one_round = || stats.one_round_validations.load(Ordering::Relaxed);
    let login = service.login("mia", "phone").await.unwrap();
    let requests = setup.requests();
    let auth = service
        .authenticate(Some(&login.token), None)
        .await
        .unwrap();
    let first = setup.requests() - requests;
    assert_eq!(one_round(), 0, "a token not seen here takes two rounds");
    let requests = setup.requests();
    let (again, document) = service
        .authenticate_with_document(Some(&login.token), None)
        .await
        .unwrap();
    // The same reads, the document's added: only their order changed.
    assert_eq!(setup.requests() - requests, first + 1);
    assert_eq!(one_round(), 1, "its identity is known here now");
    assert_eq!(again.identity, auth.identity);
    assert_eq!(document, service.document(&auth).await.unwrap());

    // A successor made by a rotation: its parent is read ahead too.
    let successor = service.rotate(&auth, None).await.unwrap();
    service
        .authenticate(Some(&successor.token), None)
        .await
        .unwrap();
    assert_eq!(one_round(), 1);
    let successor_auth = service
        .authenticate(Some(&successor.token), None)
        .await
        .unwrap();
    assert_eq!(one_round(), 2);

    // Known or not, a token is refused as soon as its user's record refuses it.
    setup.advance(1);
    service.logout_all(&successor_auth).await.unwrap();
    setup.advance(1);
    let refused = service.authenticate(Some(&successor.token), None).await;
    assert_eq!(rejection(refused), Some("token_revoked"));
    let refused = service.authenticate(Some(&login.token), None).await;
    assert!(
        rejection(refused).is_some(),
        "the rotated-away token stays refused"
    );
}

#[tokio::test]
async fn checks_read_ahead_for_another_identity_are_read_again_for_the_right_one() {
    let setup = Setup::new();
    let service = setup.service(&[(0, SECRET)]);
    let login = service.login("nia", "phone").await.unwrap();
    let auth = service
        .authenticate(Some(&login.token), None)
        .await
        .unwrap();
    // Only the user's record refuses it (a not-before time after its creation); its
    // own record still says valid.
    setup.advance(1);
    let not_before = crate::crdt::DocOp::UserAuth(crate::crdt::UserAuthOp {
        not_before_ms: Some(service.now_ms()),
        ..Default::default()
    });
    let key = super::service::user_auth_key("nia");
    service.revoke_write(&key, not_before).await.unwrap();
    setup.advance(1);
    // The table names another user (whose record refuses nothing) for this token.
    let mut other = auth.identity.clone();
    other.user = "oscar".to_string();
    service.identities.insert(&auth.hash, &other);
    let refused = service.authenticate(Some(&login.token), None).await;
    assert_eq!(rejection(refused), Some("token_revoked"));
    let stats = &service.stats;
    assert_eq!(stats.one_round_validations.load(Ordering::Relaxed), 0);
    // With its own identity kept, the user's record read ahead refuses it just as well.
    service.identities.insert(&auth.hash, &auth.identity);
    let refused = service.authenticate(Some(&login.token), None).await;
    assert_eq!(rejection(refused), Some("token_revoked"));
    assert_eq!(stats.one_round_validations.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_replica_of_the_token_reads_it_and_its_checks_in_one_round_the_first_time() {
    let setup = Setup::with_reads_in_place(true);
    let service = setup.service(&[(0, SECRET)]);
    let login = service.login("pia", "phone").await.unwrap();
    // Another node made it: this one has never validated it, but holds its record.
    let other = setup.service(&[(0, SECRET)]);
    let auth = other.authenticate(Some(&login.token), None).await.unwrap();
    assert_eq!(other.stats.one_round_validations.load(Ordering::Relaxed), 1);
    // Its own record read in place decides nothing: a not-before time refuses it.
    setup.advance(1);
    other.logout_all(&auth).await.unwrap();
    setup.advance(1);
    let third = setup.service(&[(0, SECRET)]);
    let refused = third.authenticate(Some(&login.token), None).await;
    assert_eq!(rejection(refused), Some("token_revoked"));
}
