//! The member table: merge precedence of received member states, refutation of claims
//! about ourselves, and validation of received messages. No I/O, no clock.
//!
//! Two independent dimensions merge by taking the larger key, so applying the same set
//! of updates in any order ends in the same table:
//! - liveness by `(incarnation, Alive < Suspect < Dead)`: Alive(i) beats anything with
//!   a lower incarnation, Suspect(i) beats Alive(i), Dead(i) beats Alive(i)/Suspect(i),
//!   and a Dead member returns only with a strictly higher incarnation;
//! - ring status by `(terminal, status_version, Joining < Member < Leaving < Left <
//!   Removed, ready_for, info)`: Left and Removed are terminal, so nothing non-terminal
//!   ever replaces them; the trailing fields only break ties deterministically. A final
//!   status's proof travels with it (the driver verified it before it got here).
//!
//! Hostile counters: an update (or a join) whose incarnation or status version is within
//! `COUNTER_MARGIN` of `u64::MAX` is ignored and counted, never refuted: refuting means
//! going one above, and a peer must not be able to push a member's counters to where
//! they cannot grow. A suspicion or death must stay one below that limit, so the
//! refutation one above it is still accepted; a claim about ourselves at the limit
//! itself is left unanswered (a forged Alive says what is true; a forged non-final
//! status there stays, which signing a member's every status would close). A member's region never changes once known (from the topology or
//! its first update): regions are bound to node certificates, so an update moving a
//! member elsewhere is forged and ignored.

use super::{Liveness, MemberState, Output, Status, Swim, SwimMessage};
use crate::ids::{validate_name, NodeId};
use crate::limits::{
    COUNTER_MARGIN, MEMBERS_MAX, PROOF_CERTIFICATE_BYTES_MAX, PROOF_SIGNATURE_BYTES_MAX,
    UPDATES_PER_MESSAGE_MAX,
};
use rand::seq::SliceRandom;
use rand::Rng;
use std::cmp::Ordering;
#[cfg(test)]
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Where a batch of updates came from; decides confirmations and relaying.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source<'a> {
    /// Piggybacked on a probe or gossip message sent by `from`: counts as `from`
    /// suspecting, and new information is relayed.
    Gossip { from: &'a NodeId },
    /// A Join: the joiner's own state, relayed.
    Join,
    /// Push-pull anti-entropy: merged but not relayed (the peer already pushes it).
    Sync,
}

/// Why a received message was ignored as malformed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    FromSelf,
    TooManyUpdates(usize),
    TooManyMembers(usize),
    BadName,
    ProofTooLarge,
    JoinForSomeoneElse,
    ProbeOfSelf,
}

fn liveness_rank(liveness: Liveness) -> u8 {
    match liveness {
        Liveness::Alive => 0,
        Liveness::Suspect => 1,
        Liveness::Dead => 2,
    }
}

fn status_rank(status: Status) -> u8 {
    match status {
        Status::Joining => 0,
        Status::Member => 1,
        Status::Leaving => 2,
        Status::Left => 3,
        Status::Removed => 4,
    }
}

pub(crate) fn is_terminal(status: Status) -> bool {
    matches!(status, Status::Left | Status::Removed)
}

/// A member we probe, gossip to and count in n.
pub(crate) fn is_live(state: &MemberState) -> bool {
    state.liveness != Liveness::Dead && !is_terminal(state.status)
}

pub(crate) fn liveness_key(state: &MemberState) -> (u64, u8) {
    (state.incarnation, liveness_rank(state.liveness))
}

type StatusKey = (bool, u64, u8, u64);

/// Precedence of status claims. Addresses are not part of it: they follow the
/// incarnation (see `merge_state`).
pub(crate) fn status_key(state: &MemberState) -> StatusKey {
    (
        is_terminal(state.status),
        state.status_version,
        status_rank(state.status),
        state.ready_for,
    )
}

/// Tie-break between two claims of equal incarnation and status but other addresses,
/// so every member settles on the same one whatever the order it hears them in.
fn info_key(state: &MemberState) -> (&str, SocketAddr, SocketAddr, u32) {
    (
        state.info.region.as_str(),
        state.info.quic,
        state.info.http,
        state.info.weight,
    )
}

/// What merging one received state into a known one did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MergeOutcome {
    pub liveness_won: bool,
    pub status_won: bool,
    /// Nothing won and the incarnation was lower than known.
    pub stale: bool,
}

/// Merges `incoming` into `current` (same node), dimension by dimension.
pub(crate) fn merge_state(current: &mut MemberState, incoming: &MemberState) -> MergeOutcome {
    let liveness_won = liveness_key(incoming) > liveness_key(current);
    let status_won = status_key(incoming).cmp(&status_key(current)) == Ordering::Greater;
    // Only a member raises its own incarnation (refuting, or restarted on a new
    // address), so a higher incarnation carries its current addresses.
    let info_won = incoming.info != current.info
        && (incoming.incarnation, info_key(incoming)) > (current.incarnation, info_key(current));
    let stale =
        !liveness_won && !status_won && !info_won && incoming.incarnation < current.incarnation;
    if info_won {
        current.info = incoming.info.clone();
    }
    if liveness_won {
        current.incarnation = incoming.incarnation;
        current.liveness = incoming.liveness;
    }
    if status_won {
        current.status = incoming.status;
        current.status_version = incoming.status_version;
        current.ready_for = incoming.ready_for;
        current.proof = proof_of(incoming);
    }
    MergeOutcome {
        liveness_won: liveness_won || info_won,
        status_won,
        stale,
    }
}

/// The proof a state's status carries: only a final status has one.
fn proof_of(state: &MemberState) -> Option<Box<super::StatusProof>> {
    if is_terminal(state.status) {
        state.proof.clone()
    } else {
        None
    }
}

/// The highest counter (incarnation, status version) a received update may carry.
pub(crate) const COUNTER_LIMIT: u64 = u64::MAX - COUNTER_MARGIN;

/// Refuting needs `+ 1`: a claim this close to the maximum is refused, so no peer can
/// make us overflow or leave a member unable to refute again. A suspicion or death
/// must stay one below the limit, so the refutation one above it is still accepted.
pub(crate) fn near_maximum(state: &MemberState) -> bool {
    let incarnation_limit = match state.liveness {
        super::Liveness::Alive => COUNTER_LIMIT,
        super::Liveness::Suspect | super::Liveness::Dead => COUNTER_LIMIT - 1,
    };
    state.incarnation > incarnation_limit || state.status_version > COUNTER_LIMIT
}

fn check_state(state: &MemberState) -> Result<(), Malformed> {
    if validate_name(state.info.node.as_str()).is_err()
        || validate_name(state.info.region.as_str()).is_err()
    {
        return Err(Malformed::BadName);
    }
    if let Some(proof) = &state.proof {
        if proof.certificate.len() > PROOF_CERTIFICATE_BYTES_MAX
            || proof.signature.len() > PROOF_SIGNATURE_BYTES_MAX
        {
            return Err(Malformed::ProofTooLarge);
        }
    }
    Ok(())
}

fn check_updates(updates: &[MemberState], max: usize) -> Result<(), Malformed> {
    if updates.len() > max {
        return Err(if max == MEMBERS_MAX {
            Malformed::TooManyMembers(updates.len())
        } else {
            Malformed::TooManyUpdates(updates.len())
        });
    }
    updates.iter().try_for_each(check_state)
}

impl Swim {
    /// Structural checks of a received message; the whole message is dropped on failure.
    pub(crate) fn check_message(
        &self,
        from: &NodeId,
        message: &SwimMessage,
    ) -> Result<(), Malformed> {
        if *from == self.me {
            return Err(Malformed::FromSelf);
        }
        match message {
            SwimMessage::Ping { updates, .. }
            | SwimMessage::Ack { updates, .. }
            | SwimMessage::IndirectAck { updates, .. }
            | SwimMessage::Gossip { updates } => check_updates(updates, UPDATES_PER_MESSAGE_MAX),
            SwimMessage::PingReq {
                target, updates, ..
            } => {
                if *target == self.me || target == from {
                    return Err(Malformed::ProbeOfSelf);
                }
                check_updates(updates, UPDATES_PER_MESSAGE_MAX)
            }
            SwimMessage::Nack { .. } => Ok(()),
            SwimMessage::Join { member } => {
                if member.info.node != *from {
                    return Err(Malformed::JoinForSomeoneElse);
                }
                check_state(member)
            }
            SwimMessage::Sync { members, .. } => check_updates(members, MEMBERS_MAX),
        }
    }

    pub(crate) fn apply_updates(
        &mut self,
        updates: Vec<MemberState>,
        source: Source<'_>,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        for update in updates {
            self.apply_update(update, source, now, out);
        }
    }

    fn apply_update(
        &mut self,
        update: MemberState,
        source: Source<'_>,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        if let Some(allowed) = &self.allowed_regions {
            if !allowed.contains(&update.info.region) {
                self.stats.unknown_region_ignored += 1;
                return;
            }
        }
        if near_maximum(&update) {
            self.stats.counters_near_maximum_ignored += 1;
            return;
        }
        if self.moves_region(&update) {
            self.stats.region_changes_ignored += 1;
            return;
        }
        let node = update.info.node.clone();
        if node == self.me {
            self.apply_about_me(&update);
            return;
        }
        let Some(current) = self.members.get_mut(&node) else {
            self.add_member(update, source, now, out);
            return;
        };
        let before = current.clone();
        let outcome = merge_state(current, &update);
        let after = current.clone();
        if let (Source::Gossip { from }, Liveness::Suspect) = (source, update.liveness) {
            if liveness_key(&update) == liveness_key(&before) {
                self.add_suspecter(&node, update.incarnation, from);
            }
        }
        if !outcome.liveness_won && !outcome.status_won {
            if outcome.stale {
                self.stats.stale_updates_ignored += 1;
            }
            return;
        }
        if before.liveness != after.liveness
            || before.status != after.status
            || before.ready_for != after.ready_for
            || before.info != after.info
        {
            self.version += 1;
        }
        if outcome.liveness_won {
            self.on_liveness_change(&after, source, now, out);
        }
        if !is_live(&before) && is_live(&after) {
            self.add_to_probe_order(&node, true);
        }
        // A suspicion spreads only once this node verified it (its extra probe failed),
        // so every sender of a suspicion is an independent confirmation.
        let relay = match source {
            Source::Sync => false,
            Source::Join => true,
            Source::Gossip { .. } => {
                outcome.status_won || (outcome.liveness_won && after.liveness != Liveness::Suspect)
            }
        };
        if relay {
            self.enqueue(after);
        }
    }

    /// Whether `update` places its member in another region than the one it is known in.
    fn moves_region(&self, update: &MemberState) -> bool {
        let node = &update.info.node;
        let known = self
            .members
            .get(node)
            .map(|state| &state.info.region)
            .or_else(|| self.pinned_regions.get(node));
        known.is_some_and(|region| *region != update.info.region)
    }

    fn add_member(
        &mut self,
        update: MemberState,
        source: Source<'_>,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        if self.members.len() >= MEMBERS_MAX {
            self.stats.members_over_limit += 1;
            return;
        }
        let node = update.info.node.clone();
        let (live, suspect, incarnation) = (
            is_live(&update),
            update.liveness == Liveness::Suspect,
            update.incarnation,
        );
        if matches!(source, Source::Sync) {
            self.members.insert(node.clone(), update);
        } else {
            self.members.insert(node.clone(), update.clone());
            self.enqueue(update);
        }
        self.version += 1;
        if live {
            self.add_to_probe_order(&node, false);
        }
        if suspect {
            let from = match source {
                Source::Gossip { from } => Some(from),
                _ => None,
            };
            self.start_suspicion(&node, incarnation, from, now, out);
        }
    }

    fn on_liveness_change(
        &mut self,
        after: &MemberState,
        source: Source<'_>,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let node = &after.info.node;
        match after.liveness {
            Liveness::Alive | Liveness::Dead => {
                self.suspicions.remove(node);
                self.extra_probes.retain(|_, probe| probe.target != *node);
            }
            Liveness::Suspect => {
                let from = match source {
                    Source::Gossip { from } => Some(from),
                    _ => None,
                };
                self.start_suspicion(node, after.incarnation, from, now, out);
            }
        }
    }

    /// Claims about ourselves: refute suspicion and death, ignore forged liveness,
    /// accept an operator's terminal status.
    fn apply_about_me(&mut self, update: &MemberState) {
        let mine = self.me().clone();
        let mut refute_to = None;
        if update.incarnation > mine.incarnation && update.liveness == Liveness::Alive {
            // Only we raise our incarnation: someone forged it (or it is from a past life).
            self.stats.forged_updates_ignored += 1;
            // At the limit one above would be refused by everyone: leave it unanswered
            // (the forged state says we are alive, which is true).
            refute_to = (update.incarnation < COUNTER_LIMIT).then(|| update.incarnation + 1);
        } else if update.incarnation >= mine.incarnation && update.liveness != Liveness::Alive {
            self.stats.refutations += 1;
            self.raise_local_health();
            refute_to = Some(update.incarnation + 1);
        }
        let status_won = status_key(update) > status_key(&mine);
        if !status_won && refute_to.is_none() {
            if update.incarnation < mine.incarnation {
                self.stats.stale_updates_ignored += 1;
                if update.liveness != Liveness::Alive {
                    // Someone still suspects an old incarnation: our refutation was
                    // lost, so send it again (no new incarnation needed).
                    self.enqueue(mine);
                }
            }
            return;
        }
        let me = self.me.clone();
        let state = self.members.get_mut(&me).expect("self is always a member");
        if let Some(incarnation) = refute_to {
            state.incarnation = incarnation;
        }
        if status_won {
            if is_terminal(update.status) {
                // An operator removed us (or a past life left): terminal, accept it.
                state.status = update.status;
                state.status_version = update.status_version;
                state.ready_for = update.ready_for;
                state.proof = proof_of(update);
                self.version += 1;
            } else {
                // A non-terminal status we never set: ours stays, with a higher version
                // (at the limit none is possible: the forged status stays unanswered).
                self.stats.forged_updates_ignored += 1;
                if update.status_version < COUNTER_LIMIT {
                    state.status_version = update.status_version + 1;
                }
                state.proof = None;
            }
        }
        let state = state.clone();
        self.enqueue(state);
    }

    /// Inserts a member into the probe order at a random position not yet probed in
    /// this pass (O(1): push then swap).
    pub(crate) fn add_to_probe_order(&mut self, node: &NodeId, check_duplicate: bool) {
        if check_duplicate && self.probe_order.contains(node) {
            return;
        }
        self.probe_order.push(node.clone());
        let last = self.probe_order.len() - 1;
        let start = self.probe_cursor.min(last);
        let position = self.rng.gen_range(start..=last);
        self.probe_order.swap(position, last);
    }

    /// Takes over a complete table of fresh members, with the same effect as merging a
    /// Sync of it into a new node but in bulk (the simulation builds large clusters
    /// this way). Our own entry stays as it is.
    #[cfg(test)]
    pub(crate) fn install_table(&mut self, table: &BTreeMap<NodeId, MemberState>) {
        let mine = self.me().clone();
        self.members = table.clone();
        self.members.insert(self.me.clone(), mine);
        self.version += 1;
        self.reshuffle_probe_order();
    }

    /// A fresh shuffled round-robin over the live members other than this node.
    pub(crate) fn reshuffle_probe_order(&mut self) {
        let me = self.me.clone();
        self.probe_order = self
            .members
            .values()
            .filter(|state| state.info.node != me && is_live(state))
            .map(|state| state.info.node.clone())
            .collect();
        self.probe_order.shuffle(&mut self.rng);
        self.probe_cursor = 0;
    }

    /// Members that are not dead, left or removed, self included (cached per version).
    pub(crate) fn live_members(&mut self) -> usize {
        if self.live_count.0 != self.version {
            let count = self.members.values().filter(|state| is_live(state)).count();
            self.live_count = (self.version, count.max(1));
        }
        self.live_count.1
    }

    /// Queues a state for piggybacked dissemination with a fresh retransmit budget and
    /// asks for a prompt gossip round.
    pub(crate) fn enqueue(&mut self, state: MemberState) {
        let members = self.live_members();
        let budget = self.config.retransmit_budget(members);
        self.broadcasts
            .push(state, budget, self.gossip_budget(budget));
        self.hurry_gossip();
    }

    /// A suspicion this node verified itself (raised or confirmed). Nobody relays a
    /// suspicion before verifying it, so its originators send it twice as often.
    pub(crate) fn enqueue_own_suspicion(&mut self, state: MemberState) {
        let members = self.live_members();
        let budget = self.config.retransmit_budget(members).saturating_mul(2);
        self.broadcasts
            .push(state, budget, self.gossip_budget(budget));
        self.hurry_gossip();
    }

    /// Transmits of one update that may use Gossip messages: max(fanout, ⌈budget/2⌉),
    /// so one round reaches a full fanout and the tail rides on probes for free.
    fn gossip_budget(&self, budget: u32) -> u32 {
        let fanout = u32::try_from(self.config.gossip_fanout).unwrap_or(u32::MAX);
        fanout.max(budget.div_ceil(2)).min(budget)
    }

    fn hurry_gossip(&mut self) {
        self.gossip_urgent = true;
    }

    /// The piggyback for a message to `to`: its own state first when it is suspect,
    /// dead or removed (Lifeguard's buddy system: it refutes at once), then the queued
    /// updates with the most transmits left.
    pub(crate) fn piggyback(&mut self, to: &NodeId) -> Vec<MemberState> {
        self.piggyback_on(to, false)
    }

    /// `piggyback` for a probe message, or for a Gossip message when `gossip`.
    pub(crate) fn piggyback_on(&mut self, to: &NodeId, gossip: bool) -> Vec<MemberState> {
        let max = self
            .config
            .updates_per_message_max
            .clamp(1, UPDATES_PER_MESSAGE_MAX);
        let mut updates = Vec::new();
        if let Some(state) = self.members.get(to) {
            if state.liveness != Liveness::Alive || state.status == Status::Removed {
                updates.push(state.clone());
            }
        }
        let skip = if updates.is_empty() { None } else { Some(to) };
        self.broadcasts
            .take(max - updates.len(), skip, gossip, &mut updates);
        updates
    }
}
