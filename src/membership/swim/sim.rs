//! Deterministic in-process simulation of many [`Swim`] nodes on a virtual network:
//! each message is delayed (default 1–5 ms, per-link overrides), dropped with a
//! probability (global and per link), and delivered in virtual-time order; nodes tick
//! every `tick_ms` (each with its own phase); nodes can crash (stop; messages to them
//! are lost), pause and resume (messages to a paused node are queued and delivered on
//! resume, as a stopped process's kernel buffers one-way QUIC data), and restart (a new
//! `Swim` for the same id). One seeded RNG drives the network, so a seed replays exactly.
//!
//! Used by the SWIM tests and reusable by the lead for cluster-level scenarios. It owns
//! no real time or I/O and must never gain any.

use super::{MemberInfo, MemberState, Output, Status, Swim, SwimConfig, SwimMessage};
use crate::ids::{NodeId, Region};
use crate::limits::{SIM_IN_FLIGHT_MESSAGES_MAX, SIM_PAUSED_MESSAGES_MAX};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};

/// Delay and loss of one direction of one link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkFaults {
    pub delay_min_ms: u64,
    pub delay_max_ms: u64,
    pub drop_probability: f64,
}

impl Default for LinkFaults {
    fn default() -> Self {
        LinkFaults {
            delay_min_ms: 1,
            delay_max_ms: 5,
            drop_probability: 0.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimConfig {
    pub seed: u64,
    /// Each node's tick cadence in virtual time.
    pub tick_ms: u64,
    /// Links without an override.
    pub link: LinkFaults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            tick_ms: 10,
            link: LinkFaults::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Running,
    Paused,
    Crashed,
}

/// Network counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    /// Lost because the receiver had crashed, or a queue was full, or the id is unknown.
    pub lost: u64,
    /// Messages sent per kind (`Ping`, `Ack`, ...).
    pub sent_by_kind: BTreeMap<&'static str, u64>,
}

struct SimNode {
    swim: Swim,
    state: NodeState,
    paused_queue: VecDeque<(NodeId, SwimMessage)>,
    /// Bumped on restart so ticks scheduled for the old instance are ignored.
    generation: u64,
    sent: u64,
}

enum EventKind {
    Deliver {
        from: NodeId,
        to: usize,
        message: SwimMessage,
    },
    Tick {
        node: usize,
        generation: u64,
    },
}

struct Event {
    at_ms: u64,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at_ms, self.seq).cmp(&(other.at_ms, other.seq))
    }
}

/// The simulated cluster.
pub struct Sim {
    config: SimConfig,
    rng: StdRng,
    now_ms: u64,
    nodes: Vec<SimNode>,
    index: BTreeMap<NodeId, usize>,
    links: BTreeMap<(NodeId, NodeId), LinkFaults>,
    queue: BinaryHeap<Reverse<Event>>,
    next_seq: u64,
    stats: NetStats,
}

fn kind(message: &SwimMessage) -> &'static str {
    match message {
        SwimMessage::Ping { .. } => "Ping",
        SwimMessage::Ack { .. } => "Ack",
        SwimMessage::PingReq { .. } => "PingReq",
        SwimMessage::IndirectAck { .. } => "IndirectAck",
        SwimMessage::Nack { .. } => "Nack",
        SwimMessage::Join { .. } => "Join",
        SwimMessage::Sync { .. } => "Sync",
        SwimMessage::Gossip { .. } => "Gossip",
    }
}

/// A member description for simulations: `n{index}` in `region`, loopback addresses.
pub fn member_info(index: usize, region: &str) -> MemberInfo {
    let port = 10_000 + (index % 50_000) as u16;
    MemberInfo {
        node: NodeId(format!("n{index:04}")),
        region: Region(region.to_string()),
        quic: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        http: SocketAddr::from((Ipv4Addr::LOCALHOST, port.wrapping_add(1))),
        weight: 1,
    }
}

impl Sim {
    pub fn new(config: SimConfig) -> Sim {
        Sim {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            now_ms: 0,
            nodes: Vec::new(),
            index: BTreeMap::new(),
            links: BTreeMap::new(),
            queue: BinaryHeap::new(),
            next_seq: 0,
            stats: NetStats::default(),
        }
    }

    /// A cluster where every member already knows every other (as if each had merged a
    /// Sync of the full list at time 0), so measurements see dissemination, not
    /// joining. Node i gets seed `sim seed × 1_000_003 + i`.
    pub fn converged(
        members: &[MemberInfo],
        status: Status,
        swim: &SwimConfig,
        config: SimConfig,
    ) -> Sim {
        let mut sim = Sim::new(config);
        let swims: Vec<Swim> = members
            .iter()
            .enumerate()
            .map(|(i, info)| {
                let seed = config.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
                Swim::new(info.clone(), status, swim.clone(), seed, 0)
            })
            .collect();
        let table: BTreeMap<NodeId, MemberState> = swims
            .iter()
            .map(|swim| (swim.me().info.node.clone(), swim.me().clone()))
            .collect();
        for mut swim in swims {
            swim.install_table(&table);
            sim.add_node(swim);
        }
        sim
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// Adds a running node; its first tick comes within one tick period.
    pub fn add_node(&mut self, swim: Swim) -> usize {
        let id = swim.me().info.node.clone();
        let slot = self.nodes.len();
        self.index.insert(id, slot);
        self.nodes.push(SimNode {
            swim,
            state: NodeState::Running,
            paused_queue: VecDeque::new(),
            generation: 0,
            sent: 0,
        });
        self.schedule_first_tick(slot);
        slot
    }

    /// Replaces a node's state machine (a restart), running from now on.
    pub fn restart(&mut self, swim: Swim) {
        let id = swim.me().info.node.clone();
        let Some(&slot) = self.index.get(&id) else {
            self.add_node(swim);
            return;
        };
        let node = &mut self.nodes[slot];
        node.swim = swim;
        node.state = NodeState::Running;
        node.paused_queue.clear();
        node.generation += 1;
        self.schedule_first_tick(slot);
    }

    fn schedule_first_tick(&mut self, slot: usize) {
        let tick = self.config.tick_ms.max(1);
        let at_ms = self.now_ms + self.rng.gen_range(1..=tick);
        let generation = self.nodes[slot].generation;
        self.schedule(
            at_ms,
            EventKind::Tick {
                node: slot,
                generation,
            },
        );
    }

    fn schedule(&mut self, at_ms: u64, kind: EventKind) {
        self.next_seq += 1;
        self.queue.push(Reverse(Event {
            at_ms,
            seq: self.next_seq,
            kind,
        }));
    }

    pub fn node(&self, id: &NodeId) -> Option<&Swim> {
        self.index.get(id).map(|slot| &self.nodes[*slot].swim)
    }

    pub fn node_state(&self, id: &NodeId) -> Option<NodeState> {
        self.index.get(id).map(|slot| self.nodes[*slot].state)
    }

    /// Every node's state machine, in insertion order.
    pub fn swims(&self) -> impl Iterator<Item = &Swim> {
        self.nodes.iter().map(|node| &node.swim)
    }

    /// Ids of nodes that have not crashed (running or paused).
    pub fn live_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|node| node.state != NodeState::Crashed)
            .map(|node| node.swim.me().info.node.clone())
            .collect()
    }

    /// Messages sent by one node so far.
    pub fn sent_by(&self, id: &NodeId) -> u64 {
        self.index.get(id).map_or(0, |slot| self.nodes[*slot].sent)
    }

    pub fn set_default_link(&mut self, link: LinkFaults) {
        self.config.link = link;
    }

    /// Overrides one direction of one link.
    pub fn set_link(&mut self, from: &NodeId, to: &NodeId, link: LinkFaults) {
        self.links.insert((from.clone(), to.clone()), link);
    }

    pub fn clear_link(&mut self, from: &NodeId, to: &NodeId) {
        self.links.remove(&(from.clone(), to.clone()));
    }

    pub fn crash(&mut self, id: &NodeId) {
        if let Some(&slot) = self.index.get(id) {
            self.nodes[slot].state = NodeState::Crashed;
            self.nodes[slot].paused_queue.clear();
        }
    }

    pub fn pause(&mut self, id: &NodeId) {
        if let Some(&slot) = self.index.get(id) {
            if self.nodes[slot].state == NodeState::Running {
                self.nodes[slot].state = NodeState::Paused;
            }
        }
    }

    /// Resumes a paused node and hands it everything queued while it was stopped.
    pub fn resume(&mut self, id: &NodeId) {
        let Some(&slot) = self.index.get(id) else {
            return;
        };
        if self.nodes[slot].state != NodeState::Paused {
            return;
        }
        self.nodes[slot].state = NodeState::Running;
        while let Some((from, message)) = self.nodes[slot].paused_queue.pop_front() {
            let now = self.now_ms;
            let outputs = self.nodes[slot].swim.receive(&from, message, now);
            self.route(slot, outputs);
        }
    }

    /// Calls into one running node (e.g. `set_status`) and sends what it returns;
    /// false when the node is unknown or not running.
    pub fn act(&mut self, id: &NodeId, call: impl FnOnce(&mut Swim, u64) -> Vec<Output>) -> bool {
        let Some(&slot) = self.index.get(id) else {
            return false;
        };
        if self.nodes[slot].state != NodeState::Running {
            return false;
        }
        let outputs = call(&mut self.nodes[slot].swim, self.now_ms);
        self.route(slot, outputs);
        true
    }

    fn route(&mut self, slot: usize, outputs: Vec<Output>) {
        let from = self.nodes[slot].swim.me().info.node.clone();
        for Output::Send { to, message } in outputs {
            self.stats.sent += 1;
            self.nodes[slot].sent += 1;
            *self.stats.sent_by_kind.entry(kind(&message)).or_insert(0) += 1;
            let Some(&target) = self.index.get(&to) else {
                self.stats.lost += 1;
                continue;
            };
            let link = *self
                .links
                .get(&(from.clone(), to))
                .unwrap_or(&self.config.link);
            if link.drop_probability > 0.0 && self.rng.gen_bool(link.drop_probability.min(1.0)) {
                self.stats.dropped += 1;
                continue;
            }
            if self.queue.len() >= SIM_IN_FLIGHT_MESSAGES_MAX {
                self.stats.lost += 1;
                continue;
            }
            let delay = self
                .rng
                .gen_range(link.delay_min_ms..=link.delay_max_ms.max(link.delay_min_ms));
            let kind = EventKind::Deliver {
                from: from.clone(),
                to: target,
                message,
            };
            self.schedule(self.now_ms + delay, kind);
        }
    }

    /// Processes every event up to and including `until_ms`.
    pub fn run_until(&mut self, until_ms: u64) {
        while let Some(Reverse(event)) = self.queue.peek() {
            if event.at_ms > until_ms {
                break;
            }
            let Some(Reverse(event)) = self.queue.pop() else {
                break;
            };
            self.now_ms = event.at_ms;
            self.handle(event.kind);
        }
        self.now_ms = self.now_ms.max(until_ms);
    }

    pub fn run_for(&mut self, duration_ms: u64) {
        self.run_until(self.now_ms + duration_ms);
    }

    fn handle(&mut self, kind: EventKind) {
        match kind {
            EventKind::Tick { node, generation } => {
                let sim_node = &mut self.nodes[node];
                if sim_node.generation != generation || sim_node.state == NodeState::Crashed {
                    return;
                }
                if sim_node.state == NodeState::Running {
                    let outputs = sim_node.swim.tick(self.now_ms);
                    self.route(node, outputs);
                }
                let at_ms = self.now_ms + self.config.tick_ms.max(1);
                self.schedule(at_ms, EventKind::Tick { node, generation });
            }
            EventKind::Deliver { from, to, message } => {
                let sim_node = &mut self.nodes[to];
                match sim_node.state {
                    NodeState::Crashed => self.stats.lost += 1,
                    NodeState::Paused => {
                        if sim_node.paused_queue.len() < SIM_PAUSED_MESSAGES_MAX {
                            sim_node.paused_queue.push_back((from, message));
                        } else {
                            self.stats.lost += 1;
                        }
                    }
                    NodeState::Running => {
                        self.stats.delivered += 1;
                        let outputs = sim_node.swim.receive(&from, message, self.now_ms);
                        self.route(to, outputs);
                    }
                }
            }
        }
    }

    /// Runs until `condition` holds (checked every tick period) or `deadline_ms`;
    /// returns the virtual time at which it held.
    pub fn run_until_true(
        &mut self,
        deadline_ms: u64,
        mut condition: impl FnMut(&Sim) -> bool,
    ) -> Option<u64> {
        let step = self.config.tick_ms.max(1);
        loop {
            if condition(self) {
                return Some(self.now_ms);
            }
            if self.now_ms >= deadline_ms {
                return None;
            }
            self.run_until((self.now_ms + step).min(deadline_ms));
        }
    }

    /// True when every running node other than `except` satisfies `check`.
    pub fn all_running(&self, except: Option<&NodeId>, check: impl Fn(&Swim) -> bool) -> bool {
        self.nodes
            .iter()
            .filter(|node| node.state == NodeState::Running)
            .filter(|node| Some(&node.swim.me().info.node) != except)
            .all(|node| check(&node.swim))
    }

    /// Milliseconds from now until every running node (but `node`) marks `node` dead.
    pub fn time_until_dead_everywhere(&mut self, node: &NodeId, deadline_ms: u64) -> Option<u64> {
        let start = self.now_ms;
        let target = node.clone();
        self.run_until_true(deadline_ms, |sim| {
            sim.all_running(Some(&target), |swim| swim.is_dead(&target))
        })
        .map(|at| at - start)
    }

    /// Milliseconds from now until every running node satisfies `check`.
    pub fn time_until_all(
        &mut self,
        deadline_ms: u64,
        check: impl Fn(&Swim) -> bool,
    ) -> Option<u64> {
        let start = self.now_ms;
        self.run_until_true(deadline_ms, |sim| sim.all_running(None, &check))
            .map(|at| at - start)
    }

    /// (observer, subject) pairs where a running observer marks a non-crashed subject dead.
    pub fn false_deaths(&self) -> Vec<(NodeId, NodeId)> {
        let live = self.live_ids();
        let mut pairs = Vec::new();
        for node in self
            .nodes
            .iter()
            .filter(|node| node.state == NodeState::Running)
        {
            for subject in &live {
                if node.swim.is_dead(subject) {
                    pairs.push((node.swim.me().info.node.clone(), subject.clone()));
                }
            }
        }
        pairs
    }

    /// Sum of one counter over all nodes.
    pub fn total(&self, counter: impl Fn(&super::SwimStats) -> u64) -> u64 {
        self.nodes
            .iter()
            .map(|node| counter(&node.swim.stats()))
            .sum()
    }
}

/// Messages per member per probe round over a window.
pub fn messages_per_member_per_round(
    messages: u64,
    members: usize,
    window_ms: u64,
    probe_interval_ms: u64,
) -> f64 {
    let rounds = window_ms as f64 / probe_interval_ms.max(1) as f64;
    messages as f64 / (members.max(1) as f64 * rounds.max(f64::MIN_POSITIVE))
}

/// Median and maximum of a sample (None when empty).
pub fn median_and_max(samples: &[u64]) -> Option<(u64, u64)> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let max = *sorted.last()?;
    let middle = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2
    } else {
        sorted[middle]
    };
    Some((median, max))
}
