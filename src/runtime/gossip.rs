//! The async driver of the SWIM state machine: ticks it, carries its messages over the
//! transport (one-way: the reply is ignored), keeps the transport's address book in step
//! with the member list, and commits this node's own ownership changes (a joiner becomes
//! a member, a leaver leaves) once every node gaining partitions is ready.
//!
//! It is also the gate in front of the pure state machine: every received final status
//! (Left, Removed) must carry a valid proof (`runtime::proof`) and a sender's claims about
//! itself must name the region its certificate names; anything else is dropped here,
//! counted, and changes nothing. It signs this node's own Left.

use super::proof::ProofVerifier;
use super::state::{now_ms, ClusterState};
use crate::coordinator::ClusterView;
use crate::ids::{NodeId, Region};
use crate::limits;
use crate::membership::swim::{Liveness, MemberState, Output, Status, SwimMessage};
use crate::transport::NodeTls;
use crate::transport::Transport;
use crate::wire::{PeerError, PeerRequest, PeerResponse};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// Why a node must stop on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Running,
    /// It left the ring gracefully.
    Left,
    /// Another live member already uses this node's id.
    DuplicateId {
        address: String,
    },
}

pub struct Gossip {
    state: Arc<ClusterState>,
    transport: OnceLock<Transport<PeerRequest, PeerResponse>>,
    sends: Arc<Semaphore>,
    synced_version: Mutex<u64>,
    exit: watch::Sender<Exit>,
    /// Messages not sent because GOSSIP_SENDS_IN_FLIGHT_MAX were in flight.
    pub sends_dropped: AtomicU64,
    /// Received final statuses whose proof was missing or wrong, or past the checks one
    /// message may cost (dropped).
    pub final_statuses_unproven: AtomicU64,
    /// Received claims of a sender about itself naming another region than its
    /// certificate (dropped; a join so refused is dropped whole).
    pub regions_refused: AtomicU64,
    /// This node's certificate and key: it signs its own Left with them.
    tls: NodeTls,
    proofs: ProofVerifier,
    /// Set once this node announced it is stopping: from then on it neither hears nor
    /// sends membership messages, so it cannot refute its own announced death.
    stopping: std::sync::atomic::AtomicBool,
}

impl Gossip {
    pub fn new(state: Arc<ClusterState>, tls: NodeTls) -> Arc<Gossip> {
        Arc::new(Gossip {
            state,
            final_statuses_unproven: AtomicU64::new(0),
            regions_refused: AtomicU64::new(0),
            proofs: ProofVerifier::new(tls.ca_cert_der.clone()),
            tls,
            transport: OnceLock::new(),
            sends: Arc::new(Semaphore::new(limits::GOSSIP_SENDS_IN_FLIGHT_MAX)),
            synced_version: Mutex::new(u64::MAX),
            exit: watch::channel(Exit::Running).0,
            sends_dropped: AtomicU64::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn attach(&self, transport: Transport<PeerRequest, PeerResponse>) {
        let _ = self.transport.set(transport);
    }

    pub fn transport(&self) -> Option<Transport<PeerRequest, PeerResponse>> {
        self.transport.get().cloned()
    }

    pub fn exit_signal(&self) -> watch::Receiver<Exit> {
        self.exit.subscribe()
    }

    /// Checks final statuses against the cluster CA before using them (see
    /// `runtime::proof`).
    pub fn proofs(&self) -> &ProofVerifier {
        &self.proofs
    }

    /// Feeds a message from a peer (its id and region checked against its certificate
    /// by the transport) to the state machine, once its claims are admitted.
    pub fn receive(&self, from: &NodeId, from_region: &Region, message: SwimMessage) {
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        let Some(message) = self.admit(from, from_region, message) else {
            return;
        };
        let message = self.admit_restart(message);
        let outputs = self
            .state
            .with_swim(|swim| swim.receive(from, message, now_ms()));
        // Addresses first: a reply to a restarted node must go to its new address.
        self.sync_peers();
        self.send_all(outputs);
    }

    /// Refuses a join under the id of a member that is alive at another address (a
    /// second process with the same id); a restarted node is first marked dead (or
    /// said so itself when it stopped), so it is let in.
    pub fn refuse_duplicate(&self, message: &SwimMessage) -> Option<String> {
        let SwimMessage::Join { member } = message else {
            return None;
        };
        let known = self.state.member(&member.info.node)?;
        let live = known.liveness == Liveness::Alive
            && matches!(
                known.status,
                Status::Joining | Status::Member | Status::Leaving
            );
        (live && known.info.quic != member.info.quic && known.info.node != self.state.me)
            .then(|| known.info.quic.to_string())
    }

    /// Drops the updates this node must not believe: a final status without a valid
    /// proof, a sender's state naming another region than its certificate. A join so
    /// refused is dropped whole (`None`).
    fn admit(
        &self,
        from: &NodeId,
        from_region: &Region,
        mut message: SwimMessage,
    ) -> Option<SwimMessage> {
        let updates = match &mut message {
            SwimMessage::Join { member } => {
                return self
                    .admissible(from, from_region, member, &mut 0)
                    .then_some(message);
            }
            SwimMessage::Ping { updates, .. }
            | SwimMessage::Ack { updates, .. }
            | SwimMessage::PingReq { updates, .. }
            | SwimMessage::IndirectAck { updates, .. }
            | SwimMessage::Gossip { updates } => updates,
            SwimMessage::Sync { members, .. } => members,
            SwimMessage::Nack { .. } => return Some(message),
        };
        let mut checks = 0;
        updates.retain(|update| self.admissible(from, from_region, update, &mut checks));
        Some(message)
    }

    /// `checks` counts the proofs verified for this message, at most
    /// `PROOF_CHECKS_PER_MESSAGE_MAX`: a message full of forged final statuses costs a
    /// bounded amount of work.
    fn admissible(
        &self,
        from: &NodeId,
        from_region: &Region,
        update: &MemberState,
        checks: &mut usize,
    ) -> bool {
        if update.info.node == *from && update.info.region != *from_region {
            self.regions_refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%from, claimed = %update.info.region, "a peer's state names another region than its certificate");
            return false;
        }
        if !matches!(update.status, Status::Left | Status::Removed) {
            return true;
        }
        // A final status this node already holds, proof and all, was verified when it
        // arrived first: full tables (Sync) repeat it every round.
        let known = self.state.member(&update.info.node).is_some_and(|known| {
            known.status == update.status
                && known.status_version == update.status_version
                && known.ready_for == update.ready_for
                && known.info.region == update.info.region
                && known.proof == update.proof
        });
        if known {
            return true;
        }
        if *checks >= limits::PROOF_CHECKS_PER_MESSAGE_MAX {
            self.final_statuses_unproven.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *checks += 1;
        match self.proofs.verify(update) {
            Ok(()) => true,
            Err(error) => {
                self.final_statuses_unproven.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, node = %update.info.node, %error, "ignoring an unproven final status");
                false
            }
        }
    }

    /// A join from a member known dead or suspect is that node restarted: its state
    /// must win over the old one (new address), so it enters one incarnation above.
    fn admit_restart(&self, message: SwimMessage) -> SwimMessage {
        let SwimMessage::Join { mut member } = message else {
            return message;
        };
        if let Some(known) = self.state.member(&member.info.node) {
            if known.liveness != Liveness::Alive && member.incarnation <= known.incarnation {
                member.incarnation = known.incarnation + 1;
            }
        }
        SwimMessage::Join { member }
    }

    /// Tells every member directly that this node is stopping (marks itself dead), so
    /// a restart right after is let in and no one waits for the failure detector.
    /// Waits until each member acknowledged it, or `STOP_ANNOUNCE_MS` passed: a
    /// restart that reaches a member before the announcement would be refused as a
    /// duplicate of the still-live old process.
    pub async fn announce_stop(&self) {
        let Some(mut me) = self.state.member(&self.state.me) else {
            return;
        };
        let Some(transport) = self.transport.get() else {
            return;
        };
        me.liveness = Liveness::Dead;
        self.stopping.store(true, Ordering::Relaxed);
        let message = PeerRequest::Swim(SwimMessage::Gossip { updates: vec![me] });
        let sends = self
            .state
            .members()
            .into_iter()
            .filter(|member| member.info.node != self.state.me && member.liveness != Liveness::Dead)
            .map(|member| {
                let transport = transport.clone();
                let message = message.clone();
                async move { transport.request(&member.info.node, &message).await }
            });
        let wait = std::time::Duration::from_millis(limits::STOP_ANNOUNCE_MS);
        let _ = tokio::time::timeout(wait, futures::future::join_all(sends)).await;
    }

    /// Sends `me` straight to every member not held dead (gossip alone might not get
    /// out before the process exits).
    fn tell_everyone(&self, me: crate::membership::swim::MemberState) {
        let outputs = self
            .state
            .members()
            .into_iter()
            .filter(|member| member.info.node != self.state.me && member.liveness != Liveness::Dead)
            .map(|member| Output::Send {
                to: member.info.node,
                message: SwimMessage::Gossip {
                    updates: vec![me.clone()],
                },
            })
            .collect();
        self.send_all(outputs);
    }

    /// Sends each message in its own task; drops it when too many are in flight (SWIM
    /// tolerates loss, and a stuck peer must not pile up tasks).
    pub fn send_all(&self, outputs: Vec<Output>) {
        let Some(transport) = self.transport.get() else {
            return;
        };
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        for output in outputs {
            let Output::Send { to, message } = output;
            let Ok(permit) = self.sends.clone().try_acquire_owned() else {
                self.sends_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let transport = transport.clone();
            let exit = self.exit.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let response = transport.request(&to, &PeerRequest::Swim(message)).await;
                // A seed refuses a join under an id a live member already uses.
                if let Ok(PeerResponse::Error(PeerError::DuplicateId(address))) = response {
                    let _ = exit.send(Exit::DuplicateId { address });
                }
            });
        }
    }

    /// Points the transport at every member's current address.
    fn sync_peers(&self) {
        let Some(transport) = self.transport.get() else {
            return;
        };
        let members = self.state.members();
        let version = peers_version(&members);
        let mut synced = self.synced_version.lock().expect("synced lock");
        if *synced == version {
            return;
        }
        for member in &members {
            if member.info.node == self.state.me {
                continue;
            }
            if matches!(member.status, Status::Left | Status::Removed) {
                transport.remove_peer(&member.info.node);
            } else if let Err(error) = transport.set_peer(
                member.info.node.clone(),
                member.info.region.clone(),
                member.info.quic,
            ) {
                tracing::warn!(%error, "cannot add a peer");
            }
        }
        *synced = version;
    }

    /// Commits this node's pending ownership change when every gaining node is ready.
    fn commit(&self) {
        let Some(me) = self.state.member(&self.state.me) else {
            return;
        };
        let view = self.state.view();
        let next = match me.status {
            Status::Joining if view.ready_to_commit(&self.state.owners()) => Status::Member,
            Status::Leaving if view.ready_to_commit(&self.state.owners()) => Status::Left,
            _ => return,
        };
        let tls = &self.tls;
        let prove = |state: &MemberState| match super::proof::sign_left(tls, state) {
            Ok(proof) => Some(proof),
            Err(error) => {
                // Unsigned, the others ignore our Left; they still take a dead leaving
                // member out of the ring once its partitions are handed over.
                tracing::warn!(%error, "cannot sign this node's Left");
                None
            }
        };
        match self
            .state
            .with_swim(|swim| swim.set_status_proved(next, now_ms(), prove))
        {
            Ok(outputs) => {
                tracing::info!(status = ?next, "ownership change committed");
                self.send_all(outputs);
                if next == Status::Left {
                    self.announce_departure();
                }
            }
            Err(error) => tracing::warn!(%error, "cannot commit the ownership change"),
        }
    }

    /// Tells every member directly that this node has left, keeps gossiping for a
    /// while, then signals exit.
    fn announce_departure(&self) {
        let Some(me) = self.state.member(&self.state.me) else {
            return;
        };
        self.tell_everyone(me);
        let exit = self.exit.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(limits::LEFT_LINGER_MS)).await;
            let _ = exit.send(Exit::Left);
        });
    }

    /// Ticks the state machine until `stopped`.
    pub async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(Duration::from_millis(limits::GOSSIP_TICK_MS));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
            let outputs = self.state.with_swim(|swim| swim.tick(now_ms()));
            self.sync_peers();
            self.send_all(outputs);
            self.commit();
        }
    }
}

/// A fingerprint of what decides the transport's peers: who, where, in which state.
/// (A sum of incarnations here once matched an older list: a node restarted with a
/// wiped store, seeing its own incarnation rise as a new member arrived, never dialled
/// that member.)
fn peers_version(members: &[MemberState]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for member in members {
        member.info.node.hash(&mut hasher);
        member.info.quic.hash(&mut hasher);
        member.incarnation.hash(&mut hasher);
        member.status_version.hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests;
