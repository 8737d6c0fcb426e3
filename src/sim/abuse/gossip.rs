//! Forged gossip from a peer with a valid certificate (a stolen node bundle): acting as
//! one member, the attacker tells every other node that a second member was removed and
//! that a third is alive at an incarnation near the maximum. Neither claim may change
//! anything: the removed member stays a member, the third keeps its incarnation, the
//! ring stays at its epoch, and the cluster keeps serving.

use super::{Row, Target};
use crate::api::Status;
use crate::membership::swim::{
    Liveness, MemberInfo, MemberState, Status as RingStatus, SwimMessage,
};
use crate::transport::{Handler, NodeTls, PeerInfo, Transport, TransportConfig, WanModel};
use crate::wire::{PeerRequest, PeerResponse};
use anyhow::{bail, Context, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the attack watches every node for a change after the forged messages.
const WATCH_FOR: Duration = Duration::from_secs(3);
/// Forged messages sent to each node (SWIM tolerates loss, so a few).
const SENDS_PER_NODE: usize = 3;

struct Deaf;

impl Handler<PeerRequest, PeerResponse> for Deaf {
    async fn handle(&self, _from: PeerInfo, _request: PeerRequest) -> PeerResponse {
        PeerResponse::Done
    }
}

pub async fn run(target: &Target) -> Result<Row> {
    if target.nodes.len() < 3 {
        bail!("forged gossip needs a cluster of at least three nodes");
    }
    let (thief, removed, inflated) = (&target.nodes[0], &target.nodes[1], &target.nodes[2]);
    let before = statuses(target).await?;
    let epoch_before: Vec<u64> = before.iter().map(|status| status.ring_epoch).collect();
    let tls = NodeTls::load(&target.dir.join("tls"), &thief.id)
        .context("the attacker needs a node's certificate (a stolen bundle)")?;
    let config = TransportConfig {
        node: thief.id.clone(),
        region: thief.region.clone(),
        bind: "127.0.0.1:0".parse().expect("a loopback address"),
        tls,
        wan: WanModel::disabled(),
        request_timeout: Duration::from_secs(2),
    };
    let attacker: Transport<PeerRequest, PeerResponse> =
        Transport::start(config, Arc::new(Deaf)).await?;
    let claim = |node: &crate::cluster::NodeEntry, status, incarnation, liveness| MemberState {
        info: MemberInfo {
            node: node.id.clone(),
            region: node.region.clone(),
            quic: node.quic,
            http: node.http,
            weight: 1,
        },
        incarnation,
        liveness,
        status,
        status_version: u64::MAX / 2,
        ready_for: 0,
        // The attacker cannot sign: it holds no CA key and no key of the node it names.
        proof: None,
    };
    let updates = vec![
        claim(removed, RingStatus::Removed, 1 << 40, Liveness::Alive),
        claim(inflated, RingStatus::Member, u64::MAX - 1, Liveness::Alive),
    ];
    let mut delivered = 0;
    for victim in target.nodes.iter().skip(1) {
        attacker.set_peer(victim.id.clone(), victim.region.clone(), victim.quic)?;
        for seq in 0..SENDS_PER_NODE {
            let message = SwimMessage::Ping {
                seq: u64::MAX - seq as u64,
                updates: updates.clone(),
            };
            if attacker
                .request(&victim.id, &PeerRequest::Swim(message))
                .await
                .is_ok()
            {
                delivered += 1;
            }
        }
    }
    let changed = watch(target, removed, inflated, &epoch_before).await;
    attacker.shutdown().await;
    let during = target.probe.run(super::probe_duration(true)).await;
    let (legit_ok, legit) = target.p99_verdict(&during, false);
    let measured = format!(
        "acting as {} (its own certificate), told {} nodes that {} was removed and {} is at \
         incarnation u64::MAX - 1 ({delivered} messages delivered): {} over {:.0} s; {legit}",
        thief.id,
        target.nodes.len() - 1,
        removed.id,
        inflated.id,
        match &changed {
            None => "nothing changed".to_string(),
            Some(change) => format!("CHANGED: {change}"),
        },
        WATCH_FOR.as_secs_f64(),
    );
    Ok(Row::new(
        "forged-gossip",
        changed.is_none() && legit_ok,
        measured,
    ))
}

async fn statuses(target: &Target) -> Result<Vec<Status>> {
    let client = reqwest::Client::new();
    let mut all = Vec::new();
    for node in &target.nodes {
        all.push(crate::cluster::fetch_status(&client, node.http).await?);
    }
    Ok(all)
}

/// Polls every node's view until `WATCH_FOR` passes; the first change seen, if any.
async fn watch(
    target: &Target,
    removed: &crate::cluster::NodeEntry,
    inflated: &crate::cluster::NodeEntry,
    epoch_before: &[u64],
) -> Option<String> {
    let deadline = Instant::now() + WATCH_FOR;
    while Instant::now() < deadline {
        let Ok(now) = statuses(target).await else {
            return Some("a node stopped answering its status".into());
        };
        for (index, status) in now.iter().enumerate() {
            if status.ring_epoch != epoch_before[index] {
                return Some(format!("{}'s ring epoch moved", status.node));
            }
            for member in &status.members {
                if member.node == removed.id.as_str() && member.status != "member" {
                    return Some(format!(
                        "{} sees {} {}",
                        status.node, member.node, member.status
                    ));
                }
                if member.node == inflated.id.as_str() && member.incarnation >= u64::MAX / 2 {
                    return Some(format!(
                        "{} sees {} at incarnation {}",
                        status.node, member.node, member.incarnation
                    ));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}
