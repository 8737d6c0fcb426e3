//! `GET /metrics`: every counter, gauge and histogram of the node in the OpenMetrics
//! text format, which Prometheus scrapes, encoded by `prometheus-client`.
//!
//! A scrape only reads what the node's parts already keep (atomics, the histogram
//! tables of `stats`, a few short-held maps such as the hints pending per owner): it
//! scans no store and takes no lock a request path holds for long. Names follow
//! Prometheus's conventions: the `cartwheel_` prefix, base units (seconds, bytes),
//! `_total` counters; labels are bounded sets (operation, class, level, outcome,
//! region, member state), never a key or a user. The process's own figures use the
//! standard `process_` names.

use super::status::StatusRoutes;
use crate::coordinator::ClusterView;
use crate::transport::RegionTrafficSnapshot;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use families::Families;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// The label set of a family with one unlabelled series.
const NO_LABELS: [(&str, &str); 0] = [];

mod families;
mod feed;
mod sessions;

/// The content type of the OpenMetrics text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`.
pub(super) async fn metrics(State(routes): State<StatusRoutes>) -> Response {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NodeCollector(routes.clone())));
    registry.register_collector(Box::new(ProcessCollector));
    let mut body = String::with_capacity(64 * 1024);
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded",
        )
            .into_response(),
    }
}

/// One scrape's view of the node.
struct NodeCollector(StatusRoutes);

impl fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeCollector")
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut families = Families {
            encoder: &mut encoder,
        };
        let routes = &self.0;
        node(&mut families, routes)?;
        coordinator(&mut families, routes)?;
        replica(&mut families, routes)?;
        membership(&mut families, routes)?;
        handoff_and_repair(&mut families, routes)?;
        transport(&mut families, routes)?;
        sessions::sessions(&mut families, routes)?;
        feed::feed(&mut families, routes)?;
        edges(&mut families, routes)
    }
}

fn node(families: &mut Families, routes: &StatusRoutes) -> fmt::Result {
    let parts = routes.state.as_ref();
    families.gauges(
        "cartwheel_node_info",
        "This node's id, region and version (always 1)",
        [(
            [
                ("node", parts.me.node.to_string()),
                ("region", parts.me.region.to_string()),
                ("version", env!("CARGO_PKG_VERSION").to_string()),
            ],
            1.0,
        )],
    )?;
    families.gauge(
        "cartwheel_storage_keys",
        "Keys the store holds (tombstones included), counted as writes happen",
        None,
        parts.replica.trees().keys_total() as f64,
    )?;
    families.gauge(
        "cartwheel_storage_stored_bytes",
        "Bytes of the keys and values the store holds (tombstones included), counted as writes happen",
        None,
        parts.replica.trees().bytes_total() as f64,
    )?;
    families.gauge(
        "cartwheel_storage_trees_pending",
        "Partitions whose Merkle tree is still being rebuilt from the store after a start",
        None,
        f64::from(parts.replica.trees().pending()),
    )?;
    let disk = parts.storage.size_on_disk().unwrap_or(0);
    families.gauge(
        "cartwheel_storage_disk",
        "Bytes the store takes on disk",
        Some(&Unit::Bytes),
        disk as f64,
    )?;
    let commit = parts.replica.commit_stats();
    families.histograms(
        "cartwheel_storage_group_commit_writes",
        "Waiting writes each flush of the store covered (its group)",
        None,
        [(NO_LABELS, commit.group_writes.snapshot())],
    )?;
    families.histograms(
        "cartwheel_storage_flush_duration",
        "How long each flush (fsync) of the store took",
        Some(&Unit::Seconds),
        [(NO_LABELS, commit.flush_latency.snapshot())],
    )
}

fn coordinator(families: &mut Families, routes: &StatusRoutes) -> fmt::Result {
    let stats = routes.state.coordinator.as_ref();
    families.histograms(
        "cartwheel_request_duration",
        "Requests this node coordinated, by operation, data class, consistency level and \
         outcome (ok, unavailable, timeout, refused)",
        Some(&Unit::Seconds),
        stats.latencies.observed().map(|(labels, snapshot)| {
            let set = [
                ("op", labels.op),
                ("class", labels.class),
                ("level", labels.level),
                ("outcome", labels.outcome),
            ];
            (set, snapshot)
        }),
    )?;
    let counters = [
        (
            "cartwheel_request_failures",
            "Coordinated requests that failed (level not met, timed out, refused)",
            &stats.failures,
        ),
        (
            "cartwheel_read_repairs",
            "Replicas repaired by reads",
            &stats.read_repairs,
        ),
        (
            "cartwheel_digest_mismatch_reads",
            "Reads asked again for every object because a replica's digest differed",
            &stats.digest_mismatches,
        ),
        (
            "cartwheel_speculative_reads",
            "Reads that asked more replicas because those asked were later than their p99",
            &stats.speculations,
        ),
        (
            "cartwheel_speculations_refused",
            "Speculations the per-node budget refused",
            &stats.speculations_refused,
        ),
        (
            "cartwheel_resends",
            "Rounds that sent a request again to replicas that had not answered",
            &stats.resends,
        ),
        (
            "cartwheel_silent_peer_probes",
            "Probes of peers that answered nothing for a while (treated as dead here)",
            &stats.silent_probes,
        ),
    ];
    families.counters(counters)?;
    Ok(())
}

fn replica(families: &mut Families, routes: &StatusRoutes) -> fmt::Result {
    families.histograms(
        "cartwheel_replica_request_duration",
        "Requests from peers (and this node's coordinator) this replica answered, by kind \
         and outcome",
        Some(&Unit::Seconds),
        routes
            .state
            .served
            .observed()
            .map(|((kind, outcome), snapshot)| ([("kind", kind), ("outcome", outcome)], snapshot)),
    )
}

fn membership(families: &mut Families, routes: &StatusRoutes) -> fmt::Result {
    let parts = routes.state.as_ref();
    let view = parts.cluster.view();
    let mut members: BTreeMap<[(&str, String); 3], f64> = BTreeMap::new();
    for member in parts.cluster.members() {
        let labels = [
            ("member_region", member.info.region.to_string()),
            (
                "state",
                crate::runtime::state::liveness_name(member.liveness).to_string(),
            ),
            (
                "status",
                crate::runtime::state::status_name(member.status).to_string(),
            ),
        ];
        *members.entry(labels).or_default() += 1.0;
    }
    families.gauges(
        "cartwheel_members",
        "Members as this node sees them, by the member's region, failure-detector state \
         (alive, suspect, dead) and status (joining, member, leaving, left, removed)",
        members,
    )?;
    let (swim, local_health) = parts
        .cluster
        .with_swim(|swim| (swim.stats(), swim.local_health()));
    families.counter(
        "cartwheel_swim_probes",
        "SWIM probes sent",
        swim.probes_sent,
    )?;
    families.counter(
        "cartwheel_swim_suspicions",
        "Members this node began to suspect",
        swim.suspicions_raised,
    )?;
    families.counter(
        "cartwheel_swim_deaths",
        "Members this node declared dead",
        swim.deaths_declared,
    )?;
    families.counter(
        "cartwheel_swim_refutations",
        "Suspicions of this node it refuted",
        swim.refutations,
    )?;
    families.gauge(
        "cartwheel_swim_local_health",
        "The failure detector's local health multiplier (0: healthy)",
        None,
        f64::from(local_health),
    )?;
    families.gauge(
        "cartwheel_ring_epoch",
        "The ring's epoch",
        None,
        view.epoch as f64,
    )?;
    families.gauge(
        "cartwheel_ring_change_pending",
        "1 while a ring change (a join or a leave) is in flight",
        None,
        f64::from(u8::from(view.target.is_some())),
    )?;
    families.gauge(
        "cartwheel_partitions_owned",
        "Partitions this node owns in the current ring",
        None,
        view.current.partitions_of(&parts.me.node).len() as f64,
    )?;
    families.gauge(
        "cartwheel_partitions_held",
        "Partitions whose data this node holds",
        None,
        parts.cluster.held().len() as f64,
    )?;
    families.gauge(
        "cartwheel_transfers_in_flight",
        "Partition transfers this node is pulling",
        None,
        load(&parts.cluster.transfers_in_flight) as f64,
    )?;
    families.counter(
        "cartwheel_partitions_fetched",
        "Partitions pulled from their previous owners",
        load(&parts.transfers.partitions_fetched),
    )?;
    families.counter(
        "cartwheel_objects_fetched",
        "Objects pulled by partition transfers",
        load(&parts.transfers.objects_fetched),
    )
}

fn handoff_and_repair(families: &mut Families, routes: &StatusRoutes) -> fmt::Result {
    let parts = routes.state.as_ref();
    let hints = &parts.hints;
    families.gauges(
        "cartwheel_hints_pending",
        "Hints held here for each owner that was down",
        hints
            .pending()
            .into_iter()
            .map(|(owner, count)| ([("owner", owner.to_string())], count as f64)),
    )?;
    families.counter(
        "cartwheel_hints_stored",
        "Hints stored for owners that were down",
        load(&hints.stats.stored),
    )?;
    families.counter(
        "cartwheel_hints_replayed",
        "Hints handed to their owners",
        load(&hints.stats.replayed),
    )?;
    families.counter(
        "cartwheel_hints_dropped",
        "Hints dropped (past the window or over the limit)",
        load(&hints.stats.dropped),
    )?;
    let repair = &parts.repair;
    families.counter(
        "cartwheel_anti_entropy_rounds",
        "Anti-entropy rounds run",
        load(&repair.rounds),
    )?;
    families.gauge(
        "cartwheel_anti_entropy_partitions_out_of_sync",
        "Partitions found different from some peer and not yet seen equal since",
        None,
        repair.out_of_sync() as f64,
    )?;
    families.gauge(
        "cartwheel_anti_entropy_oldest_divergence",
        "Age of the oldest divergence not yet repaired",
        Some(&Unit::Seconds),
        repair.oldest_divergence_ms() as f64 / 1000.0,
    )?;
    families.bytes_counter(
        "cartwheel_anti_entropy_sent",
        "Bytes sent by anti-entropy",
        load(&repair.bytes_sent),
    )?;
    families.bytes_counter(
        "cartwheel_anti_entropy_received",
        "Bytes received by anti-entropy",
        load(&repair.bytes_received),
    )?;
    families.counter(
        "cartwheel_anti_entropy_keys_pulled",
        "Keys anti-entropy pulled from peers",
        load(&repair.keys_pulled),
    )?;
    families.counter(
        "cartwheel_anti_entropy_keys_pushed",
        "Keys anti-entropy pushed to peers",
        load(&repair.keys_pushed),
    )?;
    families.counter(
        "cartwheel_tombstones_collected",
        "Tombstones collected after every replica held them",
        load(&repair.tombstones_collected),
    )?;
    families.counter(
        "cartwheel_repair_messages_refused",
        "Repair and anti-entropy messages refused (not held, over a limit, malformed)",
        load(&parts.refused),
    )
}

fn transport(families: &mut Families, routes: &StatusRoutes) -> fmt::Result {
    let stats = routes.state.transport.stats();
    let wire = routes.state.transport.wire();
    let counters = [
        (
            "cartwheel_transport_requests_sent",
            "Requests sent to peers (or this node itself)",
            stats.requests_sent,
        ),
        (
            "cartwheel_transport_requests_failed",
            "Requests to peers that returned an error (timeouts included)",
            stats.requests_failed,
        ),
        (
            "cartwheel_transport_requests_timed_out",
            "Requests to peers that hit the request timeout",
            stats.requests_timed_out,
        ),
        (
            "cartwheel_transport_requests_received",
            "Requests handed to this node's peer service",
            stats.requests_received,
        ),
        (
            "cartwheel_transport_frames_rejected",
            "Frames refused as garbage, oversized, truncated or undecodable",
            stats.frames_rejected,
        ),
        (
            "cartwheel_transport_impersonations_rejected",
            "Requests whose sender did not match their connection's certificate",
            stats.impersonations_rejected,
        ),
        (
            "cartwheel_transport_connections_opened",
            "Outbound peer connections established",
            stats.connections_opened,
        ),
        (
            "cartwheel_transport_connect_failures",
            "Outbound peer connection attempts that failed",
            stats.connect_failures,
        ),
        (
            "cartwheel_transport_connections_accepted",
            "Inbound peer connections that completed the mutual TLS handshake",
            stats.connections_accepted,
        ),
        (
            "cartwheel_transport_handshake_failures",
            "Inbound peer connections that failed the handshake",
            stats.connections_refused,
        ),
        (
            "cartwheel_transport_connections_overloaded",
            "Inbound peer connections turned away at the connection limit",
            stats.connections_overloaded,
        ),
        (
            "cartwheel_transport_handshakes_timed_out",
            "Inbound handshakes dropped for not completing in time",
            stats.handshakes_timed_out,
        ),
        (
            "cartwheel_transport_handshakes_refused",
            "Connection attempts refused with too many handshakes in progress",
            stats.handshakes_refused,
        ),
        (
            "cartwheel_transport_channels_opened",
            "Channels (one stream carrying many requests) opened to peers",
            stats.channels_opened,
        ),
        (
            "cartwheel_transport_channels_refused",
            "Channels a peer refused (its requests then take a stream each)",
            stats.channels_refused,
        ),
        (
            "cartwheel_transport_faults_injected",
            "Messages lost or duplicated on purpose by a fault plan (--chaos)",
            stats.faults_injected,
        ),
        (
            "cartwheel_transport_send_calls",
            "Calls that handed datagrams to the kernel (sendmsg) on the peer socket",
            wire.send_calls,
        ),
        (
            "cartwheel_transport_datagrams_sent",
            "Datagrams sent on the peer socket (QUIC packets, acknowledgements included)",
            wire.datagrams_sent,
        ),
        (
            "cartwheel_transport_receive_calls",
            "Receive calls on the peer socket that returned datagrams",
            wire.receive_calls,
        ),
        (
            "cartwheel_transport_datagrams_received",
            "Datagrams received on the peer socket",
            wire.datagrams_received,
        ),
    ];
    for (name, help, value) in counters {
        families.counter(name, help, value)?;
    }
    let traffic = routes.state.transport.region_traffic();
    let per_region: [RegionFamily; 5] = [
        (
            "cartwheel_transport_region_requests",
            "Requests this node sent to the peers of each region",
            None,
            |traffic| traffic.requests,
        ),
        (
            "cartwheel_transport_region_failures",
            "Requests to the peers of each region that failed (timeouts included)",
            None,
            |traffic| traffic.failures,
        ),
        (
            "cartwheel_transport_region_sent",
            "Request frames' bytes sent to the peers of each region",
            Some(&Unit::Bytes),
            |traffic| traffic.bytes_sent,
        ),
        (
            "cartwheel_transport_region_received",
            "Response frames' bytes received from the peers of each region",
            Some(&Unit::Bytes),
            |traffic| traffic.bytes_received,
        ),
        (
            "cartwheel_transport_region_connect_failures",
            "Connection attempts to the peers of each region that failed (handshake \
             refused, unreachable)",
            None,
            |traffic| traffic.connect_failures,
        ),
    ];
    for (name, help, unit, value) in per_region {
        let mut metric =
            families
                .encoder
                .encode_descriptor(name, help, unit, MetricType::Counter)?;
        for (region, snapshot) in &traffic {
            metric
                .encode_family(&[("peer_region", region.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&value(snapshot), None)?;
        }
    }
    Ok(())
}

/// A per-region transport family: name, help, unit, and its figure in a snapshot.
type RegionFamily = (
    &'static str,
    &'static str,
    Option<&'static Unit>,
    fn(&RegionTrafficSnapshot) -> u64,
);

fn edges(families: &mut Families, routes: &StatusRoutes) -> fmt::Result {
    let edge = routes.edge.counters();
    let refusals = [
        ("http", "node_limit", edge.connections_refused_node),
        ("http", "address_limit", edge.connections_refused_address),
        ("http", "output_budget", edge.output_limit_cuts),
    ];
    let mut resp_refusals = Vec::new();
    let mut resp_counters = Vec::new();
    if let Some(counters) = routes
        .state
        .resp_counters
        .as_ref()
        .map(|counters| counters())
    {
        let field = |name: &str| counters.get(name).and_then(|value| value.as_u64());
        resp_refusals.push(("resp", "node_limit", field("connections_refused")));
        resp_refusals.push((
            "resp",
            "address_limit",
            field("connections_refused_address"),
        ));
        for (name, help) in [
            ("commands", "Redis protocol commands served"),
            (
                "protocol_errors",
                "Redis connections closed after a malformed request",
            ),
            (
                "request_timeouts",
                "Redis connections closed for a slow request",
            ),
        ] {
            resp_counters.push((name, help, field(name).unwrap_or(0)));
        }
    }
    families.counter(
        "cartwheel_requests_overloaded",
        "Client requests answered 503 overloaded: every in-flight permit was taken",
        routes.state.admission.refused(),
    )?;
    let mut metric = families.encoder.encode_descriptor(
        "cartwheel_connections_refused",
        "Client connections refused for overload, by listener and limit",
        None,
        MetricType::Counter,
    )?;
    let all = refusals
        .into_iter()
        .map(|(listener, limit, value)| (listener, limit, Some(value)))
        .chain(resp_refusals);
    for (listener, limit, value) in all {
        let labels = [("listener", listener), ("limit", limit)];
        metric
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value.unwrap_or(0), None)?;
    }
    let timeouts = [
        ("header", edge.header_timeouts),
        ("idle", edge.idle_closed),
        ("write", edge.write_timeouts),
    ];
    let mut metric = families.encoder.encode_descriptor(
        "cartwheel_http_connections_closed",
        "HTTP connections closed by a timeout, by which",
        None,
        MetricType::Counter,
    )?;
    for (timeout, value) in timeouts {
        metric
            .encode_family(&[("timeout", timeout)])?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    families.counter(
        "cartwheel_tls_failures",
        "Client TLS handshakes that failed",
        edge.tls_failures,
    )?;
    for (name, help, value) in resp_counters {
        let mut full = String::from("cartwheel_resp_");
        let _ = write!(full, "{name}");
        families.counter(&full, help, value)?;
    }
    Ok(())
}

/// The process's CPU, memory and files under the standard `process_` names, from
/// `/proc/self` (Linux); elsewhere nothing.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Ok(process) = procfs::process::Process::myself() else {
            return Ok(());
        };
        let mut families = Families {
            encoder: &mut encoder,
        };
        if let Ok(stat) = process.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            let page = procfs::page_size() as f64;
            let cpu = (stat.utime + stat.stime) as f64 / ticks;
            let mut metric = families.encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time spent",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            metric.encode_counter::<NoLabelSet, _, f64>(&cpu, None)?;
            let resident = stat.rss as f64 * page;
            families.gauge(
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                resident,
            )?;
            families.gauge(
                "process_virtual_memory",
                "Virtual memory size",
                Some(&Unit::Bytes),
                stat.vsize as f64,
            )?;
            if let Ok(boot) = procfs::boot_time_secs() {
                families.gauge(
                    "process_start_time",
                    "Start time of the process since the Unix epoch",
                    Some(&Unit::Seconds),
                    boot as f64 + stat.starttime as f64 / ticks,
                )?;
            }
        }
        if let Ok(open) = process.fd_count() {
            families.gauge(
                "process_open_fds",
                "Open file descriptors",
                None,
                open as f64,
            )?;
        }
        if let Ok(limits) = process.limits() {
            if let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit {
                families.gauge(
                    "process_max_fds",
                    "Most file descriptors the process may open",
                    None,
                    max as f64,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
