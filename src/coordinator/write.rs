//! The driver of a write: carries out a `round::WriteRound`'s effects with tokio. A mint
//! on this node is made in place (`Dispatch::mint_here`), so the version travels while
//! this node flushes, and that flush's outcome comes back to the round as this
//! replica's reply; every other request goes out in a task of its own. It decides
//! nothing: who is asked, what counts and when to answer are the round's.

use super::requests::Op;
use super::round::{p99_patience_ms, resend_after_ms, Resends};
use super::round::{Health, MintAnswer, WriteEffect, WritePlan, WriteRound};
use super::{instant_at, ms_since, whole_ms, Coordinator, CoordinatorError, Durable, Reply};
use super::{Planned, Policy};
use crate::clock::Hlc;
use crate::coordinator::quorum::Level;
use crate::crdt::redis::RedisOutcome;
use crate::ids::{NodeId, Region};
use crate::limits;
use crate::object::{Object, ObjectKey};
use crate::wire::{PeerError, PeerRequest, PeerResponse};
use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A new version: what the minter stored (the client's answer) and what goes to the
/// other replicas (the whole object, or a document's delta).
struct Minted {
    stored: Object,
    object: Object,
    /// What a Redis command answers, from the replica that applied it.
    outcome: Option<RedisOutcome>,
}

/// A write's answer: the object as the minting replica stored it, and what a Redis
/// command answers (`None` for every other write).
pub(super) type Written = (Object, Option<RedisOutcome>);

/// A dead voter, the live node that takes its hint, and that node's region.
type Fallback = (usize, NodeId, Region);

/// One write in flight: what its effects need.
struct Write<'a> {
    coordinator: &'a Coordinator,
    key: &'a ObjectKey,
    nodes: Vec<NodeId>,
    fallbacks: Vec<Fallback>,
    request: PeerRequest,
    started: Instant,
    minted: Option<Minted>,
    /// This node's flush of the version it minted, as a reply from the minter.
    flushing: Option<(usize, Durable)>,
    /// The merge every other replica gets, built once.
    merge: Option<PeerRequest>,
    sender: mpsc::Sender<Reply>,
}

impl Coordinator {
    /// The write path shared by `put` and `apply`: one replica makes the new version
    /// (`first`, given this node's HLC time), then it travels to the other replicas and,
    /// for dead ones under a sloppy policy, to fallbacks as hints.
    pub(super) async fn write(
        &self,
        key: &ObjectKey,
        level: Level,
        policy: Policy,
        first: impl FnOnce(Hlc) -> PeerRequest,
    ) -> Result<Written, CoordinatorError> {
        let started = Instant::now();
        let answer = self.write_round(key, level, policy, first).await;
        let latencies = &self.stats.latencies;
        latencies.observe(Op::Write, key.class, level, &answer, started.elapsed());
        answer
    }

    async fn write_round(
        &self,
        key: &ObjectKey,
        level: Level,
        policy: Policy,
        first: impl FnOnce(Hlc) -> PeerRequest,
    ) -> Result<Written, CoordinatorError> {
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let (nodes, fallbacks, plan, health) = self.write_plan(key, level, policy)?;
        let mut round = WriteRound::with_health(plan, &health, 0, whole_ms(self.timeout));
        let (sender, mut replies) = mpsc::channel(nodes.len() + fallbacks.len());
        let mut write = Write {
            coordinator: self,
            key,
            nodes,
            fallbacks,
            request: first(self.now()),
            started,
            minted: None,
            flushing: None,
            merge: None,
            sender,
        };
        loop {
            while let Some(effect) = round.poll_effect() {
                if let Some(answer) = write.carry_out(effect, &mut round).await {
                    let resends = u64::from(round.resends());
                    self.stats.resends.fetch_add(resends, Ordering::Relaxed);
                    if answer.is_err() {
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    }
                    return answer;
                }
            }
            let wake = round.next_wake_ms().unwrap_or(0);
            let next = next_answer(&mut replies, &mut write.flushing);
            match tokio::time::timeout_at(instant_at(started, wake), next).await {
                Ok(reply) => {
                    let ok = matches!(
                        *reply.response,
                        Ok(PeerResponse::Stored(_) | PeerResponse::Done)
                    );
                    round.on_reply(reply.index, ok, ms_since(started));
                }
                Err(_) => round.on_time(ms_since(started).max(wake)),
            }
        }
    }

    /// How long a remote mint may take before the next replica is asked: a multiple of
    /// the minter's measured p99 between `MINT_PATIENCE_FLOOR_MS` and
    /// `MINT_PATIENCE_MAX_MS` (the most while nothing is measured). A minter that died
    /// before the failure detector suspected it costs this, not the request timeout.
    fn mint_patience(minter: &Health) -> std::time::Duration {
        std::time::Duration::from_millis(p99_patience_ms(
            minter.p99_ms[0],
            limits::MINT_PATIENCE_P99_FACTOR,
            limits::MINT_PATIENCE_FLOOR_MS,
            limits::MINT_PATIENCE_MAX_MS,
        ))
    }

    /// The replicas of a write, the fallbacks of its dead voters under a sloppy
    /// policy, and the round's plan.
    fn write_plan(
        &self,
        key: &ObjectKey,
        level: Level,
        policy: Policy,
    ) -> Result<(Vec<NodeId>, Vec<Fallback>, WritePlan, Health), CoordinatorError> {
        let Planned {
            nodes,
            tracker,
            here,
            dead,
            health,
        } = self.plan(key, level)?;
        let fallbacks = match policy.sloppy {
            true => {
                let voters = tracker.replicas();
                let dead_voters: Vec<usize> = (0..voters).filter(|index| dead[*index]).collect();
                self.fallbacks_for(key, &nodes, &dead_voters)
            }
            false => Vec::new(),
        };
        let plan = WritePlan {
            level,
            tracker,
            replicas: nodes.len(),
            here,
            dead,
            fallbacks: fallbacks
                .iter()
                .map(|(index, _, region)| (*index, region.clone()))
                .collect(),
        };
        Ok((nodes, fallbacks, plan, health))
    }
}

impl Write<'_> {
    /// Carries out one effect; the client's answer when it is one.
    async fn carry_out(
        &mut self,
        effect: WriteEffect,
        round: &mut WriteRound,
    ) -> Option<Result<Written, CoordinatorError>> {
        match effect {
            WriteEffect::Mint { index } => {
                match self.mint(index, round.mint_alternative_left()).await {
                    Some(answer) => round.on_minted(index, answer, ms_since(self.started)),
                    None => round.on_time(ms_since(self.started)),
                }
            }
            WriteEffect::Replicate { index } => {
                let Some(minted) = &self.minted else {
                    return None;
                };
                let merge = self.merge.get_or_insert_with(|| PeerRequest::Merge {
                    key: self.key.clone(),
                    object: minted.object.clone(),
                });
                let (node, merge) = (&self.nodes[index], merge.clone());
                self.coordinator
                    .spawn_send(&self.sender, index, node, merge);
            }
            WriteEffect::Hint { index } => {
                let fallback = self
                    .fallbacks
                    .iter()
                    .find(|(hinted, _, _)| *hinted == index);
                let (Some(minted), Some((_, fallback, _))) = (&self.minted, fallback) else {
                    return None;
                };
                let hint = PeerRequest::Hint {
                    owner: self.nodes[index].clone(),
                    key: self.key.clone(),
                    object: minted.object.clone(),
                };
                self.coordinator
                    .spawn_send(&self.sender, index, fallback, hint);
            }
            WriteEffect::Answer(answer) => {
                return Some(answer.map(|()| {
                    let minted = self.minted.take();
                    let minted = minted.expect("a write succeeds only after a replica minted");
                    (minted.stored, minted.outcome)
                }));
            }
        }
        None
    }

    /// Asks replica `index` to mint: in place on this node (answering before its
    /// flush ends, which then runs as `flushing`), else through the transport until
    /// the deadline. `None` when the deadline passed first. With `alternative` (another
    /// replica is left to ask) and a request safe to carry out twice, a remote minter
    /// gets only its patience (`Coordinator::mint_patience`), then is `Late`.
    async fn mint(&mut self, index: usize, alternative: bool) -> Option<MintAnswer> {
        let dispatch = &self.coordinator.dispatch;
        let node = &self.nodes[index];
        if let Some((response, durable)) = dispatch.mint_here(node, &self.request) {
            self.flushing = Some((index, durable));
            return Some(mint_answer(Ok(response), true, &mut self.minted));
        }
        let deadline = self.started + self.coordinator.timeout;
        let health = self.coordinator.health_of(std::slice::from_ref(node));
        let give_up = match alternative && self.request.repeatable() {
            true => (Instant::now() + Coordinator::mint_patience(&health)).min(deadline),
            false => deadline,
        };
        let response = match self.mint_remote(index, give_up, &health).await {
            Some(response) => response,
            None if give_up < deadline => return Some(MintAnswer::Late),
            None => return None,
        };
        // A failure that may have come after the replica applied the request: asking
        // the next replica is safe only if applying twice would not count twice.
        if !self.request.repeatable() && response.as_ref().is_err_and(lost_after_sending) {
            return Some(MintAnswer::Unknown);
        }
        Some(mint_answer(response, false, &mut self.minted))
    }
}

impl Write<'_> {
    /// Sends the mint to remote replica `index` and waits for its answer until
    /// `give_up` (`None` then). An `Apply`, which the replica carries out once whatever
    /// the copies (`replica::once`), goes again to the same replica each time the
    /// resend wait passes without an answer (a lost message costs that wait, not the
    /// request timeout); the first answer of any copy is the answer.
    async fn mint_remote(
        &mut self,
        index: usize,
        give_up: Instant,
        minter: &Health,
    ) -> Option<Result<PeerResponse, super::DispatchError>> {
        let coordinator = self.coordinator;
        let node = &self.nodes[index];
        let mut copies = FuturesUnordered::new();
        copies.push(coordinator.tracked_send(node, self.request.clone()));
        let mut resends = Resends::new(resend_after_ms(minter));
        if matches!(self.request, PeerRequest::Apply { .. }) {
            resends.start(ms_since(self.started));
        }
        loop {
            let resend_at = resends
                .at_ms()
                .map(|at_ms| instant_at(self.started, at_ms))
                .filter(|at| *at < give_up);
            match tokio::time::timeout_at(resend_at.unwrap_or(give_up), copies.next()).await {
                Ok(Some(response)) if response.is_ok() || copies.is_empty() => {
                    return Some(response)
                }
                // A copy failed while another may still answer.
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(_) if resend_at.is_none() => return None,
                Err(_) => {
                    copies.push(coordinator.tracked_send(node, self.request.clone()));
                    coordinator.stats.resends.fetch_add(1, Ordering::Relaxed);
                    resends.made(ms_since(self.started));
                }
            }
        }
    }
}

/// Whether a transport failure may have come after the peer received the request (its
/// answer lost, or the connection broken while it ran) rather than before.
fn lost_after_sending(error: &super::DispatchError) -> bool {
    use super::DispatchError as E;
    matches!(
        error,
        E::Timeout { .. } | E::Unreachable { .. } | E::Frame { .. } | E::Unexpected { .. }
    )
}

/// What a replica's answer to a mint means to the round; a new version is kept in
/// `minted`. A replica's refusal is the client's answer, whether it came from this
/// node or through the transport.
fn mint_answer(
    response: Result<PeerResponse, super::DispatchError>,
    flushing: bool,
    minted: &mut Option<Minted>,
) -> MintAnswer {
    match response {
        Ok(PeerResponse::Stored(object)) => {
            *minted = Some(Minted {
                stored: object.clone(),
                object,
                outcome: None,
            });
            MintAnswer::Stored { flushing }
        }
        Ok(PeerResponse::Applied {
            stored,
            delta,
            outcome,
        }) => {
            *minted = Some(Minted {
                stored: *stored,
                object: *delta,
                outcome,
            });
            MintAnswer::Stored { flushing }
        }
        Ok(PeerResponse::Error(PeerError::Refused { refusal, message }))
        | Err(super::DispatchError::Peer {
            error: PeerError::Refused { refusal, message },
            ..
        }) => MintAnswer::Refused { refusal, message },
        _ => MintAnswer::Failed,
    }
}

/// The next answer to a write: a replica's reply or, while it runs, this node's own
/// flush of the version it minted (as a reply from the minter). Waits for ever once
/// neither can come (the deadline ends that wait).
async fn next_answer(
    replies: &mut mpsc::Receiver<Reply>,
    flushing: &mut Option<(usize, Durable)>,
) -> Reply {
    let Some((minter, wait)) = flushing.as_mut() else {
        return match replies.recv().await {
            Some(reply) => reply,
            None => std::future::pending().await,
        };
    };
    let minter = *minter;
    let flushed = tokio::select! {
        outcome = wait => outcome,
        Some(reply) = replies.recv() => return reply,
    };
    *flushing = None;
    Reply {
        index: minter,
        response: Box::new(flushed.map(|()| PeerResponse::Done)),
    }
}
