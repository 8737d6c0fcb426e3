//! The driver of a read: carries out a `round::ReadRound`'s effects with tokio. A
//! request to another node goes out in a task of its own; this node's copy is read in
//! place (`Dispatch::read_here`) once the others' requests are on their way; replies
//! come back on one channel, tagged with the phase they belong to. Once the client has
//! its answer, the round (if it still waits for late replies or has replicas to repair)
//! moves into a background task holding a `READ_REPAIRS_IN_FLIGHT_MAX` permit; without a
//! permit the repair is left to anti-entropy. It decides nothing: who is asked, what
//! the answer is and whom to repair are the round's.

use super::quorum::Level;
use super::requests::Op;
use super::round::{Ask, Health, Phase, ReadAnswer, ReadEffect, ReadPlan, ReadRound};
use super::{instant_at, ms_since, whole_ms, Coordinator, CoordinatorError, Planned, Policy};
use super::{CoordinatorStats, Dispatch, DispatchError};
use crate::ids::NodeId;
use crate::object::{Object, ObjectKey};
use crate::wire::{PeerRequest, PeerResponse};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A replica's reply to one request of a read.
struct ReadReply {
    index: usize,
    phase: Phase,
    /// Boxed, as `super::Reply`'s.
    response: Box<Result<PeerResponse, DispatchError>>,
}

/// What a read's requests name: the key, for building them.
fn request_for(key: &ObjectKey, ask: Ask) -> PeerRequest {
    match ask {
        Ask::Get => PeerRequest::Get { key: key.clone() },
        Ask::Digest => PeerRequest::Digest { key: key.clone() },
    }
}

/// What a reply means to the round.
fn answer_of(
    dispatch: &dyn Dispatch,
    node: &NodeId,
    response: Result<PeerResponse, DispatchError>,
) -> ReadAnswer {
    match response {
        Ok(PeerResponse::Object(object)) => ReadAnswer::Object(object),
        Ok(PeerResponse::Digest(digest)) => ReadAnswer::Digest(digest),
        _ => ReadAnswer::Failed {
            refuses_digests: !dispatch.digests(node),
        },
    }
}

impl Coordinator {
    /// Reads a key at `level`: the merge of the replies that met it. Stale replicas,
    /// also among late replies, are repaired in the background.
    pub async fn get(
        &self,
        key: &ObjectKey,
        level: Level,
    ) -> Result<Option<Object>, CoordinatorError> {
        let policy = Policy {
            sloppy: self.sloppy,
            sync_repair: false,
        };
        self.get_with(key, level, policy).await
    }

    /// `get` under a class's policy: with `sync_repair`, the replicas that answered
    /// with less are repaired before the read returns (late ones still in the
    /// background).
    ///
    /// One replica (the nearest asked) sends its object, the others only its digest;
    /// when every digest matches, that object is the answer. When one differs (the
    /// replicas disagree) or no object came, the read runs again asking every replica
    /// for its object, and repairs.
    pub async fn get_with(
        &self,
        key: &ObjectKey,
        level: Level,
        policy: Policy,
    ) -> Result<Option<Object>, CoordinatorError> {
        let started = Instant::now();
        let answer = self.read(key, level, policy).await;
        let latencies = &self.stats.latencies;
        latencies.observe(Op::Read, key.class, level, &answer, started.elapsed());
        answer
    }

    async fn read(
        &self,
        key: &ObjectKey,
        level: Level,
        policy: Policy,
    ) -> Result<Option<Object>, CoordinatorError> {
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        self.budget.lock().expect("budget lock poisoned").on_read();
        let (nodes, plan, health) = match self.read_plan(key, level, policy) {
            Ok(planned) => planned,
            Err(error) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                return Err(error);
            }
        };
        let mut round = ReadRound::with_health(plan, health, 0, whole_ms(self.timeout));
        // Room for a reply to every request of both phases: the in-place read never
        // waits for room.
        let (sender, mut replies) = mpsc::channel(2 * nodes.len().max(1));
        loop {
            let mut repairs = Vec::new();
            while let Some(effect) = round.poll_effect() {
                match effect {
                    ReadEffect::Ask { index, ask, phase } => {
                        self.spawn_read(&sender, index, phase, &nodes[index], key, ask)
                    }
                    ReadEffect::ReadHere { index, ask, phase } => {
                        self.read_here(&sender, index, phase, key, ask)
                    }
                    ReadEffect::Repair { index, object, .. } => repairs.push((index, object)),
                    ReadEffect::Answer(answer) => {
                        self.count_answer(&round, &answer);
                        drop(sender);
                        self.spawn_late(key, nodes, round, replies, started);
                        return answer;
                    }
                }
            }
            if !repairs.is_empty() {
                self.repair_before_answer(key, &nodes, repairs, &mut round, started)
                    .await;
                continue;
            }
            let wake = round.next_wake_ms().unwrap_or(0);
            match tokio::time::timeout_at(instant_at(started, wake), replies.recv()).await {
                Ok(Some(reply)) => {
                    let node = &nodes[reply.index];
                    let answer = answer_of(self.dispatch.as_ref(), node, *reply.response);
                    round.on_reply(reply.index, reply.phase, answer, ms_since(started));
                }
                _ => self.on_time(&mut round, ms_since(started).max(wake)),
            }
        }
    }

    /// The round's time passes; a speculation it wants is first put to the budget.
    fn on_time(&self, round: &mut ReadRound, now_ms: u64) {
        if round.speculation_due(now_ms) {
            let allowed = self.budget.lock().expect("budget lock poisoned").try_take();
            match allowed {
                true => self.stats.speculations.fetch_add(1, Ordering::Relaxed),
                false => {
                    round.forgo_speculation();
                    self.stats
                        .speculations_refused
                        .fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        round.on_time(now_ms);
    }

    /// The replicas of a read and the round's plan.
    fn read_plan(
        &self,
        key: &ObjectKey,
        level: Level,
        policy: Policy,
    ) -> Result<(Vec<NodeId>, ReadPlan, Health), CoordinatorError> {
        let Planned {
            nodes,
            tracker,
            here,
            dead,
            health,
        } = self.plan(key, level)?;
        let plan = ReadPlan {
            level,
            tracker,
            replicas: nodes.len(),
            here,
            dead,
            digests: nodes
                .iter()
                .map(|node| self.dispatch.digests(node))
                .collect(),
            sync_repair: policy.sync_repair,
        };
        Ok((nodes, plan, health))
    }

    fn count_answer(&self, round: &ReadRound, answer: &Result<Option<Object>, CoordinatorError>) {
        if round.digest_mismatched() {
            self.stats.digest_mismatches.fetch_add(1, Ordering::Relaxed);
        }
        let resends = u64::from(round.resends_total());
        self.stats.resends.fetch_add(resends, Ordering::Relaxed);
        if answer.is_err() {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes the merge to the replicas that answered with less and waits for them
    /// (`sync_repair`), until the deadline; tells the round who stored it.
    async fn repair_before_answer(
        &self,
        key: &ObjectKey,
        nodes: &[NodeId],
        repairs: Vec<(usize, Object)>,
        round: &mut ReadRound,
        started: Instant,
    ) {
        let deadline = instant_at(started, round.next_wake_ms().unwrap_or(0));
        let (indexes, objects): (Vec<usize>, Vec<Object>) = repairs.into_iter().unzip();
        let sends = indexes.iter().zip(objects).map(|(index, object)| {
            self.stats.read_repairs.fetch_add(1, Ordering::Relaxed);
            let request = PeerRequest::Merge {
                key: key.clone(),
                object,
            };
            tokio::time::timeout_at(deadline, self.dispatch.send(&nodes[*index], request))
        });
        let results = futures::future::join_all(sends).await;
        for (index, result) in indexes.iter().zip(results) {
            let ok = matches!(result, Ok(Ok(PeerResponse::Stored(_) | PeerResponse::Done)));
            round.on_repaired(*index, ok, ms_since(started));
        }
    }

    /// Sends one read request in its own task; its reply comes back on `sender`.
    fn spawn_read(
        &self,
        sender: &mpsc::Sender<ReadReply>,
        index: usize,
        phase: Phase,
        node: &NodeId,
        key: &ObjectKey,
        ask: Ask,
    ) {
        let future = self.timed_send(node, request_for(key, ask));
        let sender = sender.clone();
        tokio::spawn(async move {
            let response = future.await;
            // The receiver may be gone when the read finished early: a late reply.
            let reply = ReadReply {
                index,
                phase,
                response: Box::new(response),
            };
            let _ = sender.send(reply).await;
        });
    }

    /// This node's own copy of `key`, if it holds one and can read it in place: no
    /// quorum, no network, possibly behind the others. For what never changes once
    /// written (a token's identity), never for what a verdict rests on.
    pub fn local_copy(&self, key: &ObjectKey) -> Option<Object> {
        let request = PeerRequest::Get { key: key.clone() };
        match self.dispatch.read_here(&self.node, &request)? {
            PeerResponse::Object(object) => object,
            _ => None,
        }
    }

    /// Reads this node's copy in place (a lookup costs less than a task and a channel),
    /// or sends the request to itself when that cannot be done in place.
    fn read_here(
        &self,
        sender: &mpsc::Sender<ReadReply>,
        index: usize,
        phase: Phase,
        key: &ObjectKey,
        ask: Ask,
    ) {
        let request = request_for(key, ask);
        match self.dispatch.read_here(&self.node, &request) {
            Some(response) => {
                let reply = ReadReply {
                    index,
                    phase,
                    response: Box::new(Ok(response)),
                };
                // The channel holds a reply per request of both phases: room.
                if let Err(error) = sender.try_send(reply) {
                    tracing::error!(%error, "a read's own reply found no room");
                }
            }
            None => self.spawn_read(sender, index, phase, &self.node, key, ask),
        }
    }

    /// Hands an answered round that still waits for late replies, or has replicas to
    /// repair, to a background task, if a repair permit is free.
    fn spawn_late(
        &self,
        key: &ObjectKey,
        nodes: Vec<NodeId>,
        round: ReadRound,
        replies: mpsc::Receiver<ReadReply>,
        started: Instant,
    ) {
        if round.is_done() && !round.has_effects() {
            return;
        }
        let Ok(permit) = self.repairs.clone().try_acquire_owned() else {
            return;
        };
        let late = Late {
            key: key.clone(),
            nodes,
            round,
            replies,
            started,
            dispatch: self.dispatch.clone(),
            stats: self.stats.clone(),
        };
        tokio::spawn(async move {
            let _permit = permit;
            late.run().await;
        });
    }
}

/// An answered read still repairing: waits (until the deadline) for the replies not
/// yet in, then writes the merge to every replica that answered with less.
struct Late {
    key: ObjectKey,
    nodes: Vec<NodeId>,
    round: ReadRound,
    replies: mpsc::Receiver<ReadReply>,
    started: Instant,
    dispatch: Arc<dyn Dispatch>,
    stats: Arc<CoordinatorStats>,
}

impl Late {
    async fn run(mut self) {
        loop {
            while let Some(effect) = self.round.poll_effect() {
                self.carry_out(effect).await;
            }
            let Some(wake) = self.round.next_wake_ms() else {
                return;
            };
            let at = instant_at(self.started, wake);
            match tokio::time::timeout_at(at, self.replies.recv()).await {
                Ok(Some(reply)) => {
                    let node = &self.nodes[reply.index];
                    let answer = answer_of(self.dispatch.as_ref(), node, *reply.response);
                    let now_ms = ms_since(self.started);
                    self.round
                        .on_reply(reply.index, reply.phase, answer, now_ms);
                }
                // Every request has answered or the deadline passed.
                _ => self.round.on_time(ms_since(self.started).max(wake)),
            }
        }
    }

    /// A late digest that differs costs a read of that replica's object (awaited here,
    /// until the deadline); a repair is sent and its reply not waited for by anyone.
    async fn carry_out(&mut self, effect: ReadEffect) {
        match effect {
            ReadEffect::Ask { index, ask, phase } | ReadEffect::ReadHere { index, ask, phase } => {
                let node = &self.nodes[index];
                let sent = self.dispatch.send(node, request_for(&self.key, ask));
                let wake = self.round.next_wake_ms().unwrap_or(0);
                let answer =
                    match tokio::time::timeout_at(instant_at(self.started, wake), sent).await {
                        Ok(response) => answer_of(self.dispatch.as_ref(), node, response),
                        Err(_) => ReadAnswer::Failed {
                            refuses_digests: false,
                        },
                    };
                let now_ms = ms_since(self.started);
                self.round.on_reply(index, phase, answer, now_ms);
            }
            ReadEffect::Repair { index, object, .. } => {
                self.stats.read_repairs.fetch_add(1, Ordering::Relaxed);
                let request = PeerRequest::Merge {
                    key: self.key.clone(),
                    object,
                };
                let _ = self.dispatch.send(&self.nodes[index], request).await;
            }
            ReadEffect::Answer(_) => {}
        }
    }
}
