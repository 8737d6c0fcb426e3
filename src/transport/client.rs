//! The requesting side and the transport handle: endpoint setup, the address book, the
//! per-peer connection cache, WAN delay, and one stream per request.
//!
//! Concurrent first requests to a peer share one connection (the slot's async mutex is
//! held while connecting); a connection found closed is replaced on the next request,
//! and a request is never retried here (the caller decides, knowing idempotence).

use super::faults::{Fate, FaultPlan, FaultPlanError, SharedFaults};
use super::frame::{self, EnvelopeRef, ReadFrameError};
use super::server::{self, ServerContext, ServerLimits};
use super::stats::{Counter, Counters, RegionTraffic, RegionTrafficSnapshot, TransportStats};
use super::tls::{self, IdentityVerifier};
use super::{
    lock, ErasedHandler, Handler, Message, PeerInfo, Refusal, TransportConfig, TransportError,
    WanModel,
};
use crate::ids::{validate_name, NodeId, Region};
use crate::limits::{
    IDLE_TIMEOUT_MS, KEEP_ALIVE_INTERVAL_MS, PEERS_MAX, SHUTDOWN_GRACE_MS,
    STREAMS_PER_CONNECTION_MAX,
};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// A node's transport: cheap to clone, all clones share one endpoint.
pub struct Transport<Req, Resp> {
    inner: Arc<Inner<Req, Resp>>,
}

impl<Req, Resp> Clone for Transport<Req, Resp> {
    fn clone(&self) -> Self {
        Transport {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<Req, Resp> {
    node: NodeId,
    region: Region,
    local_addr: SocketAddr,
    endpoint: quinn::Endpoint,
    wan: WanModel,
    request_timeout: Duration,
    handler: Arc<dyn ErasedHandler<Req, Resp>>,
    peers: Mutex<HashMap<NodeId, Arc<PeerSlot>>>,
    /// Per destination region, shared by that region's peer slots. A region is added
    /// with its first peer (at most `PEERS_MAX` peers, so at most as many regions).
    traffic: Mutex<BTreeMap<Region, Arc<RegionTraffic>>>,
    counters: Arc<Counters>,
    closed: AtomicBool,
    accept_loop: Mutex<Option<JoinHandle<()>>>,
    /// Injected faults (`--chaos` only); `None` on the normal path. Shared with the
    /// serving side, which applies a slow node's reply delay.
    faults: SharedFaults,
}

/// An address-book entry and its cached connection.
struct PeerSlot {
    node: NodeId,
    region: Region,
    addr: SocketAddr,
    traffic: Arc<RegionTraffic>,
    connection: tokio::sync::Mutex<Option<quinn::Connection>>,
}

impl<Req, Resp> Drop for Inner<Req, Resp> {
    fn drop(&mut self) {
        // Dropping every handle without `shutdown` must not leave a listening socket.
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"transport dropped");
        if let Some(accept_loop) = lock(&self.accept_loop).take() {
            accept_loop.abort();
        }
    }
}

impl<Req: Message, Resp: Message> Transport<Req, Resp> {
    /// Binds `config.bind` and starts serving requests with `handler`.
    pub async fn start<H: Handler<Req, Resp>>(
        config: TransportConfig,
        handler: Arc<H>,
    ) -> Result<Self, TransportError> {
        Self::start_with(config, handler, ServerLimits::default()).await
    }

    /// `start` with other accept-side bounds (tests use small ones).
    pub(crate) async fn start_with<H: Handler<Req, Resp>>(
        config: TransportConfig,
        handler: Arc<H>,
        limits: ServerLimits,
    ) -> Result<Self, TransportError> {
        validate_name(config.node.as_str()).map_err(tls::TlsError::from)?;
        // A certificate for another node would make every peer refuse us; say so now.
        config.tls.verify_for(&config.node)?;
        config.tls.check_region(&config.node, &config.region)?;
        let bind_error = |error: std::io::Error| TransportError::Bind {
            addr: config.bind,
            reason: error.to_string(),
        };
        let mut server_config =
            quinn::ServerConfig::with_crypto(tls::quic_server_crypto(&config.tls)?);
        server_config.transport_config(Arc::new(quic_parameters(STREAMS_PER_CONNECTION_MAX)));
        // Nodes have fixed addresses; refusing migration narrows what a peer can do.
        server_config.migration(false);
        let mut client_config = quinn::ClientConfig::new(tls::quic_client_crypto(&config.tls)?);
        // Servers never open streams on connections we dial.
        client_config.transport_config(Arc::new(quic_parameters(0)));
        let mut endpoint =
            quinn::Endpoint::server(server_config, config.bind).map_err(bind_error)?;
        endpoint.set_default_client_config(client_config);
        let local_addr = endpoint.local_addr().map_err(bind_error)?;

        let handler: Arc<dyn ErasedHandler<Req, Resp>> = handler;
        let counters = Arc::new(Counters::default());
        let faults = SharedFaults::default();
        let server = Arc::new(ServerContext {
            endpoint: endpoint.clone(),
            handler: handler.clone(),
            counters: counters.clone(),
            identity: IdentityVerifier::new(&config.tls)?,
            request_timeout: config.request_timeout,
            limits,
            connections: Arc::new(tokio::sync::Semaphore::new(limits.connections_max)),
            handshakes: Arc::new(tokio::sync::Semaphore::new(limits.handshakes_max)),
            faults: faults.clone(),
        });
        let accept_loop = tokio::spawn(server::accept_loop(server));
        tracing::debug!(node = %config.node, %local_addr, "transport started");
        Ok(Transport {
            inner: Arc::new(Inner {
                node: config.node,
                region: config.region,
                local_addr,
                endpoint,
                wan: config.wan,
                request_timeout: config.request_timeout,
                handler,
                peers: Mutex::new(HashMap::new()),
                traffic: Mutex::new(BTreeMap::new()),
                counters,
                closed: AtomicBool::new(false),
                accept_loop: Mutex::new(Some(accept_loop)),
                faults,
            }),
        })
    }

    /// The bound address (with the actual port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Adds or updates a peer. A changed address or region drops the cached connection
    /// (in-flight requests finish on it). Fails when PEERS_MAX other peers are known.
    pub fn set_peer(
        &self,
        node: NodeId,
        region: Region,
        addr: SocketAddr,
    ) -> Result<(), TransportError> {
        let mut peers = lock(&self.inner.peers);
        match peers.get(&node) {
            Some(slot) if slot.addr == addr && slot.region == region => return Ok(()),
            Some(_) => {}
            None if peers.len() >= PEERS_MAX => {
                return Err(TransportError::TooManyPeers { max: PEERS_MAX })
            }
            None => {}
        }
        let traffic = lock(&self.inner.traffic)
            .entry(region.clone())
            .or_default()
            .clone();
        let slot = PeerSlot {
            node: node.clone(),
            region,
            addr,
            traffic,
            connection: tokio::sync::Mutex::new(None),
        };
        peers.insert(node, Arc::new(slot));
        Ok(())
    }

    /// Forgets a peer; its connection closes once in-flight requests release it.
    pub fn remove_peer(&self, node: &NodeId) {
        lock(&self.inner.peers).remove(node);
    }

    /// Replaces the injected faults; an empty plan turns them off.
    pub fn set_faults(&self, plan: FaultPlan) -> Result<(), FaultPlanError> {
        plan.validate()?;
        *lock(&self.inner.faults) = if plan.is_empty() {
            None
        } else {
            Some(Arc::new(plan))
        };
        Ok(())
    }

    /// The injected faults in force.
    pub fn faults(&self) -> FaultPlan {
        lock(&self.inner.faults)
            .as_deref()
            .cloned()
            .unwrap_or_default()
    }

    /// Counters since start.
    pub fn stats(&self) -> TransportStats {
        self.inner.counters.snapshot()
    }

    /// This node's requests to each region's peers since start.
    pub fn region_traffic(&self) -> Vec<(Region, RegionTrafficSnapshot)> {
        lock(&self.inner.traffic)
            .iter()
            .map(|(region, traffic)| (region.clone(), traffic.snapshot()))
            .collect()
    }

    /// Waits until `condition` holds for the counters (wrap it in a timeout).
    pub async fn wait_for_stats(&self, condition: impl Fn(&TransportStats) -> bool) {
        self.inner.counters.wait_until(condition).await
    }

    /// Sends `request` to `to` and waits for its response, all within the configured
    /// request timeout. Requests to this node itself go straight to the handler.
    pub async fn request(&self, to: &NodeId, request: &Req) -> Result<Resp, TransportError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        inner.counters.bump(Counter::RequestsSent);
        let slot = lock(&inner.peers).get(to).cloned();
        let exchange = inner.request(to, slot.as_deref(), request);
        let result = match tokio::time::timeout(inner.request_timeout, exchange).await {
            Ok(result) => result,
            Err(_elapsed) => {
                inner.counters.bump(Counter::RequestsTimedOut);
                Err(TransportError::Timeout {
                    peer: to.clone(),
                    after_ms: u64::try_from(inner.request_timeout.as_millis()).unwrap_or(u64::MAX),
                })
            }
        };
        if let Some(slot) = &slot {
            RegionTraffic::add(&slot.traffic.requests, 1);
            if result.is_err() {
                RegionTraffic::add(&slot.traffic.failures, 1);
            }
        }
        if let Err(error) = &result {
            inner.counters.bump(Counter::RequestsFailed);
            tracing::debug!(peer = %to, %error, "request failed");
        }
        result
    }

    /// Stops serving and closes every connection; later requests fail with `Closed`.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        inner
            .endpoint
            .close(quinn::VarInt::from_u32(0), b"shutting down");
        lock(&inner.peers).clear();
        let accept_loop = lock(&inner.accept_loop).take();
        if let Some(accept_loop) = accept_loop {
            // Aborting drops the connection tasks and their in-flight handlers with it.
            accept_loop.abort();
            let _ = accept_loop.await;
        }
        let grace = Duration::from_millis(SHUTDOWN_GRACE_MS);
        if tokio::time::timeout(grace, inner.endpoint.wait_idle())
            .await
            .is_err()
        {
            tracing::debug!(node = %inner.node, "connections still closing after the grace period");
        }
    }
}

impl<Req: Message, Resp: Message> Inner<Req, Resp> {
    /// A request to `to`, whose address-book entry is `slot`.
    async fn request(
        &self,
        to: &NodeId,
        slot: Option<&PeerSlot>,
        request: &Req,
    ) -> Result<Resp, TransportError> {
        if *to == self.node {
            return self.request_self(request).await;
        }
        let slot = slot.ok_or_else(|| TransportError::UnknownPeer(to.clone()))?;
        let frame = frame::encode(&EnvelopeRef {
            from: &self.node,
            from_region: &self.region,
            body: request,
        })?;
        let (outbound, inbound) = {
            let mut rng = rand::thread_rng();
            let outbound = self
                .wan
                .one_way_delay(&self.region, &slot.region, &mut rng)?;
            let inbound = self
                .wan
                .one_way_delay(&slot.region, &self.region, &mut rng)?;
            (outbound, inbound)
        };
        let plan = lock(&self.faults).clone();
        let fate = match &plan {
            Some(plan) => plan.fate(to, &slot.region, &mut rand::thread_rng()),
            None => Fate::default(),
        };
        sleep_unless_zero(outbound + fate.extra_delay).await;
        if fate.request_lost {
            self.counters.bump(Counter::FaultsInjected);
            return std::future::pending().await;
        }
        let connection = self.connection(slot).await?;
        if fate.duplicated {
            self.counters.bump(Counter::FaultsInjected);
            let _ = self.exchange(&connection, slot, &frame).await;
        }
        let response = self.exchange(&connection, slot, &frame).await?;
        if fate.response_lost {
            self.counters.bump(Counter::FaultsInjected);
            return std::future::pending().await;
        }
        sleep_unless_zero(inbound + fate.extra_delay).await;
        Ok(response)
    }

    /// Runs a request to ourselves through the codec, so it behaves as a remote one
    /// would (same size limit, an owned copy of the request) without a network hop.
    async fn request_self(&self, request: &Req) -> Result<Resp, TransportError> {
        let body: Req = frame::decode_frame(&frame::encode(request)?)?;
        self.counters.bump(Counter::RequestsReceived);
        let from = PeerInfo {
            node: self.node.clone(),
            region: self.region.clone(),
            addr: self.local_addr,
        };
        Ok(self.handler.handle_boxed(from, body).await)
    }

    /// The cached connection to `slot`, or a new one. The slot lock is held while
    /// connecting so concurrent first requests share a single handshake.
    async fn connection(&self, slot: &PeerSlot) -> Result<quinn::Connection, TransportError> {
        let mut cached = slot.connection.lock().await;
        if let Some(connection) = cached.as_ref() {
            if connection.close_reason().is_none() {
                return Ok(connection.clone());
            }
            tracing::debug!(peer = %slot.node, "cached connection closed; reconnecting");
        }
        *cached = None;
        let connect_error = |reason: String| {
            self.counters.bump(Counter::ConnectFailures);
            RegionTraffic::add(&slot.traffic.connect_failures, 1);
            TransportError::Connect {
                peer: slot.node.clone(),
                reason,
            }
        };
        let connecting = self
            .endpoint
            .connect(slot.addr, slot.node.as_str())
            .map_err(|error| connect_error(error.to_string()))?;
        let connection = connecting
            .await
            .map_err(|error| connect_error(error.to_string()))?;
        // rustls checked the id (the server name); the region is ours to check.
        let certificate = super::server::peer_certificate(&connection);
        let region_check = match &certificate {
            Some(certificate) => tls::check_region(certificate, &slot.node, &slot.region),
            None => Err(tls::TlsError::NoRegion {
                node: slot.node.clone(),
            }),
        };
        if let Err(error) = region_check {
            self.counters.bump(Counter::ImpersonationsRejected);
            connection.close(
                quinn::VarInt::from_u32(0),
                b"certificate names another region",
            );
            return Err(connect_error(error.to_string()));
        }
        self.counters.bump(Counter::ConnectionsOpened);
        *cached = Some(connection.clone());
        Ok(connection)
    }

    /// One request on its own stream: write the frame, finish, read the response frame.
    async fn exchange(
        &self,
        connection: &quinn::Connection,
        slot: &PeerSlot,
        frame: &[u8],
    ) -> Result<Resp, TransportError> {
        let peer = &slot.node;
        let stream_error = |reason: String| TransportError::Stream {
            peer: peer.clone(),
            reason,
        };
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|error| stream_error(error.to_string()))?;
        match send.write_all(frame).await {
            Ok(()) => {}
            Err(quinn::WriteError::Stopped(code)) => {
                return Err(TransportError::Refused {
                    peer: peer.clone(),
                    reason: Refusal::from_code(code),
                })
            }
            Err(error) => return Err(stream_error(error.to_string())),
        }
        send.finish()
            .map_err(|error| stream_error(error.to_string()))?;
        RegionTraffic::add(&slot.traffic.bytes_sent, frame.len() as u64);
        match frame::read_frame_sized::<Resp>(&mut recv).await {
            Ok((response, bytes)) => {
                RegionTraffic::add(&slot.traffic.bytes_received, bytes as u64);
                Ok(response)
            }
            Err(ReadFrameError::Frame(error)) => {
                self.counters.bump(Counter::FramesRejected);
                Err(TransportError::Frame(error))
            }
            Err(ReadFrameError::Stream(quinn::ReadError::Reset(code))) => {
                Err(TransportError::Refused {
                    peer: peer.clone(),
                    reason: Refusal::from_code(code),
                })
            }
            Err(ReadFrameError::Stream(error)) => Err(stream_error(error.to_string())),
        }
    }
}

/// QUIC parameters shared by both directions; `peer_streams` is how many bidirectional
/// streams the other side may open at once.
fn quic_parameters(peer_streams: u32) -> quinn::TransportConfig {
    let mut parameters = quinn::TransportConfig::default();
    parameters
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(peer_streams))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
        .keep_alive_interval(Some(Duration::from_millis(KEEP_ALIVE_INTERVAL_MS)))
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
            IDLE_TIMEOUT_MS,
        ))));
    parameters
}

async fn sleep_unless_zero(delay: Duration) {
    // A zero delay returns at once there: no clock read, no system call.
    super::delay::sleep(delay).await;
}
