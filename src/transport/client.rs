//! The requesting side and the transport handle: endpoint setup, the address book, the
//! per-peer connection cache, WAN delay, and one stream per request.
//!
//! Concurrent first requests to a peer share one connection (the slot's async mutex is
//! held while connecting); a connection found closed is replaced on the next request,
//! and a request is never retried here (the caller decides, knowing idempotence).

use super::channel::{self, Channel, Reply, CHANNEL_FRAME_BYTES_MAX, ID_BYTES};
use super::faults::{Fate, FaultPlan, FaultPlanError, SharedFaults};
use super::frame::{self, EnvelopeRef, ReadFrameError};
use super::server::{self, ServerContext, ServerLimits};
use super::socket::{self, WireCounters, WireSnapshot};
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
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How long requests to a peer that refused a channel take a stream each before a
/// channel is tried again.
const CHANNEL_RETRY_MS: u64 = 10_000;

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
    /// Send calls and datagrams through the endpoint's socket.
    wire: Arc<WireCounters>,
    /// Whether requests to peers ride channels (else one stream each).
    channels: bool,
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
    link: tokio::sync::Mutex<Option<Link>>,
}

/// A cached connection to a peer and its channel.
#[derive(Clone)]
struct Link {
    connection: quinn::Connection,
    channel: ChannelState,
}

#[derive(Clone)]
enum ChannelState {
    Open(Arc<Channel>),
    /// The peer refused a channel (a node without them, or at its limit): requests take
    /// a stream each until then, when a channel is tried again.
    Refused {
        until: Instant,
    },
    /// Channels are turned off on this node (`CARTWHEEL_PEER_CHANNELS=off`).
    Off,
}

impl Link {
    /// The channel to send a frame of `body_bytes` on, if any.
    fn channel(&self, body_bytes: usize) -> Option<&Channel> {
        match &self.channel {
            ChannelState::Open(channel) if body_bytes <= CHANNEL_FRAME_BYTES_MAX => Some(channel),
            _ => None,
        }
    }

    /// Whether the channel should be (re)opened before the next request.
    fn wants_channel(&self) -> bool {
        match &self.channel {
            ChannelState::Open(channel) => channel.failed(),
            ChannelState::Refused { until } => *until <= Instant::now(),
            ChannelState::Off => false,
        }
    }
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
        let wire = Arc::new(WireCounters::default());
        let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
        let socket = socket::bind(config.bind, &runtime, wire.clone()).map_err(bind_error)?;
        let mut endpoint = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            Some(server_config),
            socket,
            runtime,
        )
        .map_err(bind_error)?;
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
                wire,
                channels: channels_enabled(),
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
            link: tokio::sync::Mutex::new(None),
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

    /// Send calls and datagrams through this node's socket since start.
    pub fn wire(&self) -> WireSnapshot {
        self.inner.wire.snapshot()
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
        // Room for a channel record's id before the frame, so one buffer serves both.
        let frame = frame::encode_after(
            ID_BYTES,
            &EnvelopeRef {
                from: &self.node,
                from_region: &self.region,
                body: request,
            },
        )?;
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
        let link = self.link(slot).await?;
        if fate.duplicated {
            self.counters.bump(Counter::FaultsInjected);
            let _ = self.exchange(&link, slot, frame.clone()).await;
        }
        let response = self.exchange(&link, slot, frame).await?;
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

    /// The cached link to `slot`, or a new one; its channel reopened if it failed. The
    /// slot lock is held while connecting so concurrent first requests share a single
    /// handshake (and a single channel).
    async fn link(&self, slot: &PeerSlot) -> Result<Link, TransportError> {
        let mut cached = slot.link.lock().await;
        if let Some(link) = cached.as_mut() {
            if link.connection.close_reason().is_none() {
                if link.wants_channel() {
                    link.channel = self.open_channel(&link.connection).await;
                }
                return Ok(link.clone());
            }
            tracing::debug!(peer = %slot.node, "cached connection closed; reconnecting");
        }
        *cached = None;
        let connection = self.connect(slot).await?;
        let channel = self.open_channel(&connection).await;
        let link = Link {
            connection,
            channel,
        };
        *cached = Some(link.clone());
        Ok(link)
    }

    /// Opens a channel on `connection`: the preamble out, its echo back (within the
    /// request timeout). A refusal or a failure leaves the connection to streams for a
    /// while.
    async fn open_channel(&self, connection: &quinn::Connection) -> ChannelState {
        if !self.channels {
            return ChannelState::Off;
        }
        let opening = async {
            let (mut send, mut recv) = connection.open_bi().await.ok()?;
            send.write_all(&channel::MAGIC).await.ok()?;
            let echo = frame::read_prefix(&mut recv).await.ok()?;
            (echo == channel::MAGIC).then(|| Channel::start(send, recv))
        };
        match tokio::time::timeout(self.request_timeout, opening).await {
            Ok(Some(channel)) => {
                self.counters.bump(Counter::ChannelsOpened);
                ChannelState::Open(channel)
            }
            _ => {
                self.counters.bump(Counter::ChannelsRefused);
                tracing::debug!(node = %self.node, "peer refused a channel; one stream per request");
                ChannelState::Refused {
                    until: Instant::now() + Duration::from_millis(CHANNEL_RETRY_MS),
                }
            }
        }
    }

    /// A new connection to `slot`, its certificate's region checked.
    async fn connect(&self, slot: &PeerSlot) -> Result<quinn::Connection, TransportError> {
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
        Ok(connection)
    }

    /// One request: on the link's channel when it has one and the frame is small
    /// enough, else on its own stream. `frame` is encoded after `ID_BYTES` spare bytes.
    async fn exchange(
        &self,
        link: &Link,
        slot: &PeerSlot,
        frame: Vec<u8>,
    ) -> Result<Resp, TransportError> {
        let sent = frame.len() - ID_BYTES;
        let Some(channel) = link.channel(sent - frame::LENGTH_PREFIX_BYTES) else {
            return self
                .exchange_on_stream(&link.connection, slot, &frame[ID_BYTES..])
                .await;
        };
        let reply = channel.exchange(frame).await;
        RegionTraffic::add(&slot.traffic.bytes_sent, sent as u64);
        match reply {
            Reply::Body(body) => {
                let received = frame::LENGTH_PREFIX_BYTES + body.len();
                RegionTraffic::add(&slot.traffic.bytes_received, received as u64);
                frame::decode_body(&body).map_err(|error| {
                    self.counters.bump(Counter::FramesRejected);
                    TransportError::Frame(error)
                })
            }
            Reply::Refused(reason) => Err(TransportError::Refused {
                peer: slot.node.clone(),
                reason,
            }),
            Reply::Failed(reason) => Err(TransportError::Stream {
                peer: slot.node.clone(),
                reason,
            }),
        }
    }

    /// One request on its own stream: write the frame, finish, read the response frame.
    async fn exchange_on_stream(
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

/// Channels are on unless `CARTWHEEL_PEER_CHANNELS=off` (a switch for comparing the two
/// ways with one build; the serving side accepts channels either way).
fn channels_enabled() -> bool {
    std::env::var("CARTWHEEL_PEER_CHANNELS").map_or(true, |value| value != "off")
}

async fn sleep_unless_zero(delay: Duration) {
    // A zero delay returns at once there: no clock read, no system call.
    super::delay::sleep(delay).await;
}
