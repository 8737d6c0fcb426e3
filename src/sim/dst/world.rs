//! The simulated world: topology, faults and the ring change drawn from the seed, the
//! event loop over the virtual network, the fault schedule (crashes with restart,
//! partitions with heal), the final heal, drain, transfer and anti-entropy, and the
//! end-of-run checks. Message handling lives in `deliver`, the ring change in
//! `membership`, documents in `docs`.

use super::change::{draw_ring_change, owners_of, view_of, RingChange};
use super::check::{describe, Checker, Survival};
use super::client::Client;
use super::disk::Disk;
use super::docs::Documents;
use super::driver::{Coordinator, Effect, Plan};
use super::network::{Address, Event, Faults, Network, Trace};
use super::sync::sync_pair;
use super::{
    DstConfig, DstReport, DstViolation, ViolationKind, DST_ANTI_ENTROPY_INTERVAL_MS,
    DST_CLIENTS_MAX, DST_EVENTS_MAX, DST_FINAL_SYNC_ROUNDS_MAX, DST_KEYS_MAX, DST_NODES_MAX,
    DST_PARTITIONS,
};
use crate::clock::Actor;
use crate::coordinator::round::fallbacks;
use crate::ids::{NodeId, PartitionId, Region};
use crate::membership::ownership::{Owner, RingView};
use crate::object::{Class, Object, ObjectKey};
use crate::ring::RingConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

/// One simulated node: durable replica data and volatile coordinator state.
pub(super) struct Node {
    pub id: NodeId,
    pub region: Region,
    pub store: Disk,
    pub coordinator: Coordinator,
    pub up: bool,
    /// The incarnation its actor derives from: a new one after a crash that followed
    /// early sends, as `node::incarnation` decides.
    pub incarnation: u64,
    /// Crashes so far: tells a late `Armed` of an earlier life from this life's.
    pub lives: u64,
    /// This life's record that it sends early is durable: its versions minted for its
    /// own coordinator travel before its flush ends (`node::incarnation::EarlySend`).
    pub sends_early: bool,
    /// That record is being written.
    pub arming: bool,
    /// How far this node's wall clock is ahead of virtual time, in ms.
    pub skew_ms: u64,
    /// Hints this node holds for dead replicas, by (owner, storage key); durable (a
    /// hint is acknowledged once stored), at most `DST_HINTS_PER_NODE_MAX`.
    pub hints: BTreeMap<(usize, Vec<u8>), (ObjectKey, Object)>,
}

impl Node {
    /// Node `index` of the drawn `member` (id, region), its wall clock `skew_ms` ahead.
    fn new(index: usize, member: &(String, String), config: &DstConfig, skew_ms: u64) -> Node {
        let id = NodeId(member.0.clone());
        let region = Region(member.1.clone());
        let timeout_ms = config.request_timeout_ms;
        Node {
            store: Disk::new(Actor::of_incarnation(&id, 0)),
            coordinator: Coordinator::new(index, region.clone(), timeout_ms, config.planted_bug),
            id,
            region,
            up: true,
            incarnation: 0,
            lives: 0,
            sends_early: false,
            arming: false,
            skew_ms,
            hints: BTreeMap::new(),
        }
    }
}

pub(super) struct World {
    pub config: DstConfig,
    pub seed: u64,
    pub rng: StdRng,
    pub now: u64,
    /// Events processed so far; the current event's number.
    pub event: u64,
    pub net: Network,
    pub trace: Trace,
    pub nodes: Vec<Node>,
    pub clients: Vec<Client>,
    pub keys: Vec<ObjectKey>,
    pub checker: Checker,
    pub documents: Documents,
    /// The member list, its rings, their config and the epoch (`membership`).
    pub owners: Vec<Owner>,
    pub view: RingView,
    pub ring_config: RingConfig,
    pub epoch: u64,
    /// The join or leave this run makes, until it commits.
    pub ring_change: Option<RingChange>,
    /// Once it committed: the event it committed at and the partitions it moved.
    pub moved: Option<(u64, BTreeSet<PartitionId>)>,
    pub report: DstReport,
    pub workload_over: bool,
    pub next_op: u64,
}

/// Nodes, regions and replica counts drawn from the seed; N is always 3.
fn topology(rng: &mut StdRng) -> (Vec<(String, String)>, BTreeMap<String, u32>, String) {
    let (shape, description): (Vec<(&str, usize, u32)>, &str) = match rng.gen_range(0..3) {
        0 => (
            vec![("ra", rng.gen_range(5..=7), 3)],
            "1 region x 3 replicas",
        ),
        1 => {
            let sizes = [0; 3].map(|_| rng.gen_range(2..=3));
            let shape = vec![
                ("ra", sizes[0], 1),
                ("rb", sizes[1], 1),
                ("rc", sizes[2], 1),
            ];
            (shape, "3 regions x 1 replica")
        }
        _ => {
            let shape = vec![
                ("ra", rng.gen_range(3..=4), 2),
                ("rb", rng.gen_range(2..=3), 1),
            ];
            (shape, "2 regions, 2 + 1 replicas")
        }
    };
    let mut nodes = Vec::new();
    let mut replicas = BTreeMap::new();
    for (region, count, copies) in shape {
        replicas.insert(region.to_string(), copies);
        for index in 0..count {
            nodes.push((format!("{region}-n{index}"), region.to_string()));
        }
    }
    let description = format!("{description}, {} nodes", nodes.len());
    (nodes, replicas, description)
}

/// One-way latencies: 1–3 ms within a region, 15–60 ms between two regions.
fn latencies(rng: &mut StdRng, regions: &[Region]) -> Vec<Vec<u64>> {
    let mut between: BTreeMap<(Region, Region), u64> = BTreeMap::new();
    let n = regions.len();
    let mut latency = vec![vec![0; n]; n];
    for a in 0..n {
        for b in a + 1..n {
            let value = if regions[a] == regions[b] {
                rng.gen_range(1..=3)
            } else {
                let pair = (regions[a].clone(), regions[b].clone());
                *between
                    .entry(pair)
                    .or_insert_with(|| rng.gen_range(15..=60))
            };
            latency[a][b] = value;
            latency[b][a] = value;
        }
    }
    latency
}

/// The ring config of the drawn regions.
fn ring_config(replicas: BTreeMap<String, u32>) -> RingConfig {
    RingConfig {
        partitions: DST_PARTITIONS,
        replicas_per_region: replicas
            .into_iter()
            .map(|(region, copies)| (Region(region), copies))
            .collect(),
    }
}

/// Fault intensities: up to 5 % loss and duplication, up to 30 % of messages delayed
/// by up to 20–150 ms more (which reorders them).
fn draw_faults(rng: &mut StdRng) -> Faults {
    Faults {
        loss: rng.gen_range(0.0..0.05),
        duplicate: rng.gen_range(0.0..0.05),
        reorder: rng.gen_range(0.0..0.3),
        reorder_ms_max: rng.gen_range(20..=150),
    }
}

impl World {
    pub fn new(config: &DstConfig, seed: u64) -> Self {
        let mut config = config.clone();
        config.clients = config.clients.clamp(1, DST_CLIENTS_MAX - 1);
        config.document_clients = config
            .document_clients
            .min(DST_CLIENTS_MAX - config.clients);
        config.keys = config.keys.clamp(1, DST_KEYS_MAX);
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut members, replicas, topology) = topology(&mut rng);
        let owners = owners_of(&members);
        let ring_change = draw_ring_change(&mut rng, &mut members, config.workload_ms);
        assert!(
            members.len() <= DST_NODES_MAX,
            "topology fits DST_NODES_MAX"
        );
        let ring_config = ring_config(replicas);
        let view = view_of(&owners, &ring_config, 1);
        let nodes: Vec<Node> = members
            .iter()
            .enumerate()
            .map(|(index, member)| Node::new(index, member, &config, rng.gen_range(0..=20)))
            .collect();
        let regions: Vec<Region> = nodes.iter().map(|node| node.region.clone()).collect();
        let latency = latencies(&mut rng, &regions);
        let faults = if config.faults {
            draw_faults(&mut rng)
        } else {
            Faults::NONE
        };
        let mut keys: Vec<ObjectKey> = (0..config.keys)
            .map(|index| ObjectKey::kv(format!("k{index}").as_bytes()))
            .collect();
        if config.document_clients > 0 {
            keys.push(ObjectKey::new(Class::User, b"u0"));
            keys.push(ObjectKey::new(Class::Auth, b"a0"));
        }
        let clients = (0..config.clients + config.document_clients)
            .map(|_| Client::new())
            .collect();
        World {
            report: DstReport {
                seed,
                topology,
                ..DstReport::default()
            },
            config,
            seed,
            rng,
            now: 0,
            event: 0,
            net: Network::new(latency, faults),
            trace: Trace::new(),
            nodes,
            clients,
            keys,
            checker: Checker::default(),
            documents: Documents::default(),
            owners,
            view,
            ring_config,
            epoch: 1,
            ring_change,
            moved: None,
            workload_over: false,
            next_op: 0,
        }
    }

    pub fn violation(&self, kind: ViolationKind, detail: String) -> DstViolation {
        DstViolation {
            seed: self.seed,
            event: self.event,
            kind,
            detail,
            trace_tail: self.trace.tail(),
        }
    }

    /// Runs the workload with faults, the final heal and drain, anti-entropy until
    /// every replica agrees, and the final checks.
    pub fn run(&mut self) -> Result<DstReport, DstViolation> {
        self.trace.record(format!(
            "seed {} topology {} faults {:?}",
            self.seed, self.report.topology, self.net.faults
        ));
        for client in 0..self.clients.len() {
            let at = self.rng.gen_range(0..20);
            self.net.schedule(at, Event::ClientWake { client });
        }
        if self.config.faults {
            let at = self.rng.gen_range(50..=300);
            self.net.schedule(at, Event::Fault);
        }
        self.net
            .schedule(DST_ANTI_ENTROPY_INTERVAL_MS, Event::AntiEntropy);
        self.net
            .schedule(self.config.workload_ms, Event::EndWorkload);
        while let Some((at, event)) = self.net.pop() {
            self.event += 1;
            if self.event > DST_EVENTS_MAX {
                let detail = format!("more than {DST_EVENTS_MAX} events");
                return Err(self.violation(ViolationKind::Stuck, detail));
            }
            self.now = at;
            self.step(event)?;
            self.drain_dropped();
        }
        self.final_sync()?;
        self.check_ring_change_done()?;
        self.check_converged()?;
        self.check_final_acks()?;
        self.check_final_documents()?;
        self.report.events = self.event;
        self.report.end_ms = self.now;
        self.report.trace_hash = self.trace.hash_hex();
        self.report.messages_lost = self.net.lost;
        self.report.messages_duplicated = self.net.duplicated;
        self.report.reads_checked = self.checker.reads_checked;
        self.report.doc_ops_acked = self.documents.acked_count();
        self.report.doc_ops_checked = self.documents.checked;
        self.report.compacted = self.checker.compacted;
        self.report.read_repairs = self
            .nodes
            .iter()
            .map(|node| node.coordinator.read_repairs)
            .sum();
        self.report.reads_in_full = self
            .nodes
            .iter()
            .map(|node| node.coordinator.reads_in_full)
            .sum();
        Ok(self.report.clone())
    }

    fn step(&mut self, event: Event) -> Result<(), DstViolation> {
        match event {
            Event::Deliver { from, to, payload } => self.deliver(from, to, *payload),
            Event::ClientWake { client } => self.client_wake(client),
            Event::ClientTimeout { client, op } => self.client_timeout(client, op),
            Event::CoordinatorTimeout { node, req } => {
                if !self.nodes[node].up {
                    return Ok(());
                }
                let effects = self.nodes[node].coordinator.on_timeout(req, self.now);
                self.apply(node, effects)
            }
            Event::Restart { node } => {
                self.restart(node);
                Ok(())
            }
            Event::Fault => {
                self.fault();
                Ok(())
            }
            Event::Heal => {
                self.trace.record(format!("{} heal", self.now));
                self.net.sides = None;
                Ok(())
            }
            Event::AntiEntropy => self.anti_entropy(),
            Event::EndWorkload => {
                self.end_workload();
                Ok(())
            }
        }
    }

    /// Carries out what a coordinator decided.
    pub fn apply(&mut self, node: usize, effects: Vec<Effect>) -> Result<(), DstViolation> {
        for effect in effects {
            match effect {
                Effect::Send(to, payload) => {
                    self.net
                        .send(self.now, &mut self.rng, Address::Node(node), to, *payload)
                }
                Effect::Timer(at, req) => self
                    .net
                    .schedule(at, Event::CoordinatorTimeout { node, req }),
                Effect::Internal(detail) => {
                    return Err(self.violation(ViolationKind::Internal, detail))
                }
            }
        }
        Ok(())
    }

    /// The next fault: a crash (restarted later) or a partition (healed later).
    fn fault(&mut self) {
        if self.workload_over {
            return;
        }
        let down = self.nodes.iter().filter(|node| !node.up).count();
        if self.rng.gen_bool(0.5) {
            let node = self.rng.gen_range(0..self.nodes.len());
            if self.nodes[node].up && down < (self.nodes.len() - 1) / 2 {
                self.crash(node);
                let at = self.now + self.rng.gen_range(50..=400);
                self.net.schedule(at, Event::Restart { node });
            }
        } else if self.net.sides.is_none() {
            let sides: Vec<bool> = (0..self.nodes.len())
                .map(|_| self.rng.gen_bool(0.5))
                .collect();
            self.trace
                .record(format!("{} partition {:?}", self.now, sides));
            self.report.partitions += 1;
            self.net.sides = Some(sides);
            let at = self.now + self.rng.gen_range(100..=600);
            self.net.schedule(at, Event::Heal);
        }
        let at = self.now + self.rng.gen_range(100..=400);
        self.net.schedule(at, Event::Fault);
    }

    fn crash(&mut self, node: usize) {
        self.trace
            .record(format!("{} crash {}", self.now, self.nodes[node].id));
        self.report.crashes += 1;
        let crashed = &mut self.nodes[node];
        crashed.up = false;
        crashed.coordinator.crash();
        crashed.store.lose_unflushed();
        crashed.lives += 1;
        // A crash after early sends: the next start takes a new incarnation, as
        // `node::incarnation` does (a down node mints nothing, so it is chosen now).
        if crashed.sends_early && !self.config.planted_old_actor {
            crashed.incarnation += 1;
            crashed.store.actor = Actor::of_incarnation(&crashed.id, crashed.incarnation);
        }
        crashed.sends_early = false;
        crashed.arming = false;
    }

    fn restart(&mut self, node: usize) {
        if !self.nodes[node].up {
            self.trace
                .record(format!("{} restart {}", self.now, self.nodes[node].id));
            self.nodes[node].up = true;
        }
    }

    /// The workload ends: faults stop, the partition heals, every node restarts; the
    /// queue then drains (late messages, timeouts, read repairs).
    fn end_workload(&mut self) {
        self.trace.record(format!("{} end of workload", self.now));
        self.workload_over = true;
        self.net.faults = Faults::NONE;
        self.net.sides = None;
        for node in 0..self.nodes.len() {
            self.restart(node);
        }
    }

    /// Hands the checker what the sibling cap dropped anywhere.
    pub(super) fn drain_dropped(&mut self) {
        for node in &mut self.nodes {
            if !node.store.dropped.is_empty() {
                self.checker
                    .compacted(std::mem::take(&mut node.store.dropped));
            }
            if !node.coordinator.dropped.is_empty() {
                self.checker
                    .compacted(std::mem::take(&mut node.coordinator.dropped));
            }
        }
    }

    /// The partitions both nodes replicate.
    fn shared_partitions(&self, a: usize, b: usize) -> Vec<PartitionId> {
        let ring = &self.view.current;
        (0..ring.partition_count())
            .map(PartitionId)
            .filter(|partition| {
                let replicas = ring.replicas(*partition);
                let holds = |node: usize| replicas.iter().any(|(id, _)| *id == self.nodes[node].id);
                holds(a) && holds(b)
            })
            .collect()
    }

    /// Runs one anti-entropy session between nodes `a` and `b`.
    fn sync(&mut self, a: usize, b: usize) -> Result<u64, DstViolation> {
        let shared = self.shared_partitions(a, b);
        if shared.is_empty() {
            return Ok(0);
        }
        let (low, high) = (a.min(b), a.max(b));
        let (left, right) = self.nodes.split_at_mut(high);
        let repaired = sync_pair(&mut left[low].store, &mut right[0].store, &shared)
            .map_err(|detail| self.violation(ViolationKind::Internal, detail))?;
        self.report.keys_synced += repaired;
        self.drain_dropped();
        Ok(repaired)
    }

    /// A background anti-entropy session between two random nodes that can talk.
    fn anti_entropy(&mut self) -> Result<(), DstViolation> {
        if self.workload_over {
            return Ok(());
        }
        self.replay_hints()?;
        self.transfer_round()?;
        let a = self.rng.gen_range(0..self.nodes.len());
        let b = self.rng.gen_range(0..self.nodes.len());
        if a != b && self.nodes[a].up && self.nodes[b].up && self.net.connected(a, b) {
            let repaired = self.sync(a, b)?;
            let (ida, idb) = (&self.nodes[a].id, &self.nodes[b].id);
            self.trace
                .record(format!("{} sync {ida}<>{idb} {repaired}", self.now));
        }
        let at = self.now + DST_ANTI_ENTROPY_INTERVAL_MS;
        self.net.schedule(at, Event::AntiEntropy);
        Ok(())
    }

    /// After the heal and drain: anti-entropy rounds over every pair of nodes until a
    /// round repairs nothing.
    fn final_sync(&mut self) -> Result<(), DstViolation> {
        self.replay_hints()?;
        self.transfer_round()?;
        for round in 0..DST_FINAL_SYNC_ROUNDS_MAX {
            let mut repaired = 0;
            for a in 0..self.nodes.len() {
                for b in a + 1..self.nodes.len() {
                    repaired += self.sync(a, b)?;
                }
            }
            self.trace
                .record(format!("final sync round {round}: {repaired} keys"));
            if repaired == 0 {
                return Ok(());
            }
        }
        Ok(())
    }

    pub(super) fn node_index(&self, id: &NodeId) -> usize {
        self.nodes
            .iter()
            .position(|node| node.id == *id)
            .expect("ring members are simulated nodes")
    }

    /// Every replica of every key holds the same object.
    fn check_converged(&self) -> Result<(), DstViolation> {
        let ring = &self.view.current;
        for partition in (0..ring.partition_count()).map(PartitionId) {
            let replicas: Vec<usize> = ring
                .replicas(partition)
                .iter()
                .map(|(id, _)| self.node_index(id))
                .collect();
            let mut keys: Vec<&Vec<u8>> = replicas
                .iter()
                .filter_map(|node| self.nodes[*node].store.partitions.get(&partition))
                .flat_map(|store| store.keys())
                .collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let first = self.nodes[replicas[0]].store.get_bytes(partition, key);
                for node in &replicas[1..] {
                    let other = self.nodes[*node].store.get_bytes(partition, key);
                    if other != first {
                        let detail = format!(
                            "after the final heal and {DST_FINAL_SYNC_ROUNDS_MAX} anti-entropy rounds, key {} differs: {} holds {}, {} holds {}",
                            String::from_utf8_lossy(&key[1..]),
                            self.nodes[replicas[0]].id,
                            describe(first),
                            self.nodes[*node].id,
                            describe(other)
                        );
                        return Err(self.violation(ViolationKind::Diverged, detail));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every acknowledged write survives in the converged replicas.
    fn check_final_acks(&self) -> Result<(), DstViolation> {
        for (key, dot) in self.checker.all_acks() {
            let Some(object_key) = ObjectKey::from_storage_bytes(&key) else {
                continue;
            };
            let partition = object_key.partition(self.view.current.partition_count());
            for (id, _) in self.view.current.replicas(partition) {
                let node = self.node_index(&id);
                let object = self.nodes[node].store.get_bytes(partition, &key);
                if self.checker.survival(&key, dot, object) == Survival::Lost {
                    let detail = format!(
                        "acknowledged write {dot} of key {} is missing from {} after the final heal: {}",
                        String::from_utf8_lossy(&key[1..]),
                        id,
                        describe(object)
                    );
                    return Err(self.violation(ViolationKind::LostWrite, detail));
                }
            }
        }
        Ok(())
    }

    /// Every acknowledged document operation shows in every converged replica.
    fn check_final_documents(&mut self) -> Result<(), DstViolation> {
        for key in self.documents.keys() {
            let Some(object_key) = ObjectKey::from_storage_bytes(&key) else {
                continue;
            };
            let partition = object_key.partition(self.view.current.partition_count());
            for (id, _) in self.view.current.replicas(partition) {
                let node = self.node_index(&id);
                let object = self.nodes[node].store.get_bytes(partition, &key);
                if let Err(why) = self.documents.check_final(&key, object) {
                    let detail = format!("at {id} after the final heal: {why}");
                    return Err(self.violation(ViolationKind::LostWrite, detail));
                }
            }
        }
        Ok(())
    }

    /// Where `key` lives, seen from `node`: the current owners (its region's first),
    /// then the owners a pending ring change adds, as `RingView::replicas_for` says.
    pub fn plan(&self, node: usize, key: &ObjectKey) -> Plan {
        let partition = key.partition(self.view.current.partition_count());
        let region = &self.nodes[node].region;
        let (voting, extra) = self.view.replicas_for(partition, region);
        let ids: Vec<NodeId> = voting
            .iter()
            .chain(&extra)
            .map(|replica| replica.node.clone())
            .collect();
        let replicas: Vec<usize> = ids.iter().map(|id| self.node_index(id)).collect();
        // The failure detector of the simulation knows at once who is down.
        let dead: Vec<bool> = replicas.iter().map(|node| !self.nodes[*node].up).collect();
        let fallbacks = match self.config.sloppy {
            true => {
                let list = self.view.current.preference_list(partition, region);
                let dead_voters: Vec<usize> = (0..voting.len()).filter(|i| dead[*i]).collect();
                let is_dead = |id: &NodeId| !self.nodes[self.node_index(id)].up;
                fallbacks(&list, &ids, &dead_voters, is_dead)
                    .into_iter()
                    .map(|(index, id, region)| (index, self.node_index(&id), region))
                    .collect()
            }
            false => Vec::new(),
        };
        Plan {
            replicas,
            regions: voting.into_iter().map(|replica| replica.region).collect(),
            dead,
            fallbacks,
        }
    }
}
