//! Probing and suspicion: the probe round (direct Ping, PingReq to k members, suspect at
//! the end of the period), extra probes that confirm a suspicion heard from others,
//! relayed probes we run for others (IndirectAck / Nack), Lifeguard suspicion timers
//! and local health accounting. No I/O, no clock: deadlines are local milliseconds.

use super::state::{is_live, Source};
use super::{Liveness, MemberState, Output, Swim, SwimMessage};
use crate::ids::NodeId;
use crate::limits::{PENDING_PROBES_MAX, SUSPECTERS_MAX};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeSet;

/// The one regular probe of the current period.
#[derive(Clone, Debug)]
pub(crate) struct ProbeRound {
    pub target: NodeId,
    pub seq: u64,
    /// The target's incarnation when probed: a refutation during the round cancels the suspicion.
    pub incarnation: u64,
    pub indirect_at_ms: u64,
    pub end_at_ms: u64,
    pub indirect_sent: bool,
    pub intermediaries: Vec<NodeId>,
    pub nacks: Vec<NodeId>,
    pub answered: bool,
    /// The direct probe of an already suspected target failed and we said so.
    pub confirmed: bool,
}

/// Nacks still expected for a failed round: missing ones mean we are the slow party.
#[derive(Clone, Debug)]
pub(crate) struct NackTally {
    pub seq: u64,
    pub intermediaries: Vec<NodeId>,
    pub nacks: Vec<NodeId>,
    pub deadline_ms: u64,
}

/// A Ping sent on hearing that `target` is suspect; its failure is our confirmation.
#[derive(Clone, Debug)]
pub(crate) struct ExtraProbe {
    pub target: NodeId,
    pub incarnation: u64,
    pub deadline_ms: u64,
}

/// A probe we run for `requester` (we are its intermediary).
#[derive(Clone, Debug)]
pub(crate) struct Relay {
    pub requester: NodeId,
    pub requester_seq: u64,
    pub target: NodeId,
    pub nack_at_ms: u64,
    pub deadline_ms: u64,
    pub nacked: bool,
}

/// A running suspicion timer; `suspecters` are distinct nodes that independently
/// suspected this incarnation (self included when our own probe failed).
#[derive(Clone, Debug)]
pub(crate) struct Suspicion {
    pub incarnation: u64,
    pub started_ms: u64,
    pub suspecters: BTreeSet<NodeId>,
}

impl Swim {
    fn scale(&self) -> u64 {
        u64::from(self.local_health) + 1
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub(crate) fn is_remote(&self, node: &NodeId) -> bool {
        match self.members.get(node) {
            Some(state) => state.info.region != self.me().info.region,
            None => false,
        }
    }

    /// Direct probe timeout for `target`, stretched by local health.
    fn probe_timeout(&self, target: &NodeId) -> u64 {
        let base = if self.is_remote(target) {
            self.config.remote_probe_timeout_ms
        } else {
            self.config.probe_timeout_ms
        };
        base.saturating_mul(self.scale())
    }

    pub(crate) fn tick_probes(&mut self, now: u64, out: &mut Vec<Output>) {
        let indirect_due = self.round.as_ref().is_some_and(|round| {
            !round.answered && !round.indirect_sent && now >= round.indirect_at_ms
        });
        if indirect_due {
            self.send_indirect(out);
            self.confirm_during_round(now, out);
        }
        if self
            .round
            .as_ref()
            .is_some_and(|round| now >= round.end_at_ms)
        {
            if let Some(round) = self.round.take() {
                self.conclude_round(round, now, out);
            }
        }
        if self.round.is_none() && now >= self.next_probe_ms {
            self.start_round(now, out);
        }
        self.tick_extra_probes(now, out);
        self.tick_relays(now, out);
        if self
            .nack_tally
            .as_ref()
            .is_some_and(|tally| now >= tally.deadline_ms)
        {
            self.finish_nack_tally();
        }
    }

    fn start_round(&mut self, now: u64, out: &mut Vec<Output>) {
        let interval = self.config.probe_interval_ms.max(1);
        let Some(target) = self.next_probe_target() else {
            self.next_probe_ms = now.saturating_add(interval);
            return;
        };
        let period = interval.saturating_mul(self.scale());
        let incarnation = self
            .members
            .get(&target)
            .map_or(0, |state| state.incarnation);
        let seq = self.take_seq();
        self.round = Some(ProbeRound {
            target: target.clone(),
            seq,
            incarnation,
            indirect_at_ms: now.saturating_add(self.probe_timeout(&target)),
            end_at_ms: now.saturating_add(period),
            indirect_sent: false,
            intermediaries: Vec::new(),
            nacks: Vec::new(),
            answered: false,
            confirmed: false,
        });
        self.next_probe_ms = now.saturating_add(period);
        self.stats.probes_sent += 1;
        let updates = self.piggyback(&target);
        self.send(
            out,
            &target,
            |updates| SwimMessage::Ping { seq, updates },
            updates,
        );
    }

    /// Round-robin over a shuffled list of live members, reshuffled after each pass.
    fn next_probe_target(&mut self) -> Option<NodeId> {
        for _pass in 0..2 {
            while self.probe_cursor < self.probe_order.len() {
                let node = self.probe_order[self.probe_cursor].clone();
                self.probe_cursor += 1;
                if node != self.me && self.members.get(&node).is_some_and(is_live) {
                    return Some(node);
                }
            }
            self.reshuffle_probe_order();
        }
        None
    }

    /// When others already suspect our round's target, a failed direct probe is enough
    /// to confirm (as an extra probe would): no need to wait for the period's end.
    fn confirm_during_round(&mut self, now: u64, out: &mut Vec<Output>) {
        let Some(round) = &mut self.round else { return };
        let suspected = self.members.get(&round.target).is_some_and(|state| {
            state.liveness == Liveness::Suspect && state.incarnation == round.incarnation
        });
        if !suspected || round.confirmed {
            return;
        }
        round.confirmed = true;
        let (target, incarnation) = (round.target.clone(), round.incarnation);
        self.suspect_after_failed_probe(&target, incarnation, now, out);
    }

    fn send_indirect(&mut self, out: &mut Vec<Output>) {
        let Some(round) = &self.round else { return };
        let (target, seq) = (round.target.clone(), round.seq);
        let count = self.config.indirect_probes;
        let helpers = self.random_members(count, |state| {
            state.liveness == Liveness::Alive && state.info.node != target
        });
        for helper in &helpers {
            self.stats.indirect_probes_sent += 1;
            let updates = self.piggyback(helper);
            let target = target.clone();
            self.send(
                out,
                helper,
                |updates| SwimMessage::PingReq {
                    seq,
                    target,
                    updates,
                },
                updates,
            );
        }
        if let Some(round) = &mut self.round {
            round.indirect_sent = true;
            round.intermediaries = helpers;
        }
    }

    fn conclude_round(&mut self, round: ProbeRound, now: u64, out: &mut Vec<Output>) {
        if round.answered {
            self.local_health = self.local_health.saturating_sub(1);
            return;
        }
        if round.intermediaries.is_empty() {
            self.raise_local_health();
        } else if round.nacks.len() < round.intermediaries.len() {
            // Late Nacks still count until one more period has passed.
            self.finish_nack_tally();
            self.nack_tally = Some(NackTally {
                seq: round.seq,
                intermediaries: round.intermediaries,
                nacks: round.nacks,
                deadline_ms: now.saturating_add(self.config.probe_interval_ms),
            });
        }
        self.suspect_after_failed_probe(&round.target, round.incarnation, now, out);
    }

    fn finish_nack_tally(&mut self) {
        if let Some(tally) = self.nack_tally.take() {
            if tally.nacks.len() < tally.intermediaries.len() {
                self.raise_local_health();
            }
        }
    }

    /// Our own probe of `target` failed: raise a suspicion, or confirm an existing one.
    fn suspect_after_failed_probe(
        &mut self,
        target: &NodeId,
        incarnation: u64,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let Some(state) = self.members.get_mut(target) else {
            return;
        };
        if state.incarnation != incarnation || !is_live(state) {
            return;
        }
        let me = self.me.clone();
        match state.liveness {
            Liveness::Alive => {
                state.liveness = Liveness::Suspect;
                let state = state.clone();
                self.version += 1;
                self.stats.suspicions_raised += 1;
                self.start_suspicion(target, incarnation, Some(&me), now, out);
                self.enqueue_own_suspicion(state);
            }
            Liveness::Suspect => {
                let state = state.clone();
                if self.add_suspecter(target, incarnation, &me) {
                    self.stats.confirmations_sent += 1;
                    self.enqueue_own_suspicion(state);
                }
            }
            Liveness::Dead => {}
        }
    }

    /// Starts (or joins) the suspicion timer of `node` at `incarnation`. When we heard
    /// it from someone else, we probe `node` at once: its failure is our confirmation.
    pub(crate) fn start_suspicion(
        &mut self,
        node: &NodeId,
        incarnation: u64,
        from: Option<&NodeId>,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let fresh = Suspicion {
            incarnation,
            started_ms: now,
            suspecters: BTreeSet::new(),
        };
        let suspicion = self
            .suspicions
            .entry(node.clone())
            .or_insert_with(|| fresh.clone());
        if suspicion.incarnation != incarnation {
            *suspicion = fresh;
        }
        if let Some(from) = from {
            self.add_suspecter(node, incarnation, from);
        }
        if from != Some(&self.me) {
            self.send_extra_probe(node, incarnation, now, out);
        }
    }

    /// Records `from` as suspecting `node`; true when it is a new suspecter.
    pub(crate) fn add_suspecter(&mut self, node: &NodeId, incarnation: u64, from: &NodeId) -> bool {
        let Some(suspicion) = self.suspicions.get_mut(node) else {
            return false;
        };
        if suspicion.incarnation != incarnation
            || from == node
            || suspicion.suspecters.len() >= SUSPECTERS_MAX
        {
            return false;
        }
        suspicion.suspecters.insert(from.clone())
    }

    fn send_extra_probe(
        &mut self,
        node: &NodeId,
        incarnation: u64,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let probing = self
            .round
            .as_ref()
            .is_some_and(|round| round.target == *node);
        let pending = self
            .extra_probes
            .values()
            .any(|probe| probe.target == *node);
        if probing || pending || self.extra_probes.len() >= PENDING_PROBES_MAX {
            return;
        }
        let seq = self.take_seq();
        let deadline_ms = now.saturating_add(self.probe_timeout(node));
        self.extra_probes.insert(
            seq,
            ExtraProbe {
                target: node.clone(),
                incarnation,
                deadline_ms,
            },
        );
        self.stats.extra_probes_sent += 1;
        let updates = self.piggyback(node);
        self.send(
            out,
            node,
            |updates| SwimMessage::Ping { seq, updates },
            updates,
        );
    }

    fn tick_extra_probes(&mut self, now: u64, out: &mut Vec<Output>) {
        let expired: Vec<u64> = self
            .extra_probes
            .iter()
            .filter(|(_, probe)| now >= probe.deadline_ms)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            if let Some(probe) = self.extra_probes.remove(&seq) {
                self.suspect_after_failed_probe(&probe.target, probe.incarnation, now, out);
            }
        }
    }

    fn tick_relays(&mut self, now: u64, out: &mut Vec<Output>) {
        let due: Vec<u64> = self
            .relays
            .iter()
            .filter(|(_, relay)| !relay.nacked && now >= relay.nack_at_ms)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in due {
            if let Some(relay) = self.relays.get_mut(&seq) {
                relay.nacked = true;
                let (to, seq, target) = (
                    relay.requester.clone(),
                    relay.requester_seq,
                    relay.target.clone(),
                );
                self.push(out, &to, SwimMessage::Nack { seq, target });
            }
        }
        self.relays.retain(|_, relay| now < relay.deadline_ms);
    }

    /// Expired suspicions become Dead (if nothing refuted them meanwhile).
    pub(crate) fn tick_suspicions(&mut self, now: u64) {
        if self.suspicions.is_empty() {
            return;
        }
        let members = self.live_members();
        let scale = self.scale();
        let expired: Vec<(NodeId, u64)> = self
            .suspicions
            .iter()
            .filter(|(node, suspicion)| {
                let suspecters = suspicion.suspecters.len();
                let timeout =
                    self.config
                        .suspicion_timeout_ms(members, self.is_remote(node), suspecters);
                now >= suspicion
                    .started_ms
                    .saturating_add(timeout.saturating_mul(scale))
            })
            .map(|(node, suspicion)| (node.clone(), suspicion.incarnation))
            .collect();
        for (node, incarnation) in expired {
            self.suspicions.remove(&node);
            let Some(state) = self.members.get_mut(&node) else {
                continue;
            };
            if state.liveness != Liveness::Suspect || state.incarnation != incarnation {
                continue;
            }
            state.liveness = Liveness::Dead;
            let state = state.clone();
            self.version += 1;
            self.stats.deaths_declared += 1;
            self.extra_probes.retain(|_, probe| probe.target != node);
            self.enqueue(state);
        }
    }

    /// Ping, Ack, PingReq, IndirectAck and Nack; true when we answered `from`.
    pub(crate) fn on_probe_message(
        &mut self,
        from: &NodeId,
        message: SwimMessage,
        now: u64,
        out: &mut Vec<Output>,
    ) -> bool {
        let gossip = Source::Gossip { from };
        match message {
            SwimMessage::Ping { seq, updates } => {
                self.apply_updates(updates, gossip, now, out);
                let updates = self.piggyback(from);
                self.send(
                    out,
                    from,
                    |updates| SwimMessage::Ack { seq, updates },
                    updates,
                );
                return true;
            }
            SwimMessage::Ack { seq, updates } => {
                self.apply_updates(updates, gossip, now, out);
                self.on_ack(from, seq, out);
            }
            SwimMessage::PingReq {
                seq,
                target,
                updates,
            } => {
                self.apply_updates(updates, gossip, now, out);
                self.on_ping_req(from, seq, target, now, out);
            }
            SwimMessage::IndirectAck {
                seq,
                target,
                updates,
            } => {
                self.apply_updates(updates, gossip, now, out);
                self.on_indirect_ack(from, seq, &target);
            }
            SwimMessage::Nack { seq, target } => self.on_nack(from, seq, &target),
            SwimMessage::Join { .. } | SwimMessage::Sync { .. } | SwimMessage::Gossip { .. } => {}
        }
        false
    }

    fn on_ack(&mut self, from: &NodeId, seq: u64, out: &mut Vec<Output>) {
        if let Some(round) = &mut self.round {
            if round.seq == seq && round.target == *from {
                if !round.answered {
                    round.answered = true;
                    self.stats.acks_received += 1;
                }
                return;
            }
        }
        if self
            .extra_probes
            .get(&seq)
            .is_some_and(|probe| probe.target == *from)
        {
            self.extra_probes.remove(&seq);
            self.stats.acks_received += 1;
            return;
        }
        if self
            .relays
            .get(&seq)
            .is_some_and(|relay| relay.target == *from)
        {
            if let Some(relay) = self.relays.remove(&seq) {
                let updates = self.piggyback(&relay.requester);
                let (seq, target) = (relay.requester_seq, relay.target);
                self.send(
                    out,
                    &relay.requester,
                    |updates| SwimMessage::IndirectAck {
                        seq,
                        target,
                        updates,
                    },
                    updates,
                );
            }
        }
    }

    fn on_ping_req(
        &mut self,
        from: &NodeId,
        seq: u64,
        target: NodeId,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        if !self.members.contains_key(&target) || self.relays.len() >= PENDING_PROBES_MAX {
            self.stats.probe_requests_refused += 1;
            return;
        }
        let our_seq = self.take_seq();
        let nack_at_ms = now.saturating_add(self.config.probe_timeout_ms);
        let deadline_ms = nack_at_ms.max(now.saturating_add(self.probe_timeout(&target)));
        self.relays.insert(
            our_seq,
            Relay {
                requester: from.clone(),
                requester_seq: seq,
                target: target.clone(),
                nack_at_ms,
                deadline_ms,
                nacked: false,
            },
        );
        let updates = self.piggyback(&target);
        self.send(
            out,
            &target,
            |updates| SwimMessage::Ping {
                seq: our_seq,
                updates,
            },
            updates,
        );
    }

    fn on_indirect_ack(&mut self, from: &NodeId, seq: u64, target: &NodeId) {
        let Some(round) = &mut self.round else { return };
        if round.seq == seq
            && round.target == *target
            && round.intermediaries.contains(from)
            && !round.answered
        {
            round.answered = true;
            self.stats.indirect_acks_received += 1;
        }
    }

    fn on_nack(&mut self, from: &NodeId, seq: u64, target: &NodeId) {
        self.stats.nacks_received += 1;
        if let Some(round) = &mut self.round {
            if round.seq == seq && round.target == *target {
                if round.intermediaries.contains(from) && !round.nacks.contains(from) {
                    round.nacks.push(from.clone());
                }
                return;
            }
        }
        if let Some(tally) = &mut self.nack_tally {
            if tally.seq == seq
                && tally.intermediaries.contains(from)
                && !tally.nacks.contains(from)
            {
                tally.nacks.push(from.clone());
                if tally.nacks.len() >= tally.intermediaries.len() {
                    self.nack_tally = None;
                }
            }
        }
    }

    /// Up to `count` distinct random other members passing `filter`: sampled from the
    /// probe order when it is large (O(count)), else chosen from a full scan.
    pub(crate) fn random_members(
        &mut self,
        count: usize,
        filter: impl Fn(&MemberState) -> bool,
    ) -> Vec<NodeId> {
        if count == 0 {
            return Vec::new();
        }
        let me = self.me.clone();
        let accept = |state: &MemberState| state.info.node != me && is_live(state) && filter(state);
        let mut chosen: Vec<NodeId> = Vec::new();
        if self.probe_order.len() > count * 4 {
            for _attempt in 0..count * 8 {
                if chosen.len() == count {
                    break;
                }
                let node = &self.probe_order[self.rng.gen_range(0..self.probe_order.len())];
                if !chosen.contains(node) && self.members.get(node).is_some_and(&accept) {
                    chosen.push(node.clone());
                }
            }
        }
        if chosen.is_empty() {
            let candidates: Vec<&NodeId> = self
                .members
                .values()
                .filter(|state| accept(state))
                .map(|state| &state.info.node)
                .collect();
            chosen = candidates
                .choose_multiple(&mut self.rng, count)
                .map(|node| (*node).clone())
                .collect();
        }
        chosen
    }
}
