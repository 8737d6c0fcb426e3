//! One read as a state machine. Replicas are asked nearest first (suspected and slow
//! ones last in their region: `speculation`), only as many as the level needs; one more
//! for each that fails, and every one left once the speculation delay passes with the
//! level pending: the slowest observed p99 of the replicas asked, between
//! `READ_SPECULATE_FLOOR_MS` and `READ_SPECULATE_MS`. The driver may forgo a
//! speculation its budget refuses (`forgo_speculation`). The first asked sends its object,
//! the others their digest (their object, if they take no digests). When every digest
//! matches the object, it is the answer. When one differs, or the level is met without
//! the object, or a replica refused a digest and the level cannot be met without it, the
//! read runs again asking for objects (`Phase::Full`, with a deadline of its own) and
//! answers with their merge, repairing the replicas that answered with less: before
//! answering under `sync_repair`, else afterwards. Replies that come after the answer
//! feed that repair (a late digest that differs costs a read of that replica's object)
//! until every request sent has answered or the deadline passes.
//!
//! A phase still pending `resend_after_ms` after its speculation point asks the
//! replicas that have not answered again (their request or its answer may be lost:
//! the transport never retries), at most `RESENDS_MAX` times, the wait doubling.

use super::super::quorum::{Level, Progress, QuorumTracker};
use super::super::CoordinatorError;
use super::error_for;
use super::resend::{resend_after_ms, Resends};
use super::speculation::{preferred_order, speculate_after_ms, Health};
use crate::limits;
use crate::object::Object;
use std::collections::VecDeque;

/// What one read is sent to.
#[derive(Clone, Debug)]
pub struct ReadPlan {
    pub level: Level,
    /// The voters of the key and what the level needs of them.
    pub tracker: QuorumTracker,
    /// Voters and then the owners a pending ring change adds (never asked by reads).
    pub replicas: usize,
    /// This node's index among the voters, if it is one: read in place, asked first.
    pub here: Option<usize>,
    /// Which replicas the failure detector holds dead (one per replica).
    pub dead: Vec<bool>,
    /// Which replicas may be asked for a digest (one per replica); the others, of a
    /// build before digest reads, are asked for their object.
    pub digests: Vec<bool>,
    /// Repair the replicas that answered with less before answering.
    pub sync_repair: bool,
}

/// What a replica is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    Get,
    Digest,
}

/// Which part of the read a request belongs to; its reply comes back with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// One object and digests.
    Digest,
    /// Every replica asked for its object.
    Full,
    /// After the answer: the object of a replica whose late digest differed.
    Refetch,
}

/// A replica's reply to a read request.
// Unboxed: a reply moves its object in from the response without an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadAnswer {
    /// Its object (`None`: it holds nothing for the key).
    Object(Option<Object>),
    /// Its digest (`None`: it holds nothing for the key).
    Digest(Option<[u8; 32]>),
    /// No usable answer; `refuses_digests` when the replica is now known not to take
    /// digests (it refused one).
    Failed { refuses_digests: bool },
}

/// What the driver must carry out for a read.
#[derive(Debug)]
pub enum ReadEffect {
    /// Send `ask` to replica `index` (another node); its reply: `on_reply(index, phase, ..)`.
    Ask {
        index: usize,
        ask: Ask,
        phase: Phase,
    },
    /// Read this node's copy (replica `index`) in place, else send it like `Ask`.
    /// Always after the `Ask`s of the same step, so theirs are on the way first.
    ReadHere {
        index: usize,
        ask: Ask,
        phase: Phase,
    },
    /// Merge `object` into replica `index`. With `wait`, the read waits for its reply
    /// (`on_repaired`) before answering; else nobody waits for it.
    Repair {
        index: usize,
        object: Object,
        wait: bool,
    },
    /// Answer the client. The round may go on repairing (`is_done`).
    Answer(Result<Option<Object>, CoordinatorError>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Digest,
    Full,
    /// Waiting for `Repair { wait: true }` replies before answering.
    SyncRepair,
    /// Answered; late replies feed the repair.
    Late,
    Done,
}

/// One read's round.
#[derive(Debug)]
pub struct ReadRound {
    level: Level,
    /// Which replicas the failure detector held dead: failed again in a new phase.
    dead: Vec<bool>,
    order: Vec<usize>,
    here: Option<usize>,
    takes_digests: Vec<bool>,
    sync_repair: bool,
    timeout_ms: u64,
    stage: Stage,
    phase: Phase,
    tracker: QuorumTracker,
    progress: Progress,
    asked: Vec<bool>,
    /// Which replicas answered in this phase (a duplicate reply is ignored).
    replied: Vec<bool>,
    started_ms: u64,
    deadline_ms: u64,
    /// When every replica left is asked, unless the level is met by then.
    speculate_ms: Option<u64>,
    /// When the replicas asked that have not answered are asked again.
    resends: Resends,
    /// What the driver measured of the replicas: the order and the speculation delay.
    health: Health,
    /// Whether the read asked more replicas than it needed because they were late.
    speculated: bool,
    /// The replica asked for its object in the digest phase.
    data_at: Option<usize>,
    /// Its object, once answered (`Some(None)`: it holds nothing).
    data: Option<Option<Object>>,
    data_failed: bool,
    digests: Vec<Option<Option<[u8; 32]>>>,
    digest_refused: bool,
    /// The objects replicas answered (`Some(None)`: holds nothing).
    seen: Vec<Option<Option<Object>>>,
    merged: Option<Object>,
    repairs_waited: usize,
    /// Replicas whose object is being read after the answer (a late digest differed).
    refetching: Vec<bool>,
    mismatched: bool,
    in_full: bool,
    effects: VecDeque<ReadEffect>,
}

impl ReadRound {
    /// Starts a read at `now_ms`; each of its phases gives up `timeout_ms` after it
    /// began. Nothing measured of the replicas: it speculates after
    /// `READ_SPECULATE_MS`.
    pub fn new(plan: ReadPlan, now_ms: u64, timeout_ms: u64) -> ReadRound {
        ReadRound::with_health(plan, Health::default(), now_ms, timeout_ms)
    }

    /// `new`, asking the replicas in the order and speculating after the delay that
    /// `health` (the driver's measurements) gives.
    pub fn with_health(plan: ReadPlan, health: Health, now_ms: u64, timeout_ms: u64) -> ReadRound {
        let ReadPlan {
            level,
            mut tracker,
            replicas,
            here,
            dead,
            digests,
            sync_repair,
        } = plan;
        for index in 0..tracker.replicas() {
            if dead.get(index).copied().unwrap_or(false) {
                tracker.record(index, false);
            }
        }
        let order = preferred_order(&tracker, here, &dead, &health);
        let mut round = ReadRound {
            level,
            progress: tracker.progress(),
            tracker,
            dead,
            order,
            here,
            takes_digests: digests,
            sync_repair,
            timeout_ms,
            stage: Stage::Digest,
            phase: Phase::Digest,
            asked: vec![false; replicas],
            replied: vec![false; replicas],
            started_ms: now_ms,
            deadline_ms: now_ms,
            speculate_ms: None,
            resends: Resends::new(resend_after_ms(&health)),
            health,
            speculated: false,
            data_at: None,
            data: None,
            data_failed: false,
            digests: vec![None; replicas],
            digest_refused: false,
            seen: vec![None; replicas],
            merged: None,
            repairs_waited: 0,
            refetching: vec![false; replicas],
            mismatched: false,
            in_full: false,
            effects: VecDeque::new(),
        };
        round.begin(Phase::Digest, now_ms);
        round
    }

    /// The next effect to carry out, oldest first.
    pub fn poll_effect(&mut self) -> Option<ReadEffect> {
        self.effects.pop_front()
    }

    /// When the round wants `on_time` called: the speculation delay, then the deadline;
    /// `None` once done.
    pub fn next_wake_ms(&self) -> Option<u64> {
        match self.stage {
            Stage::Done => None,
            Stage::Digest | Stage::Full => {
                let soonest = [
                    self.speculate_ms,
                    self.resends.at_ms(),
                    Some(self.deadline_ms),
                ];
                soonest.into_iter().flatten().min()
            }
            _ => Some(self.deadline_ms),
        }
    }

    /// Whether nothing is left to do: answered, and the repair (if any) decided.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Whether effects wait to be carried out.
    pub fn has_effects(&self) -> bool {
        !self.effects.is_empty()
    }

    /// Whether the client has its answer.
    pub fn is_answered(&self) -> bool {
        matches!(self.stage, Stage::Late | Stage::Done)
    }

    /// Whether a digest differed from the object (the replicas disagreed).
    pub fn digest_mismatched(&self) -> bool {
        self.mismatched
    }

    /// Whether the read asked every replica for its object after its digests.
    pub fn read_in_full(&self) -> bool {
        self.in_full
    }

    /// Whether the read asked more replicas than it needed because they were late.
    pub fn speculated(&self) -> bool {
        self.speculated
    }

    /// How many times the read asked again replicas that had not answered.
    pub fn resends_total(&self) -> u32 {
        self.resends.total()
    }

    /// Whether `on_time(now_ms)` would speculate: the delay has passed, the level is
    /// pending and a live replica is left to ask. The driver asks its budget first.
    pub fn speculation_due(&self, now_ms: u64) -> bool {
        let waiting = matches!(self.stage, Stage::Digest | Stage::Full);
        let due = self.speculate_ms.is_some_and(|at| now_ms >= at);
        let left = self.order.iter().any(|index| !self.asked[*index]);
        waiting && due && self.progress == Progress::Pending && left
    }

    /// Gives up this phase's speculation (the budget refused it): the read waits for
    /// the replicas it asked, until its deadline.
    pub fn forgo_speculation(&mut self) {
        self.speculate_ms = None;
    }

    /// The phase whose replies count now.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Starts a phase: a fresh count and deadline, the first replicas asked.
    fn begin(&mut self, phase: Phase, now_ms: u64) {
        self.phase = phase;
        self.stage = match phase {
            Phase::Digest => Stage::Digest,
            _ => Stage::Full,
        };
        if phase == Phase::Full {
            self.in_full = true;
            self.tracker.forget_answers();
            for index in 0..self.tracker.replicas() {
                if self.dead.get(index).copied().unwrap_or(false) {
                    self.tracker.record(index, false);
                }
            }
            self.progress = self.tracker.progress();
            self.asked.fill(false);
            self.seen.fill(None);
            self.replied.fill(false);
        }
        self.started_ms = now_ms;
        self.deadline_ms = now_ms.saturating_add(self.timeout_ms);
        self.ask(false);
        // A replica that is slow (or gone before the failure detector noticed) should
        // cost one speculation delay, not the request timeout.
        let after_ms = speculate_after_ms(&self.asked, self.here, &self.health);
        let speculate_ms = now_ms.saturating_add(after_ms);
        self.speculate_ms = Some(speculate_ms.min(self.deadline_ms));
        self.resends.start(speculate_ms);
        if self.progress != Progress::Pending {
            // Nothing to wait for: dead voters alone decided it.
            self.end_phase(now_ms);
        }
    }

    /// Requests sent in this phase whose replies have not come.
    fn outstanding(&self) -> usize {
        let waiting = |(asked, replied): (&bool, &bool)| *asked && !*replied;
        self.asked
            .iter()
            .zip(&self.replied)
            .filter(|pair| waiting(*pair))
            .count()
    }

    /// Asks replicas in order until those asked and not yet failed could meet the
    /// level; with `all`, every one left. This node's copy is read last.
    fn ask(&mut self, all: bool) {
        let mut here = None;
        for at in 0..self.order.len() {
            let index = self.order[at];
            if !all && self.tracker.could_meet_with(&self.asked) {
                break;
            }
            if self.asked[index] {
                continue;
            }
            self.asked[index] = true;
            if self.phase == Phase::Digest && self.data_at.is_none() {
                self.data_at = Some(index);
            }
            let ask = self.ask_of(index);
            let phase = self.phase;
            match self.here == Some(index) {
                true => here = Some(ReadEffect::ReadHere { index, ask, phase }),
                false => self
                    .effects
                    .push_back(ReadEffect::Ask { index, ask, phase }),
            }
        }
        self.effects.extend(here);
    }

    /// What replica `index` is asked in this phase: the one asked first in the digest
    /// phase (`data_at`) and every replica in the full phase for its object, the others
    /// for their digest if they take digests.
    fn ask_of(&self, index: usize) -> Ask {
        match self.phase {
            Phase::Digest if self.data_at == Some(index) => Ask::Get,
            Phase::Digest if self.takes_digests.get(index).copied().unwrap_or(true) => Ask::Digest,
            _ => Ask::Get,
        }
    }

    /// Counts replica `index`'s answer toward the level; asks another when it failed.
    fn record(&mut self, index: usize, answered: bool) {
        if index < self.tracker.replicas() {
            self.progress = self.tracker.record(index, answered);
            if !answered && self.progress == Progress::Pending {
                self.ask(false);
            }
        }
    }

    /// Replica `index`'s reply to a request of `phase`.
    pub fn on_reply(&mut self, index: usize, phase: Phase, answer: ReadAnswer, now_ms: u64) {
        if index >= self.seen.len() {
            return;
        }
        if phase == Phase::Refetch {
            return self.on_refetched(index, answer, now_ms);
        }
        if phase != self.phase || self.stage == Stage::Done || self.replied[index] {
            // A reply to a phase the read has left, or a second one: of no use to it.
            return;
        }
        if !self.asked[index] {
            return;
        }
        self.replied[index] = true;
        match self.stage {
            Stage::Digest => self.on_digest_phase_reply(index, answer, now_ms),
            Stage::Full => {
                let object = match answer {
                    ReadAnswer::Object(object) => Some(object),
                    _ => None,
                };
                self.record(index, object.is_some());
                self.seen[index] = object;
                if self.progress != Progress::Pending {
                    self.end_phase(now_ms);
                }
            }
            _ => self.on_late_reply(index, answer, now_ms),
        }
    }

    fn on_digest_phase_reply(&mut self, index: usize, answer: ReadAnswer, now_ms: u64) {
        let is_data = self.data_at == Some(index);
        let answered = match answer {
            ReadAnswer::Object(object) if is_data => {
                self.data = Some(object);
                true
            }
            ReadAnswer::Digest(digest) if !is_data => {
                self.digests[index] = Some(digest);
                true
            }
            ReadAnswer::Object(object) => {
                self.digests[index] = Some(object.as_ref().map(Object::digest));
                true
            }
            ReadAnswer::Digest(_) => {
                self.data_failed = true;
                false
            }
            ReadAnswer::Failed { refuses_digests } => {
                self.data_failed |= is_data;
                self.digest_refused |= !is_data && refuses_digests;
                false
            }
        };
        self.record(index, answered);
        // Past the speculation point (it fired, or the budget forwent it) a level met
        // without the object reads in full now: nothing else would end the wait
        // before the deadline.
        let object_late = self.progress == Progress::Met && self.speculate_ms.is_none();
        if object_late || !self.waits_in_digest_phase() {
            self.end_phase(now_ms);
        }
    }

    /// Whether the digest phase still waits: for the level, or, with the level met,
    /// for the object.
    fn waits_in_digest_phase(&self) -> bool {
        let awaiting_data = self.data.is_none() && !self.data_failed && self.data_at.is_some();
        match self.progress {
            Progress::Pending => true,
            Progress::Met => awaiting_data,
            Progress::Failed { .. } => false,
        }
    }

    /// The time is `now_ms`: speculation, resends, deadlines.
    pub fn on_time(&mut self, now_ms: u64) {
        match self.stage {
            Stage::Digest | Stage::Full => {
                let mut end = now_ms >= self.deadline_ms;
                if self.speculate_ms.is_some_and(|at| now_ms >= at) {
                    self.speculate_ms = None;
                    if self.progress == Progress::Pending {
                        let asked = self.asked.iter().filter(|asked| **asked).count();
                        self.ask(true);
                        self.speculated |=
                            self.asked.iter().filter(|asked| **asked).count() > asked;
                    } else {
                        // The level is met and the object late: read in full now.
                        end = true;
                    }
                }
                if !end && self.resends.is_due(now_ms) {
                    match self.progress {
                        Progress::Pending => self.resend(now_ms),
                        _ => self.resends.cancel(),
                    }
                }
                if end {
                    self.end_phase(now_ms);
                }
            }
            Stage::SyncRepair if now_ms >= self.deadline_ms => self.answer_full(),
            Stage::Late if now_ms >= self.deadline_ms => self.repair_late(),
            _ => {}
        }
    }

    /// Asks again every replica asked in this phase that has not answered (this
    /// node's copy is read in place: never lost), while the level is pending.
    fn resend(&mut self, now_ms: u64) {
        self.resends.made(now_ms);
        let phase = self.phase;
        for index in 0..self.asked.len() {
            if !self.asked[index] || self.replied[index] || Some(index) == self.here {
                continue;
            }
            let ask = self.ask_of(index);
            self.effects
                .push_back(ReadEffect::Ask { index, ask, phase });
        }
    }

    /// The phase stopped waiting (its level decided, or its time is up).
    fn end_phase(&mut self, now_ms: u64) {
        match self.stage {
            Stage::Digest => self.end_digest_phase(now_ms),
            Stage::Full => self.end_full_phase(now_ms),
            _ => {}
        }
    }

    fn fail(&mut self, progress: Progress, now_ms: u64) {
        let after_ms = now_ms.saturating_sub(self.started_ms);
        let error = error_for(&self.tracker, self.level, progress, after_ms);
        self.effects.push_back(ReadEffect::Answer(Err(error)));
        self.stage = Stage::Done;
    }

    fn end_digest_phase(&mut self, now_ms: u64) {
        let timed_out = now_ms >= self.deadline_ms;
        if self.progress != Progress::Met {
            if self.digest_refused && !timed_out {
                return self.begin(Phase::Full, now_ms);
            }
            return self.fail(self.progress, now_ms);
        }
        let (Some(data), Some(data_at)) = (self.data.take(), self.data_at) else {
            if timed_out {
                return self.fail(Progress::Pending, now_ms);
            }
            // A level met by digests while the object is late or failed: read in full.
            return self.begin(Phase::Full, now_ms);
        };
        let expected = data.as_ref().map(Object::digest);
        if self
            .digests
            .iter()
            .flatten()
            .any(|digest| *digest != expected)
        {
            self.mismatched = true;
            return self.begin(Phase::Full, now_ms);
        }
        self.effects.push_back(ReadEffect::Answer(Ok(data.clone())));
        if self.outstanding() > 0 {
            self.seen[data_at] = Some(data);
            self.stage = Stage::Late;
        } else {
            self.stage = Stage::Done;
        }
    }

    fn end_full_phase(&mut self, now_ms: u64) {
        if self.progress != Progress::Met {
            return self.fail(self.progress, now_ms);
        }
        self.merged = merge_all(self.seen.iter().flatten());
        if let (true, Some(merged)) = (self.sync_repair, &self.merged) {
            for index in 0..self.seen.len() {
                if is_stale(&self.seen[index], merged) {
                    self.repairs_waited += 1;
                    let object = merged.clone();
                    let wait = true;
                    let repair = ReadEffect::Repair {
                        index,
                        object,
                        wait,
                    };
                    self.effects.push_back(repair);
                }
            }
            if self.repairs_waited > 0 {
                self.stage = Stage::SyncRepair;
                return;
            }
        }
        self.answer_full();
    }

    /// Replica `index`'s reply to a `Repair { wait: true }` (`ok`: it stored).
    pub fn on_repaired(&mut self, index: usize, ok: bool, _now_ms: u64) {
        if self.stage != Stage::SyncRepair || index >= self.seen.len() {
            return;
        }
        if let (true, Some(merged)) = (ok, &self.merged) {
            // Reached: it holds the merge from now on.
            self.seen[index] = Some(Some(merged.clone()));
        }
        self.repairs_waited = self.repairs_waited.saturating_sub(1);
        if self.repairs_waited == 0 {
            self.answer_full();
        }
    }

    /// Answers with the merge of the full read; what is left to repair is late work.
    fn answer_full(&mut self) {
        let merged = self.merged.take();
        // The usual read: every replica asked answered with the same object, so
        // nothing is left to wait for or repair.
        let settled = match &merged {
            Some(merged) => !self.seen.iter().any(|answer| is_stale(answer, merged)),
            None => true,
        };
        self.effects.push_back(ReadEffect::Answer(Ok(merged)));
        self.stage = Stage::Late;
        if self.outstanding() == 0 {
            match settled {
                true => self.stage = Stage::Done,
                false => self.repair_late(),
            }
        }
    }

    fn on_late_reply(&mut self, index: usize, answer: ReadAnswer, _now_ms: u64) {
        match answer {
            ReadAnswer::Object(object) => self.seen[index] = Some(object),
            ReadAnswer::Digest(digest) => {
                let merged = merge_all(self.seen.iter().flatten());
                if digest != merged.as_ref().map(Object::digest) {
                    // A late digest that differs from what the read has: read that object.
                    self.refetching[index] = true;
                    let ask = Ask::Get;
                    let phase = Phase::Refetch;
                    self.effects
                        .push_back(ReadEffect::Ask { index, ask, phase });
                }
            }
            ReadAnswer::Failed { .. } => {}
        }
        self.settle_late();
    }

    fn on_refetched(&mut self, index: usize, answer: ReadAnswer, _now_ms: u64) {
        if self.stage != Stage::Late || !self.refetching[index] {
            return;
        }
        self.refetching[index] = false;
        if let ReadAnswer::Object(object) = answer {
            self.seen[index] = Some(object);
        }
        self.settle_late();
    }

    fn settle_late(&mut self) {
        let refetching = self.refetching.iter().any(|fetching| *fetching);
        if self.stage == Stage::Late && self.outstanding() == 0 && !refetching {
            self.repair_late();
        }
    }

    /// Writes the merge of everything seen to every replica that answered with less.
    fn repair_late(&mut self) {
        self.stage = Stage::Done;
        let Some(merged) = merge_all(self.seen.iter().flatten()) else {
            return;
        };
        for index in 0..self.seen.len() {
            if is_stale(&self.seen[index], &merged) {
                let object = merged.clone();
                let wait = false;
                self.effects.push_back(ReadEffect::Repair {
                    index,
                    object,
                    wait,
                });
            }
        }
    }
}

/// Whether a replica's answer (`None`: it has not answered) held less than `merged`:
/// nothing, or an object other than the merge.
fn is_stale(answer: &Option<Option<Object>>, merged: &Object) -> bool {
    match answer {
        Some(Some(object)) => object != merged,
        Some(None) => true,
        None => false,
    }
}

/// The merge of every object given, or `None` if there was none.
pub(crate) fn merge_all<'a>(objects: impl Iterator<Item = &'a Option<Object>>) -> Option<Object> {
    let mut merged: Option<Object> = None;
    for object in objects.flatten() {
        match merged.as_mut() {
            Some(into) => {
                if let Err(error) = into.merge(object, limits::SIBLINGS_MAX) {
                    tracing::warn!(%error, "a replica's version could not be merged");
                }
            }
            None => merged = Some(object.clone()),
        }
    }
    merged
}
