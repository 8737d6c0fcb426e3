//! One write as a state machine: one replica makes the new version (this node first
//! when it is one, then in preference order, at most `MINT_ATTEMPTS_MAX` tries), then it
//! goes to every other live replica and, for a dead voter with a fallback, to that
//! fallback as a hint; the round answers once the level is met, can no longer be met,
//! or its deadline passes.
//!
//! A version minted here answers before it is durable (`MintAnswer::Stored { flushing:
//! true }`): it travels to the others while this node flushes, and this node's copy
//! counts only once the flush ends (its outcome comes back as this replica's reply).
//! The round never counts an acknowledgement before the replica said it stored.
//!
//! A replica that has not answered when the level is still pending after the resend
//! wait (`resend_after_ms`: a multiple of the replicas' measured p99) gets the version
//! again, as does the fallback of a hinted voter: the transport never retries, and a
//! lost message would otherwise cost the request timeout. A merge is idempotent, so a
//! copy that arrives twice changes nothing; at most `RESENDS_MAX` times, the wait
//! doubling.

use super::super::quorum::{Level, Progress, QuorumTracker};
use super::super::CoordinatorError;
use super::error_for;
use super::resend::{resend_after_ms, Resends};
use super::speculation::{preferred_order, Health};
use crate::ids::Region;
use crate::limits;
use crate::wire::Refusal;
use std::collections::VecDeque;

/// What one write is sent to.
#[derive(Clone, Debug)]
pub struct WritePlan {
    pub level: Level,
    /// The voters of the key and what the level needs of them.
    pub tracker: QuorumTracker,
    /// Voters and then the owners a pending ring change adds (they get every write but
    /// do not vote).
    pub replicas: usize,
    /// This node's index among the voters, if it is one.
    pub here: Option<usize>,
    /// Which replicas the failure detector holds dead (one per replica).
    pub dead: Vec<bool>,
    /// Dead voters that have a live fallback, with the fallback's region (where the
    /// hint's acknowledgement counts). Empty under a strict policy.
    pub fallbacks: Vec<(usize, Region)>,
}

/// A replica's answer to `WriteEffect::Mint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MintAnswer {
    /// It made and stored the version; with `flushing`, not yet durable (this node
    /// minting for itself): its flush's outcome comes later through `on_reply`.
    Stored { flushing: bool },
    /// The operation breaks a rule of the document: the client is told, no retry.
    Refused { refusal: Refusal, message: String },
    /// It failed or did not answer: the next replica is asked.
    Failed,
    /// Its answer was lost after the request may have reached it (a timeout, a broken
    /// connection) and the operation counts each application (a counter increment):
    /// asking the next replica could apply it twice, so the write ends unanswered, as
    /// at its deadline; the client learns the outcome is unknown.
    Unknown,
    /// It has not answered within the patience its measured latency allows (a node
    /// dead before anyone suspected it), for an operation safe to carry out twice: the
    /// next replica is asked, and this one is not counted as failed (it may still store
    /// the version and acknowledge the merge that follows). Only while
    /// `mint_alternative_left`.
    Late,
}

/// What the driver must carry out for a write.
#[derive(Debug)]
pub enum WriteEffect {
    /// Ask replica `index` to make the new version; this node does it in place when it
    /// can (its answer then comes at once, its durability later).
    Mint { index: usize },
    /// Send the new version to replica `index` (a merge); its reply: `on_reply`.
    Replicate { index: usize },
    /// Send the new version to the fallback of dead voter `index` as a hint for it.
    Hint { index: usize },
    /// Answer the client; the round is over (late replies change nothing).
    Answer(Result<(), CoordinatorError>),
}

#[derive(Debug)]
enum Stage {
    /// Waiting for `order[at]` to mint.
    Minting {
        order: Vec<usize>,
        at: usize,
    },
    Replicating,
    Answered,
}

/// One write's round.
#[derive(Debug)]
pub struct WriteRound {
    level: Level,
    tracker: QuorumTracker,
    replicas: usize,
    dead: Vec<bool>,
    fallbacks: Vec<(usize, Region)>,
    stage: Stage,
    started_ms: u64,
    deadline_ms: u64,
    /// The replica that made the version, once one did.
    minter: Option<usize>,
    /// When the version goes again to the voters that have not answered.
    resends: Resends,
    effects: VecDeque<WriteEffect>,
    /// The DST's planted bug: count a replica's acknowledgement when the version is
    /// sent to it, before it stored anything. Never set outside `sim::dst`.
    ack_before_store: bool,
}

impl WriteRound {
    /// Starts a write at `now_ms` that gives up at `now_ms + timeout_ms`: asks the
    /// first replica to mint.
    pub fn new(plan: WritePlan, now_ms: u64, timeout_ms: u64) -> WriteRound {
        WriteRound::with_health(plan, &Health::default(), now_ms, timeout_ms)
    }

    /// `new`, asking replicas to mint in the order `health` (the driver's
    /// measurements) gives: a suspected or slow replica mints only when the others
    /// cannot, so a write costs a slow replica nothing when its level is met without it.
    pub fn with_health(
        plan: WritePlan,
        health: &Health,
        now_ms: u64,
        timeout_ms: u64,
    ) -> WriteRound {
        let WritePlan {
            level,
            mut tracker,
            replicas,
            here,
            dead,
            fallbacks,
        } = plan;
        let voters = tracker.replicas();
        for index in 0..voters {
            let hinted = fallbacks.iter().any(|(hinted, _)| *hinted == index);
            if dead.get(index).copied().unwrap_or(false) && !hinted {
                tracker.record(index, false);
            }
        }
        let mut order = preferred_order(&tracker, here, &dead, health);
        order.truncate(limits::MINT_ATTEMPTS_MAX);
        let mut round = WriteRound {
            level,
            tracker,
            replicas,
            dead,
            fallbacks,
            stage: Stage::Minting { order, at: 0 },
            started_ms: now_ms,
            deadline_ms: now_ms.saturating_add(timeout_ms),
            minter: None,
            resends: Resends::new(resend_after_ms(health)),
            effects: VecDeque::new(),
            ack_before_store: false,
        };
        // Dead voters alone may decide it: then nothing is minted (a version stored
        // here for a write that fails would only wait for anti-entropy to spread it).
        match round.tracker.progress() {
            failed @ Progress::Failed { .. } => round.fail(failed, now_ms),
            _ => round.mint_next(now_ms),
        }
        round
    }

    /// Plants the DST's bug in this round (`sim::dst` only): acknowledgements counted
    /// before the replicas stored. Only the simulation (a tool) and tests can set it.
    #[cfg(any(test, feature = "tools"))]
    pub(crate) fn plant_ack_before_store(&mut self) {
        self.ack_before_store = true;
    }

    /// The next effect to carry out, oldest first.
    pub fn poll_effect(&mut self) -> Option<WriteEffect> {
        self.effects.pop_front()
    }

    /// When the round wants `on_time` called (a resend, its deadline), `None` once
    /// answered.
    pub fn next_wake_ms(&self) -> Option<u64> {
        match self.stage {
            Stage::Answered => None,
            _ => Some(
                self.resends
                    .at_ms()
                    .map_or(self.deadline_ms, |at| at.min(self.deadline_ms)),
            ),
        }
    }

    /// How many times the version went again to replicas that had not answered.
    pub fn resends(&self) -> u32 {
        self.resends.total()
    }

    /// Whether the client has its answer.
    pub fn is_answered(&self) -> bool {
        matches!(self.stage, Stage::Answered)
    }

    /// The voters' tracker (for reports and tests).
    pub fn tracker(&self) -> &QuorumTracker {
        &self.tracker
    }

    /// Whether a replica is left to ask should the one minting now be late.
    pub fn mint_alternative_left(&self) -> bool {
        matches!(&self.stage, Stage::Minting { order, at } if *at < order.len())
    }

    /// Asks the next replica in order to mint, or fails the write when none is left.
    fn mint_next(&mut self, now_ms: u64) {
        let Stage::Minting { order, at } = &mut self.stage else {
            return;
        };
        match order.get(*at) {
            Some(index) => {
                let index = *index;
                *at += 1;
                self.effects.push_back(WriteEffect::Mint { index });
            }
            None => {
                let progress = self.tracker.progress();
                self.fail(progress, now_ms);
            }
        }
    }

    /// Replica `index`'s answer to `Mint`; ignored unless it is the one asked.
    pub fn on_minted(&mut self, index: usize, answer: MintAnswer, now_ms: u64) {
        let Stage::Minting { order, at } = &self.stage else {
            return;
        };
        if *at == 0 || order[*at - 1] != index {
            return;
        }
        match answer {
            MintAnswer::Stored { flushing } => self.replicate(index, flushing, now_ms),
            MintAnswer::Refused { refusal, message } => {
                self.answer(Err(CoordinatorError::Refused { refusal, message }))
            }
            MintAnswer::Failed => match self.tracker.record(index, false) {
                failed @ Progress::Failed { .. } => self.fail(failed, now_ms),
                _ => self.mint_next(now_ms),
            },
            MintAnswer::Unknown => self.fail(Progress::Pending, now_ms),
            MintAnswer::Late if self.mint_alternative_left() => self.mint_next(now_ms),
            // Nobody left to ask: as at the deadline.
            MintAnswer::Late => self.fail(Progress::Pending, now_ms),
        }
    }

    /// The version exists at `minter`: it goes to every other live replica and as hints
    /// to the fallbacks of dead voters.
    fn replicate(&mut self, minter: usize, flushing: bool, now_ms: u64) {
        self.stage = Stage::Replicating;
        self.minter = Some(minter);
        self.resends.start(now_ms);
        // A version minted here counts once this node's flush covers it.
        let mut progress = match flushing {
            true => self.tracker.progress(),
            false => self.tracker.record(minter, true),
        };
        for index in 0..self.replicas {
            if index != minter && !self.dead.get(index).copied().unwrap_or(false) {
                self.effects.push_back(WriteEffect::Replicate { index });
                if self.ack_before_store && index < self.tracker.replicas() {
                    progress = self.tracker.record(index, true);
                }
            }
        }
        for (index, _) in &self.fallbacks {
            self.effects.push_back(WriteEffect::Hint { index: *index });
        }
        self.settle(progress, now_ms);
    }

    /// Replica `index`'s reply to `Replicate` or `Hint` (`ok`: it stored the version),
    /// or, from the minter, the outcome of this node's flush.
    pub fn on_reply(&mut self, index: usize, ok: bool, now_ms: u64) {
        if !matches!(self.stage, Stage::Replicating) || index >= self.tracker.replicas() {
            return;
        }
        let hinted_in = self
            .fallbacks
            .iter()
            .find(|(hinted, _)| *hinted == index)
            .map(|(_, region)| region.clone());
        let progress = match hinted_in {
            Some(region) => self.tracker.record_in_region(index, ok, region),
            None => self.tracker.record(index, ok),
        };
        self.settle(progress, now_ms);
    }

    /// The time is `now_ms`: past the resend wait the version goes again to the voters
    /// that have not answered; past the deadline, an unanswered write fails.
    pub fn on_time(&mut self, now_ms: u64) {
        if now_ms >= self.deadline_ms && !self.is_answered() {
            return self.fail(Progress::Pending, now_ms);
        }
        if self.resends.is_due(now_ms) {
            match self.stage {
                Stage::Replicating => self.resend(now_ms),
                _ => self.resends.cancel(),
            }
        }
    }

    /// Sends the version again to every live voter that has not answered (but the
    /// minter, whose own answer is its store or its flush) and to the fallback of every
    /// hinted voter that has not.
    fn resend(&mut self, now_ms: u64) {
        self.resends.made(now_ms);
        for index in 0..self.tracker.replicas() {
            if Some(index) == self.minter || self.tracker.has_answered(index) {
                continue;
            }
            let dead = self.dead.get(index).copied().unwrap_or(false);
            if !dead {
                self.effects.push_back(WriteEffect::Replicate { index });
            } else if self.fallbacks.iter().any(|(hinted, _)| *hinted == index) {
                self.effects.push_back(WriteEffect::Hint { index });
            }
        }
    }

    fn settle(&mut self, progress: Progress, now_ms: u64) {
        match progress {
            Progress::Pending => {}
            Progress::Met => self.answer(Ok(())),
            failed => self.fail(failed, now_ms),
        }
    }

    fn fail(&mut self, progress: Progress, now_ms: u64) {
        let after_ms = now_ms.saturating_sub(self.started_ms);
        let error = error_for(&self.tracker, self.level, progress, after_ms);
        self.answer(Err(error));
    }

    fn answer(&mut self, answer: Result<(), CoordinatorError>) {
        if !self.is_answered() {
            self.stage = Stage::Answered;
            self.effects.push_back(WriteEffect::Answer(answer));
        }
    }
}
