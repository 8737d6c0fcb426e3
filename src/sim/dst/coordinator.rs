//! The coordinator of one simulated node as a pure state machine: a client request in,
//! messages to replicas out, replies fed back one at a time, decided by the real
//! `QuorumTracker`. It follows `crate::coordinator`: a write is minted on one replica
//! (this node first when it is one, then in preference order, at most
//! `limits::MINT_ATTEMPTS_MAX` tries), then merged into the others and acknowledged
//! once the write level is met. A read asks one replica (this node when it is one) for
//! its object and every other for its digest; when the level is met and every digest
//! matches the object, the object is the answer. When a digest differs, or the level is
//! met before the object came, the read asks every replica for its object and answers
//! with the merge of the replies that met the level. Then it waits for the late replies
//! until the request's deadline (a late digest that differs gets its replica's object
//! read) and repairs every replica that answered with less. (The real coordinator
//! waits its speculation delay for a missing object first, and asks only as many
//! replicas as the level needs: timing, not a different answer.)
//!
//! It never reads a clock (the world passes virtual and wall time) and keeps at most
//! `DST_COORDINATED_PER_NODE_MAX` requests; all of them vanish when the node crashes.

use super::network::{Address, OpId, Outcome, Payload, ReqId};
use super::replica::merge_counting_drops;
use super::DST_COORDINATED_PER_NODE_MAX;
use crate::clock::{Dot, HybridClock, VersionVector};
use crate::coordinator::quorum::{Level, Progress, QuorumTracker, Requirement};
use crate::ids::Region;
use crate::limits::{HLC_DRIFT_MS_MAX, MINT_ATTEMPTS_MAX};
use crate::object::{Blob, Object, ObjectKey};
use std::collections::BTreeMap;

/// What the world must carry out for the coordinator.
#[derive(Debug)]
pub(super) enum Effect {
    Send(Address, Box<Payload>),
    /// Call `on_timeout(req)` at this virtual time.
    Timer(u64, ReqId),
    /// The real pure code refused something the data path never expects.
    Internal(String),
}

impl Effect {
    fn send(to: Address, payload: Payload) -> Effect {
        Effect::Send(to, Box::new(payload))
    }
}

/// Where a key lives: its replicas (node indexes, local region first) and their regions.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub replicas: Vec<usize>,
    pub regions: Vec<Region>,
}

/// A client request in flight.
#[derive(Debug)]
pub(super) struct ClientRequest {
    pub op: OpId,
    pub client: usize,
    pub key: ObjectKey,
}

enum Stage {
    /// Waiting for `attempts[0]` to mint; the rest are the next tries.
    Minting {
        attempts: Vec<usize>,
        context: VersionVector,
        value: Blob,
        at: crate::clock::Hlc,
    },
    Replicating {
        dot: Dot,
        stored: Object,
    },
    Reading {
        /// The objects replicas answered (`Some(None)`: holds nothing).
        seen: Vec<Option<Option<Object>>>,
        /// While the read compares digests; `None` once it asks for every object.
        digests: Option<Digests>,
        answered: bool,
    },
}

/// The digest round of a read.
struct Digests {
    /// The replica asked for its object.
    data_at: usize,
    /// The digests the others answered (`Some(None)`: holds nothing).
    digests: Vec<Option<Option<[u8; 32]>>>,
}

impl Digests {
    /// The digest every replica must answer for the object to be the answer, once the
    /// object came.
    fn expected(&self, seen: &[Option<Option<Object>>]) -> Option<Option<[u8; 32]>> {
        seen[self.data_at]
            .as_ref()
            .map(|object| object.as_ref().map(Object::digest))
    }
}

struct Pending {
    request: ClientRequest,
    plan: Plan,
    tracker: QuorumTracker,
    stage: Stage,
}

/// One node's coordinator.
pub(super) struct Coordinator {
    node: usize,
    region: Region,
    incarnation: u32,
    next: u64,
    clock: HybridClock,
    pending: BTreeMap<ReqId, Pending>,
    timeout_ms: u64,
    planted_bug: bool,
    pub read_repairs: u64,
    /// Reads whose digest round ended without an answer (a digest differed, or the
    /// level was met before the object came), so asked every replica for its object.
    pub reads_in_full: u64,
    /// For the checker, not node state: (storage key, dot) of siblings the sibling cap
    /// dropped while merging replies, since the world last drained this list.
    pub dropped: Vec<(Vec<u8>, Dot)>,
}

impl Coordinator {
    pub fn new(node: usize, region: Region, timeout_ms: u64, planted_bug: bool) -> Self {
        Coordinator {
            node,
            region,
            incarnation: 0,
            next: 0,
            clock: HybridClock::new(HLC_DRIFT_MS_MAX),
            pending: BTreeMap::new(),
            timeout_ms,
            planted_bug,
            read_repairs: 0,
            reads_in_full: 0,
            dropped: Vec::new(),
        }
    }

    /// A crash: every request in flight is forgotten (their clients time out).
    pub fn crash(&mut self) {
        self.pending.clear();
        self.incarnation += 1;
        self.next = 0;
        self.clock = HybridClock::new(HLC_DRIFT_MS_MAX);
    }

    /// Registers a request, or refuses it (overloaded, level impossible).
    fn admit(
        &mut self,
        request: ClientRequest,
        plan: Plan,
        level: Level,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) -> Option<(ReqId, ClientRequest, Plan, QuorumTracker)> {
        let refuse = |request: &ClientRequest, why| {
            let outcome = Outcome::Failed { why };
            let reply = Payload::ClientReply {
                op: request.op,
                outcome,
            };
            Effect::send(Address::Client(request.client), reply)
        };
        if self.pending.len() >= DST_COORDINATED_PER_NODE_MAX {
            effects.push(refuse(&request, "overloaded"));
            return None;
        }
        let Ok(requirement) = Requirement::new(level, &plan.regions, &self.region) else {
            effects.push(refuse(&request, "level cannot be met"));
            return None;
        };
        let tracker = QuorumTracker::new(requirement, plan.regions.clone());
        self.next += 1;
        let req = ReqId {
            incarnation: self.incarnation,
            number: self.next,
        };
        effects.push(Effect::Timer(now_ms + self.timeout_ms, req));
        Some((req, request, plan, tracker))
    }

    /// A client's write of `value` over what `context` has seen.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        request: ClientRequest,
        plan: Plan,
        level: Level,
        value: Blob,
        context: VersionVector,
        now_ms: u64,
        wall_ms: u64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some((req, request, plan, tracker)) =
            self.admit(request, plan, level, now_ms, &mut effects)
        else {
            return effects;
        };
        let mut attempts: Vec<usize> = (0..plan.replicas.len()).collect();
        if let Some(me) = plan.replicas.iter().position(|node| *node == self.node) {
            attempts.retain(|index| *index != me);
            attempts.insert(0, me);
        }
        attempts.truncate(MINT_ATTEMPTS_MAX);
        let at = self.clock.now(wall_ms);
        let mint = Payload::Mint {
            req,
            key: request.key.clone(),
            context: context.clone(),
            value: value.clone(),
            at,
        };
        effects.push(Effect::send(
            Address::Node(plan.replicas[attempts[0]]),
            mint,
        ));
        let stage = Stage::Minting {
            attempts,
            context,
            value,
            at,
        };
        self.pending.insert(
            req,
            Pending {
                request,
                plan,
                tracker,
                stage,
            },
        );
        effects
    }

    /// A client's read.
    pub fn get(
        &mut self,
        request: ClientRequest,
        plan: Plan,
        level: Level,
        now_ms: u64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some((req, request, plan, tracker)) =
            self.admit(request, plan, level, now_ms, &mut effects)
        else {
            return effects;
        };
        let data_at = plan
            .replicas
            .iter()
            .position(|node| *node == self.node)
            .unwrap_or(0);
        for (index, node) in plan.replicas.iter().enumerate() {
            let key = request.key.clone();
            let read = match index == data_at {
                true => Payload::Read { req, key },
                false => Payload::ReadDigest { req, key },
            };
            effects.push(Effect::send(Address::Node(*node), read));
        }
        let stage = Stage::Reading {
            seen: vec![None; plan.replicas.len()],
            digests: Some(Digests {
                data_at,
                digests: vec![None; plan.replicas.len()],
            }),
            answered: false,
        };
        self.pending.insert(
            req,
            Pending {
                request,
                plan,
                tracker,
                stage,
            },
        );
        effects
    }

    /// A replica's answer to `Mint`.
    pub fn on_minted(
        &mut self,
        req: ReqId,
        from: usize,
        minted: Option<(Dot, Object)>,
        durable: bool,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(pending) = self.pending.get_mut(&req) else {
            return effects;
        };
        let Stage::Minting { attempts, .. } = &pending.stage else {
            return effects;
        };
        let index = attempts[0];
        if pending.plan.replicas[index] != from {
            return effects;
        }
        let Some((dot, stored)) = minted else {
            self.retry_mint(req, &mut effects);
            return effects;
        };
        // Not yet durable at the minter: it counts when its flush ends (`on_stored`).
        let mut progress = match durable {
            true => pending.tracker.record(index, true),
            false => pending.tracker.progress(),
        };
        for (other, node) in pending.plan.replicas.iter().enumerate() {
            if other == index {
                continue;
            }
            let replicate = Payload::Replicate {
                req,
                key: pending.request.key.clone(),
                object: stored.clone(),
            };
            effects.push(Effect::send(Address::Node(*node), replicate));
            if self.planted_bug {
                // The planted bug: an acknowledgement counted before the replica stored.
                progress = pending.tracker.record(other, true);
            }
        }
        pending.stage = Stage::Replicating {
            dot,
            stored: stored.clone(),
        };
        if progress == Progress::Met {
            self.finish(req, Outcome::Put { dot, stored }, &mut effects);
        }
        effects
    }

    /// The replica asked to mint could not: count it failed, ask the next one.
    fn retry_mint(&mut self, req: ReqId, effects: &mut Vec<Effect>) {
        let Some(pending) = self.pending.get_mut(&req) else {
            return;
        };
        let Stage::Minting {
            attempts,
            context,
            value,
            at,
        } = &mut pending.stage
        else {
            return;
        };
        let index = attempts.remove(0);
        let progress = pending.tracker.record(index, false);
        if matches!(progress, Progress::Failed { .. }) || attempts.is_empty() {
            let outcome = Outcome::Failed {
                why: "no replica minted",
            };
            self.finish(req, outcome, effects);
            return;
        }
        let mint = Payload::Mint {
            req,
            key: pending.request.key.clone(),
            context: context.clone(),
            value: value.clone(),
            at: *at,
        };
        let to = Address::Node(pending.plan.replicas[attempts[0]]);
        effects.push(Effect::send(to, mint));
    }

    /// A replica stored the replicated version.
    pub fn on_stored(&mut self, req: ReqId, from: usize) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(pending) = self.pending.get_mut(&req) else {
            return effects;
        };
        let Stage::Replicating { dot, stored } = &pending.stage else {
            return effects;
        };
        let Some(index) = pending.plan.replicas.iter().position(|node| *node == from) else {
            return effects;
        };
        if pending.tracker.record(index, true) == Progress::Met {
            let outcome = Outcome::Put {
                dot: *dot,
                stored: stored.clone(),
            };
            self.finish(req, outcome, &mut effects);
        }
        effects
    }

    /// A replica's answer to `Read`.
    pub fn on_read_reply(
        &mut self,
        req: ReqId,
        from: usize,
        object: Option<Object>,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(pending) = self.pending.get_mut(&req) else {
            return effects;
        };
        let Stage::Reading { seen, answered, .. } = &mut pending.stage else {
            return effects;
        };
        let Some(index) = pending.plan.replicas.iter().position(|node| *node == from) else {
            return effects;
        };
        if seen[index].is_none() {
            seen[index] = Some(object);
        }
        if !*answered {
            pending.tracker.record(index, true);
        }
        self.advance_read(req, &mut effects);
        effects
    }

    /// A replica's answer to `ReadDigest`.
    pub fn on_digest_reply(
        &mut self,
        req: ReqId,
        from: usize,
        digest: Option<[u8; 32]>,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(pending) = self.pending.get_mut(&req) else {
            return effects;
        };
        let Stage::Reading {
            seen,
            digests: Some(round),
            answered,
        } = &mut pending.stage
        else {
            // The read asks for objects now: a digest of the round before is no answer.
            return effects;
        };
        let Some(index) = pending.plan.replicas.iter().position(|node| *node == from) else {
            return effects;
        };
        if round.digests[index].is_some() {
            return effects;
        }
        round.digests[index] = Some(digest);
        if !*answered {
            pending.tracker.record(index, true);
        } else if round.expected(seen) != Some(digest) {
            // Late and different: read that replica's object, for the repair.
            let read = Payload::Read {
                req,
                key: pending.request.key.clone(),
            };
            effects.push(Effect::send(Address::Node(from), read));
        }
        self.advance_read(req, &mut effects);
        effects
    }

    /// After a reply: answers the client once the level is met (the object when every
    /// digest matches it; otherwise asks every replica for its object first), and
    /// repairs once every replica has answered.
    fn advance_read(&mut self, req: ReqId, effects: &mut Vec<Effect>) {
        let Some(pending) = self.pending.get_mut(&req) else {
            return;
        };
        let Stage::Reading {
            seen,
            digests,
            answered,
        } = &mut pending.stage
        else {
            return;
        };
        if !*answered && pending.tracker.progress() == Progress::Met {
            let answer = match digests {
                None => Some(merge_all(seen.iter().flatten())),
                Some(round) => match round.expected(seen) {
                    Some(expected)
                        if round
                            .digests
                            .iter()
                            .flatten()
                            .all(|digest| *digest == expected) =>
                    {
                        let data = seen[round.data_at].clone().flatten();
                        Some(Ok((data, Vec::new())))
                    }
                    // A digest differs, or the object has not come: read every object.
                    _ => None,
                },
            };
            match answer {
                Some(Ok((merged, lost))) => {
                    *answered = true;
                    let key = pending.request.key.storage_bytes();
                    self.dropped
                        .extend(lost.into_iter().map(|dot| (key.clone(), dot)));
                    let reply = Payload::ClientReply {
                        op: pending.request.op,
                        outcome: Outcome::Get { merged },
                    };
                    effects.push(Effect::send(Address::Client(pending.request.client), reply));
                }
                Some(Err(error)) => effects.push(Effect::Internal(error)),
                None => {
                    self.reads_in_full += 1;
                    *digests = None;
                    *seen = vec![None; seen.len()];
                    let requirement = pending.tracker.requirement().clone();
                    pending.tracker = QuorumTracker::new(requirement, pending.plan.regions.clone());
                    for node in &pending.plan.replicas {
                        let read = Payload::Read {
                            req,
                            key: pending.request.key.clone(),
                        };
                        effects.push(Effect::send(Address::Node(*node), read));
                    }
                    return;
                }
            }
        }
        // Every replica has answered: with its object, or with a digest that matched.
        let settled = |index: usize| {
            seen[index].is_some()
                || digests.as_ref().is_some_and(|round| {
                    round.digests[index].is_some_and(|digest| round.expected(seen) == Some(digest))
                })
        };
        if *answered && (0..seen.len()).all(settled) {
            self.repair(req, effects);
        }
    }

    /// The request's deadline passed.
    pub fn on_timeout(&mut self, req: ReqId) -> Vec<Effect> {
        let mut effects = Vec::new();
        match self.pending.get(&req).map(|pending| &pending.stage) {
            None => {}
            Some(Stage::Reading { answered: true, .. }) => self.repair(req, &mut effects),
            Some(_) => self.finish(req, Outcome::Failed { why: "timeout" }, &mut effects),
        }
        effects
    }

    /// Ends a read whose client has its answer: merges every reply seen and writes the
    /// merge to each replica that answered with less (the background read repair).
    fn repair(&mut self, req: ReqId, effects: &mut Vec<Effect>) {
        let Some(pending) = self.pending.remove(&req) else {
            return;
        };
        let Stage::Reading { seen, .. } = &pending.stage else {
            return;
        };
        let merged = match merge_all(seen.iter().flatten()) {
            Ok((Some(merged), lost)) => {
                let key = pending.request.key.storage_bytes();
                self.dropped
                    .extend(lost.into_iter().map(|dot| (key.clone(), dot)));
                merged
            }
            Ok((None, _)) => return,
            Err(error) => {
                effects.push(Effect::Internal(error));
                return;
            }
        };
        for (index, answer) in seen.iter().enumerate() {
            let stale = match answer {
                Some(Some(object)) => *object != merged,
                Some(None) => true,
                None => false,
            };
            if stale {
                self.read_repairs += 1;
                let repair = Payload::Repair {
                    key: pending.request.key.clone(),
                    object: merged.clone(),
                };
                effects.push(Effect::send(
                    Address::Node(pending.plan.replicas[index]),
                    repair,
                ));
            }
        }
    }

    fn finish(&mut self, req: ReqId, outcome: Outcome, effects: &mut Vec<Effect>) {
        if let Some(pending) = self.pending.remove(&req) {
            let reply = Payload::ClientReply {
                op: pending.request.op,
                outcome,
            };
            effects.push(Effect::send(Address::Client(pending.request.client), reply));
        }
    }
}

/// The merge of every object given (`None` if there was none), like the real
/// coordinator's `merge_all`, but a refused merge is reported instead of logged; also
/// the dots the sibling cap dropped on the way.
fn merge_all<'a>(
    objects: impl Iterator<Item = &'a Option<Object>>,
) -> Result<(Option<Object>, Vec<Dot>), String> {
    let mut merged: Option<Object> = None;
    let mut dropped = Vec::new();
    for object in objects.flatten() {
        match merged.as_mut() {
            Some(into) => dropped.extend(
                merge_counting_drops(into, object)
                    .map_err(|error| format!("replies could not be merged: {error}"))?,
            ),
            None => merged = Some(object.clone()),
        }
    }
    Ok((merged, dropped))
}
