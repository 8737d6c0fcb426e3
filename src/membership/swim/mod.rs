//! SWIM failure detection and membership gossip with Lifeguard's refinements, as a pure
//! deterministic state machine.
//!
//! It owns the member table (liveness by incarnation, ring status by status version),
//! probe rounds (direct, indirect through k members, extra probes that confirm a
//! suspicion), Lifeguard suspicion timers and local health, and piggybacked
//! dissemination. It must never read a clock, open a socket, spawn a task or touch a
//! disk: the driver passes `now_ms`, carries out the returned [`Output`]s as one-way
//! messages and feeds received messages to [`Swim::receive`]. Randomness comes from a
//! `StdRng` seeded in [`Swim::new`], so a seed replays exactly (see [`sim`]).
//!
//! How a failure is found:
//! - Each period one member is probed (round-robin over a shuffled list). No Ack by the
//!   probe timeout: PingReq to k members, who Ping the target and answer IndirectAck
//!   or, after `probe_timeout_ms`, Nack. No Ack or IndirectAck by the period's end:
//!   the target becomes Suspect.
//! - A node that hears of a suspicion starts its own timer and probes the suspect at
//!   once (the Ping carries the suspicion, so a live suspect refutes in its Ack). Only
//!   if that probe fails does it spread the suspicion itself: so each node that sends
//!   us a suspicion has verified it, and distinct senders are independent
//!   confirmations that shorten the timeout (formulas in [`SwimConfig`]).
//! - The timer expires: Dead, disseminated. A dead member comes back only with a higher
//!   incarnation; a node that hears it is suspected or dead refutes, and a node that
//!   still hears an old claim re-sends its refutation.
//!
//! Lifeguard local health (0..=`LOCAL_HEALTH_MAX`): +1 when a probe fails and fewer
//! Nacks than PingReqs come back within one more period (or there was nobody to ask),
//! +1 when we refute a suspicion about ourselves, +1 when we notice we were stalled (a
//! gap longer than `STALL_GAP_MS` between calls; the stalled time is then not counted
//! against any deadline, so replies buffered meanwhile still count); −1 on each
//! successful probe. Probe timeouts, probe periods and suspicion timeouts all stretch
//! by (local_health + 1).
//!
//! A stopped (SIGSTOP) node cannot be suspected before a full probe period has
//! passed, and on resuming it answers the buffered Pings and refutes; so a stop shorter
//! than about probe interval + minimum suspicion timeout (1.5 s at defaults) is not
//! declared dead: in the 9-node simulation 0 of 40 trials each at 0.9–1.5 s, 1 of 40
//! at 1.7 s, 15 of 40 at 2 s (`pause_tolerance_sweep`).

mod config;
mod gossip;
mod probe;
#[cfg(test)]
pub mod sim;
mod state;
#[cfg(test)]
mod tests;

pub use config::{SwimConfig, SwimConfigError};

use crate::ids::{NodeId, Region};
use crate::limits::{MEMBERS_MAX, SEEDS_MAX};
use gossip::BroadcastQueue;
use probe::{ExtraProbe, NackTally, ProbeRound, Relay, Suspicion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use state::Source;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// Who a member is and where to reach it; set by the member itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub node: NodeId,
    pub region: Region,
    pub quic: SocketAddr,
    pub http: SocketAddr,
    pub weight: u32,
}

/// Failure-detector view of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Liveness {
    Alive,
    Suspect,
    Dead,
}

/// Ring ownership status, set by the member itself (joining→member, member→leaving,
/// leaving→left) or by an operator (removed, terminal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    Joining,
    Member,
    Leaving,
    Left,
    Removed,
}

/// Everything known about one member; the unit of dissemination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    pub info: MemberInfo,
    pub incarnation: u64,
    pub liveness: Liveness,
    pub status: Status,
    pub status_version: u64,
    pub ready_for: u64,
    /// Evidence for a final status (Left, Removed): it travels and merges with the
    /// status, so a relayed final status stays checkable by every member. Always `None`
    /// for the other statuses.
    pub proof: Option<Box<StatusProof>>,
}

/// A signed statement that a member's final status was set by whom may set it: the
/// member itself for Left, an operator holding the cluster CA key for Removed. What is
/// signed is derived from the state it comes with (see `runtime::proof`); this state
/// machine only carries it and never checks it: the driver verifies every final status
/// before it reaches [`Swim`], and signs the ones it makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusProof {
    /// DER certificate of the signer when it is a node (Left); empty when the signer is
    /// the cluster CA (Removed), whose certificate every member has.
    #[serde(with = "serde_bytes")]
    pub certificate: Vec<u8>,
    /// DER ECDSA P-256 SHA-256 signature of the statement.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// A SWIM message; every one travels one-way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SwimMessage {
    /// Prober -> target (also intermediary -> target for indirect probes).
    Ping { seq: u64, updates: Vec<MemberState> },
    /// Target -> prober.
    Ack { seq: u64, updates: Vec<MemberState> },
    /// Prober -> intermediary: please probe `target`.
    PingReq {
        seq: u64,
        target: NodeId,
        updates: Vec<MemberState>,
    },
    /// Intermediary -> prober: the target answered.
    IndirectAck {
        seq: u64,
        target: NodeId,
        updates: Vec<MemberState>,
    },
    /// Lifeguard: intermediary -> prober, the target did not answer in time.
    Nack { seq: u64, target: NodeId },
    /// New node -> seed.
    Join { member: MemberState },
    /// Push-pull full state; `reply` asks for the receiver's state back.
    Sync {
        members: Vec<MemberState>,
        reply: bool,
    },
    /// Piggyback-only dissemination.
    Gossip { updates: Vec<MemberState> },
}

/// What the driver must do; it finds addresses in [`Swim::members`] (or its seed list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    Send { to: NodeId, message: SwimMessage },
}

/// Counters for metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwimStats {
    pub probes_sent: u64,
    pub acks_received: u64,
    pub indirect_probes_sent: u64,
    pub indirect_acks_received: u64,
    pub nacks_received: u64,
    pub extra_probes_sent: u64,
    pub confirmations_sent: u64,
    pub suspicions_raised: u64,
    pub deaths_declared: u64,
    pub refutations: u64,
    pub stale_updates_ignored: u64,
    pub forged_updates_ignored: u64,
    pub malformed_ignored: u64,
    pub unknown_region_ignored: u64,
    /// Updates (or joins) whose incarnation or status version lies within
    /// `COUNTER_MARGIN` of `u64::MAX`: ignored, never refuted.
    pub counters_near_maximum_ignored: u64,
    /// Updates that place a member in another region than the one it is known in.
    pub region_changes_ignored: u64,
    pub members_over_limit: u64,
    pub probe_requests_refused: u64,
    pub stalls_detected: u64,
    pub messages_sent: u64,
    pub updates_sent: u64,
}

/// Why a status change or removal was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatusError {
    #[error("status change {from:?} -> {to:?} is not allowed (only joining->member, member->leaving, leaving->left)")]
    Transition { from: Status, to: Status },
    #[error("a node cannot remove itself; leave with set_status(Leaving) then set_status(Left)")]
    RemoveSelf,
    #[error("member {0} is unknown")]
    UnknownMember(NodeId),
}

/// Seeds we keep sending Join to until a Sync arrives (a lost Join is retried).
#[derive(Clone, Debug)]
struct JoinState {
    seeds: Vec<NodeId>,
    next_retry_ms: u64,
}

/// The SWIM state machine of one node. See the module documentation.
#[derive(Clone, Debug)]
pub struct Swim {
    me: NodeId,
    config: SwimConfig,
    rng: StdRng,
    members: BTreeMap<NodeId, MemberState>,
    allowed_regions: Option<BTreeSet<Region>>,
    /// Regions known for members before gossip names them (the topology file's).
    pinned_regions: BTreeMap<NodeId, Region>,
    version: u64,
    stats: SwimStats,
    local_health: u32,
    /// Cache of the live member count, valid while `version` is unchanged.
    live_count: (u64, usize),
    /// External time of the last call, to notice stalls.
    last_call_ms: u64,
    /// Stalled time subtracted from external time: deadlines live in this local time.
    stalled_ms: u64,
    next_seq: u64,
    probe_order: Vec<NodeId>,
    probe_cursor: usize,
    next_probe_ms: u64,
    round: Option<ProbeRound>,
    nack_tally: Option<NackTally>,
    extra_probes: BTreeMap<u64, ExtraProbe>,
    relays: BTreeMap<u64, Relay>,
    suspicions: BTreeMap<NodeId, Suspicion>,
    broadcasts: BroadcastQueue,
    next_gossip_ms: u64,
    /// Rate limit of gossip rounds (GCRA): a round is allowed while this theoretical
    /// arrival time is at most one interval ahead, so bursts of two rounds at most and
    /// one round per gossip interval on average.
    gossip_tat_ms: u64,
    /// Fresh news is queued: gossip as soon as the rate limit allows.
    gossip_urgent: bool,
    gossip_cursor: usize,
    next_sync_ms: u64,
    join: Option<JoinState>,
}

impl Swim {
    /// A node that knows only itself: Alive, incarnation 0, the given ring `status`.
    /// `config` should have passed [`SwimConfig::validate`]; an invalid one gives
    /// defined but unspecified behaviour, never a panic.
    pub fn new(me: MemberInfo, status: Status, config: SwimConfig, seed: u64, now_ms: u64) -> Swim {
        let mut rng = StdRng::seed_from_u64(seed);
        let interval = config.probe_interval_ms.max(1);
        let first_probe_ms = now_ms.saturating_add(rng.gen_range(0..interval));
        let first_sync_ms = now_ms.saturating_add(rng.gen_range(0..config.sync_interval_ms.max(1)));
        let node = me.node.clone();
        let state = MemberState {
            info: me,
            incarnation: 0,
            liveness: Liveness::Alive,
            status,
            status_version: 0,
            ready_for: 0,
            proof: None,
        };
        let mut members = BTreeMap::new();
        members.insert(node.clone(), state);
        Swim {
            me: node,
            next_gossip_ms: now_ms.saturating_add(config.gossip_interval_ms),
            config,
            rng,
            members,
            allowed_regions: None,
            pinned_regions: BTreeMap::new(),
            version: 0,
            stats: SwimStats::default(),
            local_health: 0,
            live_count: (u64::MAX, 0),
            last_call_ms: now_ms,
            stalled_ms: 0,
            next_seq: 1,
            probe_order: Vec::new(),
            probe_cursor: 0,
            next_probe_ms: first_probe_ms,
            round: None,
            nack_tally: None,
            extra_probes: BTreeMap::new(),
            relays: BTreeMap::new(),
            suspicions: BTreeMap::new(),
            broadcasts: BroadcastQueue::default(),
            gossip_tat_ms: now_ms,
            gossip_urgent: false,
            gossip_cursor: 0,
            next_sync_ms: first_sync_ms,
            join: None,
        }
    }

    /// This node's own state.
    pub fn me(&self) -> &MemberState {
        &self.members[&self.me]
    }

    pub fn config(&self) -> &SwimConfig {
        &self.config
    }

    /// Only members whose region is in `regions` are accepted from now on (others are
    /// ignored and counted in `unknown_region_ignored`); `None` accepts every region.
    pub fn set_allowed_regions(&mut self, regions: Option<BTreeSet<Region>>) {
        self.allowed_regions = regions;
    }

    /// The regions of `regions`' nodes are known (the topology file names them): an
    /// update placing one elsewhere is ignored and counted in `region_changes_ignored`,
    /// as is any update moving an already known member to another region. At most
    /// `MEMBERS_MAX` entries are kept.
    pub fn pin_regions(&mut self, regions: BTreeMap<NodeId, Region>) {
        self.pinned_regions = regions.into_iter().take(MEMBERS_MAX).collect();
    }

    /// Sends Join to each seed (at most `SEEDS_MAX`) and keeps re-sending every two
    /// probe intervals until some member answers with a Sync; also queues our own
    /// state for dissemination.
    pub fn join(&mut self, seeds: &[NodeId], now_ms: u64) -> Vec<Output> {
        let now = self.observe(now_ms);
        let seeds: Vec<NodeId> = seeds
            .iter()
            .filter(|seed| **seed != self.me)
            .take(SEEDS_MAX)
            .cloned()
            .collect();
        let mut out = Vec::new();
        if seeds.is_empty() {
            return out;
        }
        self.join = Some(JoinState {
            seeds,
            next_retry_ms: now,
        });
        // Announce ourselves too: once the seed's Sync tells us who is there, our
        // probes and gossip carry our own state to everyone the seed has not reached.
        let state = self.me().clone();
        self.enqueue(state);
        self.tick_join(now, &mut out);
        out
    }

    /// Drives every deadline: probes, indirect probes, suspicion expiry, gossip, sync,
    /// join retries. Call it at least every ~50 ms; behaviour does not depend on the
    /// exact cadence.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Output> {
        let now = self.observe(now_ms);
        let mut out = Vec::new();
        self.tick_join(now, &mut out);
        self.tick_probes(now, &mut out);
        self.tick_suspicions(now);
        self.tick_gossip(now, &mut out);
        self.tick_sync(now, &mut out);
        out
    }

    /// Handles one message from `from` (the authenticated peer).
    pub fn receive(&mut self, from: &NodeId, message: SwimMessage, now_ms: u64) -> Vec<Output> {
        let now = self.observe(now_ms);
        let mut out = Vec::new();
        if let Err(reason) = self.check_message(from, &message) {
            tracing::debug!(%from, ?reason, "ignoring malformed swim message");
            self.stats.malformed_ignored += 1;
            return out;
        }
        let answered = match message {
            SwimMessage::Join { member } => {
                self.apply_updates(vec![member], Source::Join, now, &mut out);
                self.send_sync(from, false, &mut out);
                true
            }
            SwimMessage::Sync { members, reply } => {
                self.join = None;
                self.apply_updates(members, Source::Sync, now, &mut out);
                if reply {
                    self.send_sync(from, false, &mut out);
                }
                reply
            }
            SwimMessage::Gossip { updates } => {
                self.apply_updates(updates, Source::Gossip { from }, now, &mut out);
                false
            }
            probe => self.on_probe_message(from, probe, now, &mut out),
        };
        if !answered {
            self.tell_if_dead(from, &mut out);
        }
        out
    }

    /// Changes this node's own ring status (joining→member, member→leaving,
    /// leaving→left), bumps its status version and disseminates it at once.
    pub fn set_status(&mut self, status: Status, now_ms: u64) -> Result<Vec<Output>, StatusError> {
        self.set_status_proved(status, now_ms, |_| None)
    }

    /// [`Swim::set_status`] for a status that needs a proof (Left): `prove` gets the
    /// state as it will be disseminated and returns the proof that goes with it (the
    /// driver signs it; this state machine only attaches it).
    pub fn set_status_proved(
        &mut self,
        status: Status,
        now_ms: u64,
        prove: impl FnOnce(&MemberState) -> Option<Box<StatusProof>>,
    ) -> Result<Vec<Output>, StatusError> {
        let now = self.observe(now_ms);
        let current = self.me().status;
        let allowed = matches!(
            (current, status),
            (Status::Joining, Status::Member)
                | (Status::Member, Status::Leaving)
                | (Status::Leaving, Status::Left)
        );
        if !allowed {
            return Err(StatusError::Transition {
                from: current,
                to: status,
            });
        }
        let mut next = self.me().clone();
        next.status = status;
        next.status_version = next.status_version.saturating_add(1);
        let proof = if state::is_terminal(status) {
            prove(&next)
        } else {
            None
        };
        Ok(self.change_own_state(now, |state| {
            state.status = status;
            state.proof = proof;
        }))
    }

    /// Announces that this node is ready for ring generation `generation` (used by ring
    /// transfers); disseminated like a status change. No-op when unchanged.
    pub fn set_ready_for(&mut self, generation: u64, now_ms: u64) -> Vec<Output> {
        let now = self.observe(now_ms);
        if self.me().ready_for == generation {
            return Vec::new();
        }
        self.change_own_state(now, |state| state.ready_for = generation)
    }

    /// Operator removal of another member: status Removed (terminal), disseminated.
    /// Removing an already removed member is a no-op.
    pub fn remove(&mut self, node: &NodeId, now_ms: u64) -> Result<Vec<Output>, StatusError> {
        let now = self.observe(now_ms);
        let state = self.removable(node)?;
        if state.status == Status::Removed {
            return Ok(Vec::new());
        }
        state.status = Status::Removed;
        state.status_version = state.status_version.saturating_add(1);
        let state = state.clone();
        Ok(self.spread_removal(node, state, now))
    }

    /// Operator removal proved by `proof` (signed by the cluster CA; the driver checked
    /// it): Removed at status version 0 with ready_for 0, the fields a removal statement
    /// signs, so an operator needs to know nothing but the node and its region. A final
    /// status beats every other whatever its version; a member already left or removed
    /// stays as it is (no-op).
    pub fn remove_proved(
        &mut self,
        node: &NodeId,
        proof: Box<StatusProof>,
        now_ms: u64,
    ) -> Result<Vec<Output>, StatusError> {
        let now = self.observe(now_ms);
        let state = self.removable(node)?;
        if state::is_terminal(state.status) {
            return Ok(Vec::new());
        }
        *state = Self::removed_state(state, proof);
        let state = state.clone();
        Ok(self.spread_removal(node, state, now))
    }

    /// The state of `node` as an operator removal may change it: any known member but
    /// this node (a node leaves, it is never removed by itself).
    fn removable(&mut self, node: &NodeId) -> Result<&mut MemberState, StatusError> {
        if *node == self.me {
            return Err(StatusError::RemoveSelf);
        }
        self.members
            .get_mut(node)
            .ok_or_else(|| StatusError::UnknownMember(node.clone()))
    }

    /// Spreads `node`'s removal (`state`, already stored): it is suspected no more and
    /// the change goes out in a gossip round at once.
    fn spread_removal(&mut self, node: &NodeId, state: MemberState, now: u64) -> Vec<Output> {
        self.version += 1;
        self.suspicions.remove(node);
        self.enqueue(state);
        let mut out = Vec::new();
        self.gossip_round(now, &mut out);
        out
    }

    /// `current` as an operator removal makes it: the state a removal proof signs.
    pub fn removed_state(current: &MemberState, proof: Box<StatusProof>) -> MemberState {
        MemberState {
            status: Status::Removed,
            status_version: 0,
            ready_for: 0,
            proof: Some(proof),
            ..current.clone()
        }
    }

    /// Every known member, self included, ordered by node id.
    pub fn members(&self) -> impl Iterator<Item = &MemberState> {
        self.members.values()
    }

    pub fn member(&self, node: &NodeId) -> Option<&MemberState> {
        self.members.get(node)
    }

    pub fn is_dead(&self, node: &NodeId) -> bool {
        self.members
            .get(node)
            .is_some_and(|state| state.liveness == Liveness::Dead)
    }

    /// Lifeguard local health multiplier (0 = healthy).
    pub fn local_health(&self) -> u32 {
        self.local_health
    }

    pub fn stats(&self) -> SwimStats {
        self.stats.clone()
    }

    /// Increments whenever a member is added or its liveness, status, ready_for or
    /// info changes: the driver rebuilds the ring when it moves.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Milliseconds this node has spent stalled (gaps between calls longer than
    /// `STALL_GAP_MS`), in total: the auth fence takes a long stall for an absence.
    pub fn stalled_ms(&self) -> u64 {
        self.stalled_ms
    }

    /// Converts external time to local time, freezing deadlines across a stall.
    fn observe(&mut self, now_ms: u64) -> u64 {
        let gap = now_ms.saturating_sub(self.last_call_ms);
        if gap > crate::limits::STALL_GAP_MS {
            self.stalled_ms += gap;
            self.stats.stalls_detected += 1;
            self.raise_local_health();
        }
        self.last_call_ms = self.last_call_ms.max(now_ms);
        now_ms.saturating_sub(self.stalled_ms)
    }

    fn tick_join(&mut self, now: u64, out: &mut Vec<Output>) {
        let Some(join) = &mut self.join else { return };
        if now < join.next_retry_ms {
            return;
        }
        join.next_retry_ms = now.saturating_add(self.config.probe_interval_ms.saturating_mul(2));
        let seeds = join.seeds.clone();
        let member = self.me().clone();
        for seed in seeds {
            let message = SwimMessage::Join {
                member: member.clone(),
            };
            self.push(out, &seed, message);
        }
    }

    fn change_own_state(&mut self, now: u64, change: impl FnOnce(&mut MemberState)) -> Vec<Output> {
        let me = self.me.clone();
        let state = self.members.get_mut(&me).expect("self is always a member");
        change(state);
        state.status_version = state.status_version.saturating_add(1);
        let state = state.clone();
        self.version += 1;
        self.enqueue(state);
        let mut out = Vec::new();
        self.gossip_round(now, &mut out);
        out
    }

    /// Our full member table to `to`; `reply` asks for theirs back.
    fn send_sync(&mut self, to: &NodeId, reply: bool, out: &mut Vec<Output>) {
        let members = self.members.values().take(MEMBERS_MAX).cloned().collect();
        self.push(out, to, SwimMessage::Sync { members, reply });
    }

    /// A dead (or removed) node that still talks to us learns its state, so it refutes
    /// (or stops); one message in, at most one out.
    fn tell_if_dead(&mut self, from: &NodeId, out: &mut Vec<Output>) {
        let Some(state) = self.members.get(from) else {
            return;
        };
        if state.liveness == Liveness::Dead || state.status == Status::Removed {
            let updates = vec![state.clone()];
            self.send(
                out,
                from,
                |updates| SwimMessage::Gossip { updates },
                updates,
            );
        }
    }

    fn raise_local_health(&mut self) {
        self.local_health = (self.local_health + 1).min(crate::limits::LOCAL_HEALTH_MAX);
    }

    /// Sends a message that carries piggybacked updates, counting them.
    fn send(
        &mut self,
        out: &mut Vec<Output>,
        to: &NodeId,
        build: impl FnOnce(Vec<MemberState>) -> SwimMessage,
        updates: Vec<MemberState>,
    ) {
        self.stats.updates_sent += updates.len() as u64;
        self.push(out, to, build(updates));
    }

    fn push(&mut self, out: &mut Vec<Output>, to: &NodeId, message: SwimMessage) {
        self.stats.messages_sent += 1;
        out.push(Output::Send {
            to: to.clone(),
            message,
        });
    }
}
