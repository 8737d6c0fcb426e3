//! Dissemination: the broadcast queue (one entry per member, each with a retransmit
//! budget), piggyback selection, Gossip rounds while updates are pending, and periodic
//! push-pull Sync. No I/O, no clock.

use super::state::{is_live, is_terminal};
use super::{Liveness, MemberState, Output, Swim, SwimMessage};
use crate::ids::NodeId;
use crate::limits::MEMBERS_MAX;
use rand::seq::SliceRandom;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Broadcast {
    state: MemberState,
    transmits_left: u32,
    /// Transmits that may still go in Gossip messages; the rest ride on probes only,
    /// which bounds the extra messages one update costs.
    gossip_left: u32,
    /// Insertion order: among equal budgets the newest goes first.
    order: u64,
}

/// Updates waiting to be piggybacked. Bounded by one entry per member (newer info
/// about a member replaces its entry), so at most `MEMBERS_MAX`.
#[derive(Clone, Debug, Default)]
pub(crate) struct BroadcastQueue {
    entries: BTreeMap<NodeId, Broadcast>,
    next_order: u64,
}

impl BroadcastQueue {
    pub fn push(&mut self, state: MemberState, budget: u32, gossip_budget: u32) {
        let node = state.info.node.clone();
        if !self.entries.contains_key(&node) && self.entries.len() >= MEMBERS_MAX {
            return;
        }
        self.next_order += 1;
        self.entries.insert(
            node,
            Broadcast {
                state,
                transmits_left: budget.max(1),
                gossip_left: gossip_budget.min(budget),
                order: self.next_order,
            },
        );
    }

    /// Some update may still travel in a Gossip message.
    pub fn has_gossip(&self) -> bool {
        self.entries.values().any(|entry| entry.gossip_left > 0)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Appends up to `max` updates with the most transmits left (newest first among
    /// equals) to `updates`, skipping `skip`, and spends one transmit of each. For a
    /// Gossip message (`gossip`) only updates with gossip transmits left qualify.
    pub fn take(
        &mut self,
        max: usize,
        skip: Option<&NodeId>,
        gossip: bool,
        updates: &mut Vec<MemberState>,
    ) {
        if max == 0 || self.entries.is_empty() {
            return;
        }
        let mut ranked: Vec<(u32, u64, &NodeId)> = self
            .entries
            .iter()
            .filter(|(node, entry)| Some(*node) != skip && (!gossip || entry.gossip_left > 0))
            .map(|(node, entry)| (entry.transmits_left, entry.order, node))
            .collect();
        ranked.sort_unstable_by_key(|(transmits_left, order, _)| {
            std::cmp::Reverse((*transmits_left, *order))
        });
        let chosen: Vec<NodeId> = ranked
            .into_iter()
            .take(max)
            .map(|(_, _, node)| node.clone())
            .collect();
        for node in chosen {
            let Some(entry) = self.entries.get_mut(&node) else {
                continue;
            };
            updates.push(entry.state.clone());
            entry.transmits_left -= 1;
            if gossip {
                entry.gossip_left -= 1;
            }
            if entry.transmits_left == 0 {
                self.entries.remove(&node);
            }
        }
    }
}

impl Swim {
    /// A round every gossip interval, or at once when news arrived, within the rate
    /// limit (on average one round per interval, bursts of two).
    pub(crate) fn tick_gossip(&mut self, now: u64, out: &mut Vec<Output>) {
        let interval = self.config.gossip_interval_ms.max(1);
        let allowed = self.gossip_tat_ms <= now.saturating_add(interval);
        if allowed && (now >= self.next_gossip_ms || self.gossip_urgent) {
            self.gossip_round(now, out);
        }
    }

    /// One Gossip to each of `gossip_fanout` live members, while updates last.
    pub(crate) fn gossip_round(&mut self, now: u64, out: &mut Vec<Output>) {
        let interval = self.config.gossip_interval_ms.max(1);
        self.next_gossip_ms = now.saturating_add(interval);
        if !self.broadcasts.has_gossip() {
            self.gossip_urgent = false;
            return;
        }
        let targets = self.next_gossip_targets(self.config.gossip_fanout);
        if targets.is_empty() {
            // Nobody to tell yet (a joining node before its Sync): stay urgent.
            return;
        }
        self.gossip_urgent = false;
        self.gossip_tat_ms = self.gossip_tat_ms.max(now).saturating_add(interval);
        for target in targets {
            let updates = self.piggyback_on(&target, true);
            if updates.is_empty() {
                break;
            }
            self.send(
                out,
                &target,
                |updates| SwimMessage::Gossip { updates },
                updates,
            );
        }
    }

    /// The next `count` live members after the gossip cursor in the shuffled probe
    /// order: consecutive rounds reach different members, so a few rounds cover all.
    fn next_gossip_targets(&mut self, count: usize) -> Vec<NodeId> {
        let mut targets = Vec::new();
        let len = self.probe_order.len();
        for _step in 0..len {
            if targets.len() == count {
                break;
            }
            self.gossip_cursor = (self.gossip_cursor + 1) % len;
            let node = &self.probe_order[self.gossip_cursor];
            let live = *node != self.me && self.members.get(node).is_some_and(is_live);
            if live && !targets.contains(node) {
                targets.push(node.clone());
            }
        }
        if targets.is_empty() {
            targets = self.random_members(count, |_| true);
        }
        targets
    }

    pub(crate) fn tick_sync(&mut self, now: u64, out: &mut Vec<Output>) {
        if now < self.next_sync_ms {
            return;
        }
        self.next_sync_ms = now.saturating_add(self.config.sync_interval_ms.max(1));
        if let Some(target) = self.random_members(1, |_| true).pop() {
            self.send_sync(&target, true, out);
        }
        // A member held dead but not gone (neither left nor removed) may be alive behind
        // a partition that has healed; nobody probes the dead, so without this the two
        // sides would never hear of each other again. One sync per interval to one of
        // them (Serf's reconnect): it learns it is held dead and refutes, and its reply
        // tells us what it holds of us, so we refute too.
        let dead: Vec<NodeId> = self
            .members
            .values()
            .filter(|state| {
                state.info.node != self.me
                    && state.liveness == Liveness::Dead
                    && !is_terminal(state.status)
            })
            .map(|state| state.info.node.clone())
            .collect();
        if let Some(target) = dead.choose(&mut self.rng).cloned() {
            self.send_sync(&target, true, out);
        }
    }

    #[cfg(test)]
    pub(crate) fn pending_broadcasts(&self) -> usize {
        self.broadcasts.len()
    }
}
