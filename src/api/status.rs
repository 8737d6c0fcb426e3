//! `GET /v1/status`: what an operator needs to see of one node and its view of the
//! cluster.

use super::server::EdgeStats;
use crate::coordinator::quorum::Level;
use crate::coordinator::{ClusterView, CoordinatorStats};
use crate::handoff::hints::Hints;
use crate::handoff::transfer::TransferStats;
use crate::ids::PartitionId;
use crate::membership::ownership::RingView;
use crate::membership::swim::MemberInfo;
use crate::replica::trees::{Counts, Trees};
use crate::replica::Replica;
use crate::runtime::clock::NodeClock;
use crate::runtime::gossip::Gossip;
use crate::runtime::incarnation::EarlySend;
use crate::runtime::repair::RepairStats;
use crate::runtime::state::{liveness_name, status_name, ClusterState};
use crate::session::SessionStats;
use crate::storage::{Durability, Storage};
use crate::transport::Transport;
use crate::wire::{PeerRequest, PeerResponse};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the status routes (`/v1/status`, `/v1/roots`, `/v1/ring`) read: this node's
/// view of the cluster and every counter its parts keep. They only read.
pub struct StatusState {
    pub me: MemberInfo,
    /// The RESP listener's address, when the node serves one.
    pub resp: Option<std::net::SocketAddr>,
    /// The RESP edge's counters as JSON (the node supplies them: this layer does not
    /// know that edge).
    pub resp_counters: Option<Arc<dyn Fn() -> serde_json::Value + Send + Sync>>,
    /// The default levels and the durability, as configured.
    pub read: Level,
    pub write: Level,
    pub durability: Durability,
    pub cluster: Arc<ClusterState>,
    pub gossip: Arc<Gossip>,
    pub storage: Arc<dyn Storage>,
    pub transport: Transport<PeerRequest, PeerResponse>,
    pub replica: Arc<Replica>,
    pub coordinator: Arc<CoordinatorStats>,
    /// How long this node took to answer each kind of peer request.
    pub served: Arc<crate::peer::served::ServedLatencies>,
    pub transfers: Arc<TransferStats>,
    pub hints: Arc<Hints>,
    pub repair: Arc<RepairStats>,
    /// Repair and anti-entropy messages the peer service refused.
    pub refused: Arc<AtomicU64>,
    /// Whether versions minted here travel before this node's flush ends.
    pub early: Arc<EarlySend>,
    /// `None` on a node without session secret (its counters show zero).
    pub sessions: Option<Arc<SessionStats>>,
    /// The node's data clock (its offset is shown).
    pub clock: Arc<NodeClock>,
    /// The levels this node's classes use, which `/v1/cluster` checks against the
    /// members held dead.
    pub checks: Vec<crate::coordinator::reach::LevelCheck>,
    /// The client requests' admission (its refusals are counted).
    pub admission: Arc<super::Admission>,
    /// The region's change feeds as this node reads them (`runtime::hub`).
    pub hub: crate::runtime::hub::Hub,
}

/// The status routes' state: the node's, and the edge's counters.
#[derive(Clone)]
pub(super) struct StatusRoutes {
    pub(super) state: Arc<StatusState>,
    pub(super) edge: Arc<EdgeStats>,
}

/// One node's status.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub node: String,
    pub region: String,
    pub version: String,
    pub http: String,
    pub quic: String,
    /// The RESP (Redis protocol) listener's address; absent when the node serves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<String>,
    pub pid: u32,
    /// Every member this node knows, as it sees them.
    pub members: Vec<MemberStatus>,
    pub ring_epoch: u64,
    /// A ring change is pending (a node joins or leaves).
    pub ring_change_pending: bool,
    pub partitions: u32,
    /// Partitions this node owns in the current ring.
    pub partitions_owned: usize,
    /// Partitions whose data this node holds.
    pub partitions_held: usize,
    /// Partitions this node owns (now or in a pending ring change) but does not hold
    /// yet: 0 once its transfers are done. A node may hold more than it owns for
    /// `DROP_GRACE_MS` after a ring change took partitions from it.
    #[serde(default)]
    pub partitions_missing: usize,
    pub transfers_in_flight: u64,
    pub partitions_fetched: u64,
    pub objects_fetched: u64,
    /// Key and object bytes of the objects fetched (joins and fills).
    #[serde(default)]
    pub bytes_fetched: u64,
    /// Partitions of a lost store (a wiped node) fetched whole from one replica.
    #[serde(default)]
    pub partitions_filled: u64,
    /// Partitions of a lost store still waiting for that fetch (anti-entropy leaves
    /// them alone until then).
    #[serde(default)]
    pub partitions_filling: usize,
    pub replicas_per_region: u32,
    pub replicas_total: u32,
    pub read: String,
    pub write: String,
    pub durability: String,
    /// The actor this node mints under (hex): the same across clean restarts, new
    /// after a crash that followed early sends or on a new store (`runtime::incarnation`).
    #[serde(default)]
    pub actor: String,
    /// Versions minted here for this node's own requests travel before its flush ends
    /// (armed by the first such write of an incarnation).
    #[serde(default)]
    pub early_sends: bool,
    pub keys: u64,
    /// Bytes of the keys and values this node stores (tombstones included), kept as
    /// writes happen: the data, without the store's own overhead (`disk_bytes`).
    #[serde(default)]
    pub stored_bytes: u64,
    /// Partitions whose Merkle tree is still being rebuilt from the store after a start
    /// (in the background while the node serves; anti-entropy leaves them alone until
    /// then): 0 once rebuilt. `keys` and `stored_bytes` count only rebuilt partitions
    /// and the writes since the start until then.
    #[serde(default)]
    pub trees_pending: u32,
    pub disk_bytes: u64,
    pub reads: u64,
    pub writes: u64,
    pub failures: u64,
    pub read_repairs: u64,
    /// Reads asked again for every object because a replica's digest differed.
    #[serde(default)]
    pub digest_mismatches: u64,
    /// Reads that asked more replicas because those asked were later than their p99.
    #[serde(default)]
    pub speculations: u64,
    /// Speculations the per-node budget refused.
    #[serde(default)]
    pub speculations_refused: u64,
    /// Requests a coordinator here sent again to replicas that had not answered.
    #[serde(default)]
    pub resends: u64,
    /// Probes sent to peers this node has heard nothing from for
    /// `PEER_SILENT_AFTER_MS` while asking them something (treated as dead by its
    /// coordinator until they answer), at most one per peer every `PEER_SILENT_PROBE_MS`.
    #[serde(default)]
    pub silent_probes: u64,
    pub frames_rejected: u64,
    pub connections_refused: u64,
    /// Peer (QUIC) handshakes dropped for not completing within HANDSHAKE_TIMEOUT_MS.
    #[serde(default)]
    pub handshakes_timed_out: u64,
    /// Peer connection attempts sent a QUIC Retry (many handshakes in progress).
    #[serde(default)]
    pub handshakes_retried: u64,
    /// Peer connection attempts refused at HANDSHAKES_IN_PROGRESS_MAX.
    #[serde(default)]
    pub handshakes_refused: u64,
    pub faults_injected: u64,
    pub swim: SwimCounters,
    pub hints: HintCounters,
    pub anti_entropy: RepairCounters,
    #[serde(default)]
    pub sessions: SessionCounters,
    /// What the HTTP edge refused and cut off.
    #[serde(default)]
    pub edge: super::server::EdgeCounters,
    /// What the RESP edge counted (connections refused, idle closed, request and write
    /// timeouts, protocol errors, commands, TLS failures); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp_edge: Option<serde_json::Value>,
}

/// Session service counters (all zero when the service is off).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SessionCounters {
    pub logins: u64,
    pub validations: u64,
    pub rejections: u64,
    /// Local replica reads made by validations (the token, its parent, the user's auth
    /// record); a missing, malformed or made-up token costs none.
    pub validation_reads: u64,
    /// Cross-region reads made by validations: only for a genuine token missing locally
    /// and not in the negative cache.
    #[serde(default)]
    pub remote_validation_reads: u64,
    /// Well-formed tokens this cluster never issued, refused by arithmetic.
    #[serde(default)]
    pub forged: u64,
    #[serde(default)]
    pub negative_cache_hits: u64,
    /// Validations that read the token and its checks in one round (the token's
    /// identity known here from an earlier validation).
    #[serde(default)]
    pub one_round_validations: u64,
    /// Genuine tokens missing locally answered `token_unknown` without the cross-region
    /// read: their client address was over its limit of failed validations.
    #[serde(default)]
    pub rate_limited: u64,
    /// Rejections answered only after a delay: their client address was over its limit
    /// of failed validations.
    #[serde(default)]
    pub delayed_rejections: u64,
    pub reuse_detected: u64,
    /// Token families revoked after a reuse (each with an audit entry).
    #[serde(default)]
    pub families_revoked: u64,
    /// Rotations refused with `409 conflict` (the token was already rotated).
    #[serde(default)]
    pub rotation_conflicts: u64,
    /// Rotations that answered a successor.
    #[serde(default)]
    pub rotations: u64,
    /// Logouts (one device, or all of a user's) acknowledged.
    #[serde(default)]
    pub logouts: u64,
    pub refreshes: u64,
    pub refreshes_skipped: u64,
    pub swept: u64,
    /// Milliseconds this node's data clock is moved (chaos runs only).
    pub clock_offset_ms: i64,
    /// How this node answers validations: `local`, `fenced` (cut off from some region:
    /// from a majority of the regions, or `auth_fenced`) or `catching_up` (back in
    /// touch, anti-entropy not done: from a majority of the regions).
    #[serde(default)]
    pub auth_guard: String,
    /// Validations made while fenced.
    #[serde(default)]
    pub fenced_validations: u64,
    /// Validations made while catching up.
    #[serde(default)]
    pub catching_up_validations: u64,
    /// Validations refused with `auth_fenced`.
    #[serde(default)]
    pub validations_failed_closed: u64,
    /// Revocations acknowledged without a region held down for the fence margin.
    #[serde(default)]
    pub revocations_without_a_region: u64,
    /// Revocations that waited for a region going down to be held down long enough.
    #[serde(default)]
    pub revocations_waited: u64,
    /// Revocations refused with `revocation_unconfirmed`.
    #[serde(default)]
    pub revocations_unconfirmed: u64,
}

/// Anti-entropy counters.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RepairCounters {
    pub rounds: u64,
    /// Partitions found different from some peer and not yet seen equal since.
    pub partitions_out_of_sync: usize,
    pub oldest_divergence_s: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub keys_pulled: u64,
    pub keys_pushed: u64,
    /// Repair messages refused: a partition not held here, over a limit, malformed.
    pub refused: u64,
    pub tombstones_collected: u64,
}

/// Hinted handoff counters.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct HintCounters {
    /// Hints held for each node that was down.
    pub pending: std::collections::BTreeMap<String, u64>,
    pub stored: u64,
    pub replayed: u64,
    pub dropped: u64,
}

/// A member as one node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberStatus {
    pub node: String,
    pub region: String,
    /// alive, suspect or dead.
    pub state: String,
    /// joining, member, leaving, left or removed.
    pub status: String,
    pub incarnation: u64,
    pub http: String,
    pub quic: String,
    pub partitions_owned: usize,
}

/// Failure-detector counters.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SwimCounters {
    pub probes_sent: u64,
    pub suspicions_raised: u64,
    pub deaths_declared: u64,
    pub refutations: u64,
    pub stale_updates_ignored: u64,
    pub forged_updates_ignored: u64,
    pub malformed_ignored: u64,
    pub foreign_region_updates: u64,
    /// Final statuses (left, removed) received without a valid proof: ignored.
    pub final_statuses_unproven: u64,
    /// Incarnations or status versions within `COUNTER_MARGIN` of the maximum: ignored.
    pub counters_near_maximum_ignored: u64,
    /// Updates placing a member in another region than its known (certified) one.
    pub region_changes_ignored: u64,
    pub local_health: u32,
}

pub(super) async fn status(State(routes): State<StatusRoutes>) -> Json<Status> {
    let parts = routes.state.as_ref();
    // Kept as writes happen (`replica::trees`): no scan.
    let keys = parts.replica.trees().keys_total();
    let stored_bytes = parts.replica.trees().bytes_total();
    let disk_bytes = parts.storage.size_on_disk().unwrap_or(0);
    let view = parts.cluster.view();
    let me = &parts.me;
    let members = member_statuses(parts, &view);
    let stats = &parts.coordinator;
    let transport = parts.transport.stats();
    Json(Status {
        node: me.node.to_string(),
        region: me.region.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        http: me.http.to_string(),
        quic: me.quic.to_string(),
        resp: parts.resp.map(|addr| addr.to_string()),
        pid: std::process::id(),
        members,
        ring_epoch: view.epoch,
        ring_change_pending: view.target.is_some(),
        partitions: view.current.partition_count(),
        partitions_owned: view.current.partitions_of(&me.node).len(),
        partitions_held: parts.cluster.held().len(),
        partitions_missing: parts.cluster.missing_partitions().len(),
        transfers_in_flight: parts.cluster.transfers_in_flight.load(Ordering::Relaxed),
        partitions_fetched: parts.transfers.partitions_fetched.load(Ordering::Relaxed),
        objects_fetched: parts.transfers.objects_fetched.load(Ordering::Relaxed),
        bytes_fetched: parts.transfers.bytes_fetched.load(Ordering::Relaxed),
        partitions_filled: parts.transfers.partitions_filled.load(Ordering::Relaxed),
        partitions_filling: parts.cluster.filling().len(),
        replicas_per_region: view.current.replicas_per_region(&me.region),
        replicas_total: view.current.n() as u32,
        read: parts.read.to_string(),
        write: parts.write.to_string(),
        durability: parts.durability.to_string(),
        actor: parts.replica.actor().to_string(),
        early_sends: parts.early.armed(),
        keys,
        stored_bytes,
        trees_pending: parts.replica.trees().pending(),
        disk_bytes,
        reads: stats.reads.load(Ordering::Relaxed),
        writes: stats.writes.load(Ordering::Relaxed),
        failures: stats.failures.load(Ordering::Relaxed),
        read_repairs: stats.read_repairs.load(Ordering::Relaxed),
        digest_mismatches: stats.digest_mismatches.load(Ordering::Relaxed),
        speculations: stats.speculations.load(Ordering::Relaxed),
        speculations_refused: stats.speculations_refused.load(Ordering::Relaxed),
        resends: stats.resends.load(Ordering::Relaxed),
        silent_probes: stats.silent_probes.load(Ordering::Relaxed),
        frames_rejected: transport.frames_rejected,
        connections_refused: transport.connections_refused,
        handshakes_timed_out: transport.handshakes_timed_out,
        handshakes_retried: transport.handshakes_retried,
        handshakes_refused: transport.handshakes_refused,
        faults_injected: transport.faults_injected,
        anti_entropy: repair_counters(parts),
        sessions: session_counters(parts),
        edge: routes.edge.counters(),
        resp_edge: parts.resp_counters.as_ref().map(|counters| counters()),
        hints: hint_counters(parts),
        swim: swim_counters(parts),
    })
}

/// Every member as this node sees it.
fn member_statuses(parts: &StatusState, view: &RingView) -> Vec<MemberStatus> {
    parts
        .cluster
        .members()
        .into_iter()
        .map(|member| MemberStatus {
            node: member.info.node.to_string(),
            region: member.info.region.to_string(),
            state: liveness_name(member.liveness).to_string(),
            status: status_name(member.status).to_string(),
            incarnation: member.incarnation,
            http: member.info.http.to_string(),
            quic: member.info.quic.to_string(),
            partitions_owned: view.current.partitions_of(&member.info.node).len(),
        })
        .collect()
}

fn repair_counters(parts: &StatusState) -> RepairCounters {
    RepairCounters {
        rounds: parts.repair.rounds.load(Ordering::Relaxed),
        partitions_out_of_sync: parts.repair.out_of_sync(),
        oldest_divergence_s: parts.repair.oldest_divergence_ms() as f64 / 1000.0,
        bytes_sent: parts.repair.bytes_sent.load(Ordering::Relaxed),
        bytes_received: parts.repair.bytes_received.load(Ordering::Relaxed),
        keys_pulled: parts.repair.keys_pulled.load(Ordering::Relaxed),
        keys_pushed: parts.repair.keys_pushed.load(Ordering::Relaxed),
        refused: parts.refused.load(Ordering::Relaxed),
        tombstones_collected: parts.repair.tombstones_collected.load(Ordering::Relaxed),
    }
}

fn hint_counters(parts: &StatusState) -> HintCounters {
    HintCounters {
        pending: parts
            .hints
            .pending()
            .into_iter()
            .map(|(node, count)| (node.to_string(), count))
            .collect(),
        stored: parts.hints.stats.stored.load(Ordering::Relaxed),
        replayed: parts.hints.stats.replayed.load(Ordering::Relaxed),
        dropped: parts.hints.stats.dropped.load(Ordering::Relaxed),
    }
}

fn swim_counters(parts: &StatusState) -> SwimCounters {
    let (swim_stats, local_health) = parts
        .cluster
        .with_swim(|swim| (swim.stats(), swim.local_health()));
    SwimCounters {
        probes_sent: swim_stats.probes_sent,
        suspicions_raised: swim_stats.suspicions_raised,
        deaths_declared: swim_stats.deaths_declared,
        refutations: swim_stats.refutations,
        stale_updates_ignored: swim_stats.stale_updates_ignored,
        forged_updates_ignored: swim_stats.forged_updates_ignored,
        malformed_ignored: swim_stats.malformed_ignored,
        foreign_region_updates: swim_stats.unknown_region_ignored,
        final_statuses_unproven: parts.gossip.final_statuses_unproven.load(Ordering::Relaxed),
        counters_near_maximum_ignored: swim_stats.counters_near_maximum_ignored,
        region_changes_ignored: swim_stats.region_changes_ignored
            + parts.gossip.regions_refused.load(Ordering::Relaxed),
        local_health,
    }
}

fn session_counters(parts: &StatusState) -> SessionCounters {
    let clock_offset_ms = parts.clock.offset_ms();
    let Some(stats) = &parts.sessions else {
        return SessionCounters {
            clock_offset_ms,
            ..SessionCounters::default()
        };
    };
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    SessionCounters {
        logins: load(&stats.logins),
        validations: load(&stats.validations),
        rejections: load(&stats.rejections),
        validation_reads: load(&stats.validation_reads),
        remote_validation_reads: load(&stats.remote_validation_reads),
        forged: load(&stats.forged),
        negative_cache_hits: load(&stats.negative_cache_hits),
        one_round_validations: load(&stats.one_round_validations),
        rate_limited: load(&stats.rate_limited),
        delayed_rejections: load(&stats.delayed_rejections),
        reuse_detected: load(&stats.reuse_detected),
        families_revoked: load(&stats.families_revoked),
        rotation_conflicts: load(&stats.rotation_conflicts),
        rotations: load(&stats.rotations),
        logouts: load(&stats.logouts),
        refreshes: load(&stats.refreshes),
        refreshes_skipped: load(&stats.refreshes_skipped),
        swept: load(&stats.swept),
        clock_offset_ms,
        auth_guard: crate::session::regions::mode_name(load(&stats.guard_mode)).to_string(),
        fenced_validations: load(&stats.fenced_validations),
        catching_up_validations: load(&stats.catching_up_validations),
        validations_failed_closed: load(&stats.validations_failed_closed),
        revocations_without_a_region: load(&stats.revocations_without_a_region),
        revocations_waited: load(&stats.revocations_waited),
        revocations_unconfirmed: load(&stats.revocations_unconfirmed),
    }
}

/// `GET /v1/partitions`: the keys and bytes of every partition this node owns, from
/// the counts kept as writes happen (no scan).
pub(super) async fn partitions(
    State(routes): State<StatusRoutes>,
) -> Json<std::collections::BTreeMap<u32, Counts>> {
    Json(per_owned_partition(&routes, |trees, partition| {
        trees.counts(partition)
    }))
}

/// `f` of every partition this node owns in the current ring, by partition number.
fn per_owned_partition<T>(
    routes: &StatusRoutes,
    f: impl Fn(&Trees, PartitionId) -> T,
) -> std::collections::BTreeMap<u32, T> {
    let parts = routes.state.as_ref();
    let view = parts.cluster.view();
    let trees = parts.replica.trees();
    view.current
        .partitions_of(&parts.me.node)
        .into_iter()
        .map(|partition| (partition.0, f(trees, partition)))
        .collect()
}

/// `GET /v1/roots`: the Merkle root of every partition this node owns, hex, so tools can
/// check that all replicas converged.
pub(super) async fn roots(
    State(routes): State<StatusRoutes>,
) -> Json<std::collections::BTreeMap<u32, String>> {
    Json(per_owned_partition(&routes, |trees, partition| {
        let root = trees.root(partition);
        root.iter().map(|byte| format!("{byte:02x}")).collect()
    }))
}
