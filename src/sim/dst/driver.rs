//! The coordinator of one simulated node: the shipping rounds
//! (`coordinator::round::{WriteRound, ReadRound}`) driven on the virtual network. A
//! client request becomes a round; the round's effects become messages (a mint, a
//! merge, a read or digest request tagged with its phase, a read repair, the client's
//! answer) and a timer at the round's next wake; replies and timer firings go back into
//! the round. The node's driver (`coordinator::write`, `coordinator::read`) does the
//! same with tokio; neither decides anything the round does not.
//!
//! It never reads a clock (the world passes virtual and wall time) and keeps at most
//! `DST_COORDINATED_PER_NODE_MAX` requests, an answered read until its repair is
//! decided; all of them vanish when the node crashes. For the checker, not node state,
//! it notes the siblings the sibling cap dropped from a read's answer or repair, by
//! merging what the read was sent without the cap.

use super::disk::dropped_dots;
use super::network::{Address, Change, Minted, OpId, Outcome, Payload, ReqId};
use super::DST_COORDINATED_PER_NODE_MAX;
use crate::clock::{Dot, Hlc, HybridClock};
use crate::coordinator::quorum::{Level, QuorumTracker, Requirement};
use crate::coordinator::round::{
    Ask, MintAnswer, Phase, ReadAnswer, ReadEffect, ReadPlan, ReadRound, WriteEffect, WritePlan,
    WriteRound,
};
use crate::coordinator::CoordinatorError;
use crate::ids::Region;
use crate::limits::{HLC_DRIFT_MS_MAX, SIBLINGS_CAP_MAX};
use crate::object::{Object, ObjectKey};
use std::collections::BTreeMap;

/// What the world must carry out for the coordinator.
#[derive(Debug)]
pub(super) enum Effect {
    Send(Address, Box<Payload>),
    /// Call `on_timeout(req)` at this virtual time.
    Timer(u64, ReqId),
    /// The real pure code did something the data path never expects.
    Internal(String),
}

impl Effect {
    fn send(to: Address, payload: Payload) -> Effect {
        Effect::Send(to, Box::new(payload))
    }
}

/// Where a key lives: its replicas (node indexes: the current owners, local region
/// first, which vote, then the owners a pending ring change adds), the voters' regions,
/// which replicas are down, and (sloppy quorum) a live fallback for dead voters as
/// (replica index, fallback node, its region).
#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub replicas: Vec<usize>,
    /// One per voter: `replicas[..regions.len()]` vote.
    pub regions: Vec<Region>,
    pub dead: Vec<bool>,
    pub fallbacks: Vec<(usize, usize, Region)>,
}

/// A client request in flight.
#[derive(Debug)]
pub(super) struct ClientRequest {
    pub op: OpId,
    pub client: usize,
    pub key: ObjectKey,
}

/// A write: its round, what it asks a replica to make, and the version once made.
struct Write {
    round: WriteRound,
    change: Change,
    at: Hlc,
    minted: Option<Minted>,
    /// A fallback's hint counted toward the level.
    hinted: bool,
}

/// A read: its round, and (for the checker) the objects it was sent in its current
/// phase, one per replica.
struct Read {
    round: ReadRound,
    phase: Phase,
    delivered: Vec<Option<Object>>,
}

enum Round {
    Write(Box<Write>),
    Read(Box<Read>),
}

struct Pending {
    request: ClientRequest,
    plan: Plan,
    round: Round,
    /// The wake a timer is queued for.
    timer_at: Option<u64>,
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
    /// Reads whose digest phase ended without an answer, so asked for every object.
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

    /// Gives a request its id and tracker, or refuses it (overloaded, level impossible).
    fn admit(
        &mut self,
        request: &ClientRequest,
        plan: &Plan,
        level: Level,
        effects: &mut Vec<Effect>,
    ) -> Option<(ReqId, QuorumTracker)> {
        let refuse = |why| {
            let outcome = Outcome::Failed { why };
            let op = request.op;
            let reply = Payload::ClientReply { op, outcome };
            Effect::send(Address::Client(request.client), reply)
        };
        if self.pending.len() >= DST_COORDINATED_PER_NODE_MAX {
            effects.push(refuse("overloaded"));
            return None;
        }
        let Ok(requirement) = Requirement::new(level, &plan.regions, &self.region) else {
            effects.push(refuse("level cannot be met"));
            return None;
        };
        self.next += 1;
        let req = ReqId {
            incarnation: self.incarnation,
            number: self.next,
        };
        Some((req, QuorumTracker::new(requirement, plan.regions.clone())))
    }

    /// This node's index among the voters of `plan`, if it is one.
    fn here(&self, plan: &Plan) -> Option<usize> {
        let voters = &plan.replicas[..plan.regions.len()];
        voters.iter().position(|node| *node == self.node)
    }

    /// A client's write: a kv value over a context, or a document operation.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        request: ClientRequest,
        plan: Plan,
        level: Level,
        change: Change,
        now_ms: u64,
        wall_ms: u64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some((req, tracker)) = self.admit(&request, &plan, level, &mut effects) else {
            return effects;
        };
        let write_plan = WritePlan {
            level,
            tracker,
            replicas: plan.replicas.len(),
            here: self.here(&plan),
            dead: plan.dead.clone(),
            fallbacks: plan
                .fallbacks
                .iter()
                .map(|(index, _, region)| (*index, region.clone()))
                .collect(),
        };
        let mut round = WriteRound::new(write_plan, now_ms, self.timeout_ms);
        if self.planted_bug {
            round.plant_ack_before_store();
        }
        let write = Write {
            round,
            change,
            at: self.clock.now(wall_ms),
            minted: None,
            hinted: false,
        };
        let round = Round::Write(Box::new(write));
        self.start(req, request, plan, round, &mut effects);
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
        let Some((req, tracker)) = self.admit(&request, &plan, level, &mut effects) else {
            return effects;
        };
        let replicas = plan.replicas.len();
        let read_plan = ReadPlan {
            level,
            tracker,
            replicas,
            here: self.here(&plan),
            dead: plan.dead.clone(),
            digests: vec![true; replicas],
            sync_repair: false,
        };
        let read = Read {
            round: ReadRound::new(read_plan, now_ms, self.timeout_ms),
            phase: Phase::Digest,
            delivered: vec![None; replicas],
        };
        self.start(
            req,
            request,
            plan,
            Round::Read(Box::new(read)),
            &mut effects,
        );
        effects
    }

    fn start(
        &mut self,
        req: ReqId,
        request: ClientRequest,
        plan: Plan,
        round: Round,
        effects: &mut Vec<Effect>,
    ) {
        let pending = Pending {
            request,
            plan,
            round,
            timer_at: None,
        };
        self.pending.insert(req, pending);
        self.drive(req, effects);
    }

    /// The index of node `from` in the plan of `req`, with the request.
    fn find(&mut self, req: ReqId, from: usize) -> Option<(&mut Pending, usize)> {
        let pending = self.pending.get_mut(&req)?;
        let index = pending
            .plan
            .replicas
            .iter()
            .position(|node| *node == from)?;
        Some((pending, index))
    }

    /// A replica's answer to `Mint`: the version it made, or `None` when it failed;
    /// `durable` unless it is this node, flushing still.
    pub fn on_minted(
        &mut self,
        req: ReqId,
        from: usize,
        minted: Option<Box<Minted>>,
        durable: bool,
        now_ms: u64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some((pending, index)) = self.find(req, from) {
            if let Round::Write(write) = &mut pending.round {
                let answer = match minted {
                    Some(minted) => {
                        if write.minted.is_none() {
                            write.minted = Some(*minted);
                        }
                        MintAnswer::Stored { flushing: !durable }
                    }
                    None => MintAnswer::Failed,
                };
                write.round.on_minted(index, answer, now_ms);
            }
            self.drive(req, &mut effects);
        }
        effects
    }

    /// A replica stored the replicated version (or this node's flush ended), or a
    /// fallback kept its hint.
    pub fn on_stored(&mut self, req: ReqId, from: usize, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(pending) = self.pending.get_mut(&req) else {
            return effects;
        };
        let replica = pending.plan.replicas.iter().position(|node| *node == from);
        let hinted = pending
            .plan
            .fallbacks
            .iter()
            .find(|(_, node, _)| *node == from);
        let index = replica.or(hinted.map(|(index, _, _)| *index));
        if let (Some(index), Round::Write(write)) = (index, &mut pending.round) {
            write.hinted |= replica.is_none();
            write.round.on_reply(index, true, now_ms);
            self.drive(req, &mut effects);
        }
        effects
    }

    /// A replica's answer to `Read` or `ReadDigest`.
    pub fn on_read_reply(
        &mut self,
        req: ReqId,
        from: usize,
        phase: Phase,
        answer: ReadAnswer,
        now_ms: u64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some((pending, index)) = self.find(req, from) {
            if let Round::Read(read) = &mut pending.round {
                let counts = phase == read.round.phase() || phase == Phase::Refetch;
                if let (true, ReadAnswer::Object(Some(object))) = (counts, &answer) {
                    read.delivered[index].get_or_insert_with(|| object.clone());
                }
                read.round.on_reply(index, phase, answer, now_ms);
            }
            self.drive(req, &mut effects);
        }
        effects
    }

    /// The wake the round asked for came.
    pub fn on_timeout(&mut self, req: ReqId, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(pending) = self.pending.get_mut(&req) {
            pending.timer_at = None;
            match &mut pending.round {
                Round::Write(write) => write.round.on_time(now_ms),
                Round::Read(read) => read.round.on_time(now_ms),
            }
            self.drive(req, &mut effects);
        }
        effects
    }

    /// Carries out what the round of `req` decided, queues its next wake, and forgets
    /// it once it is over.
    fn drive(&mut self, req: ReqId, effects: &mut Vec<Effect>) {
        let Some(pending) = self.pending.get_mut(&req) else {
            return;
        };
        let (over, wake) = match &mut pending.round {
            Round::Write(write) => {
                drive_write(req, write, &pending.request, &pending.plan, effects);
                (write.round.is_answered(), write.round.next_wake_ms())
            }
            Round::Read(read) => {
                let mut tally = Tally::default();
                drive_read(
                    req,
                    read,
                    &pending.request,
                    &pending.plan,
                    effects,
                    &mut tally,
                );
                self.read_repairs += tally.repairs;
                self.reads_in_full += tally.in_full;
                self.dropped.extend(tally.dropped);
                (read.round.is_done(), read.round.next_wake_ms())
            }
        };
        if over {
            self.pending.remove(&req);
            return;
        }
        if let Some(wake) = wake {
            if pending.timer_at != Some(wake) {
                pending.timer_at = Some(wake);
                effects.push(Effect::Timer(wake, req));
            }
        }
    }
}

/// What a read's effects added to the coordinator's counts.
#[derive(Default)]
struct Tally {
    repairs: u64,
    in_full: u64,
    dropped: Vec<(Vec<u8>, Dot)>,
}

fn drive_write(
    req: ReqId,
    write: &mut Write,
    request: &ClientRequest,
    plan: &Plan,
    effects: &mut Vec<Effect>,
) {
    let key = &request.key;
    while let Some(effect) = write.round.poll_effect() {
        match effect {
            WriteEffect::Mint { index } => {
                let mint = Payload::Mint {
                    req,
                    key: key.clone(),
                    change: write.change.clone(),
                    at: write.at,
                };
                effects.push(Effect::send(Address::Node(plan.replicas[index]), mint));
            }
            WriteEffect::Replicate { index } => {
                let Some(minted) = &write.minted else {
                    effects.push(Effect::Internal("replication before a mint".into()));
                    continue;
                };
                let replicate = Payload::Replicate {
                    req,
                    key: key.clone(),
                    object: minted.object.clone(),
                };
                let to = Address::Node(plan.replicas[index]);
                effects.push(Effect::send(to, replicate));
            }
            WriteEffect::Hint { index } => {
                let fallback = plan
                    .fallbacks
                    .iter()
                    .find(|(hinted, _, _)| *hinted == index);
                let (Some(minted), Some((_, fallback, _))) = (&write.minted, fallback) else {
                    let detail =
                        format!("a hint for replica {index} without a version or fallback");
                    effects.push(Effect::Internal(detail));
                    continue;
                };
                let hint = Payload::Hint {
                    req,
                    owner: plan.replicas[index],
                    key: key.clone(),
                    object: minted.object.clone(),
                };
                effects.push(Effect::send(Address::Node(*fallback), hint));
            }
            WriteEffect::Answer(answer) => {
                let outcome = match (answer, &write.minted) {
                    (Ok(()), Some(minted)) => Outcome::Put {
                        dot: minted.dot,
                        stored: minted.stored.clone(),
                        hinted: write.hinted,
                    },
                    (Ok(()), None) => {
                        effects.push(Effect::Internal("a write acknowledged unminted".into()));
                        continue;
                    }
                    (Err(error), _) => Outcome::Failed { why: why(&error) },
                };
                let reply = Payload::ClientReply {
                    op: request.op,
                    outcome,
                };
                effects.push(Effect::send(Address::Client(request.client), reply));
            }
        }
    }
}

fn drive_read(
    req: ReqId,
    read: &mut Read,
    request: &ClientRequest,
    plan: &Plan,
    effects: &mut Vec<Effect>,
    tally: &mut Tally,
) {
    let key = &request.key;
    if read.round.phase() != read.phase {
        // A new phase: what was sent before is not what this one merges.
        read.phase = read.round.phase();
        read.delivered.fill(None);
    }
    while let Some(effect) = read.round.poll_effect() {
        match effect {
            ReadEffect::Ask { index, ask, phase } | ReadEffect::ReadHere { index, ask, phase } => {
                if read.round.phase() != read.phase {
                    read.phase = read.round.phase();
                    read.delivered.fill(None);
                }
                let key = key.clone();
                let payload = match ask {
                    Ask::Get => Payload::Read { req, key, phase },
                    Ask::Digest => Payload::ReadDigest { req, key, phase },
                };
                effects.push(Effect::send(Address::Node(plan.replicas[index]), payload));
            }
            ReadEffect::Repair {
                index,
                object,
                wait,
            } => {
                if wait {
                    effects.push(Effect::Internal("a read repair waited for".into()));
                    continue;
                }
                tally.repairs += 1;
                note_dropped(key, &read.delivered, &object, tally);
                let repair = Payload::Repair {
                    key: key.clone(),
                    object,
                };
                effects.push(Effect::send(Address::Node(plan.replicas[index]), repair));
            }
            ReadEffect::Answer(answer) => {
                tally.in_full += u64::from(read.round.read_in_full());
                let outcome = match answer {
                    Ok(merged) => {
                        if let Some(merged) = &merged {
                            note_dropped(key, &read.delivered, merged, tally);
                        }
                        Outcome::Get { merged }
                    }
                    Err(error) => Outcome::Failed { why: why(&error) },
                };
                let reply = Payload::ClientReply {
                    op: request.op,
                    outcome,
                };
                effects.push(Effect::send(Address::Client(request.client), reply));
            }
        }
    }
}

/// Notes the siblings of the objects a read was sent that `result` (their merge) lacks
/// because of the sibling cap: the uncapped merge has them.
fn note_dropped(key: &ObjectKey, delivered: &[Option<Object>], result: &Object, tally: &mut Tally) {
    let mut uncapped: Option<Object> = None;
    for object in delivered.iter().flatten() {
        match uncapped.as_mut() {
            Some(into) => {
                if into.merge(object, SIBLINGS_CAP_MAX).is_err() {
                    return;
                }
            }
            None => uncapped = Some(object.clone()),
        }
    }
    if let Some(uncapped) = uncapped {
        let bytes = key.storage_bytes();
        let lost = dropped_dots(&uncapped, result);
        tally
            .dropped
            .extend(lost.into_iter().map(|dot| (bytes.clone(), dot)));
    }
}

/// A short reason for the trace.
fn why(error: &CoordinatorError) -> &'static str {
    match error {
        CoordinatorError::QuorumNotReached { .. } => "quorum not reached",
        CoordinatorError::Timeout { .. } => "timeout",
        CoordinatorError::Level(_) => "level cannot be met",
        CoordinatorError::Refused { .. } => "refused",
    }
}
