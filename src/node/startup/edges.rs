//! The client edges of a starting node: the RESP listener and the HTTP API with the
//! state each group of routes reads.

use super::*;

/// Serves RESP on the listener bound to `addr` until the node stops; returns its
/// counters.
pub(super) fn spawn_resp(
    options: &NodeOptions,
    region: &Region,
    (coordinator, hub): (Arc<Coordinator>, Hub),
    addr: SocketAddr,
    listener: TcpListener,
    tasks: &mut JoinSet<()>,
    stopped: watch::Receiver<bool>,
) -> Arc<resp::RespStats> {
    let stats = Arc::new(resp::RespStats::default());
    let edge = resp::RespEdge {
        settings: options.settings.resp.clone(),
        commands: resp::Commands {
            password: options.resp_password.clone(),
            // RESP keys use the `user` class's levels and policy by default.
            keyspace: Some(Arc::new(resp::StoreKeyspace::new(
                coordinator,
                options.settings.session.user,
            ))),
            server: resp::ServerInfo {
                node: options.id.to_string(),
                region: region.to_string(),
                tcp_port: addr.port(),
            },
        },
        stats: stats.clone(),
        tls: options.resp_tls.clone(),
        pipelined: Arc::new(tokio::sync::Semaphore::new(
            limits::RESP_PIPELINED_IN_FLIGHT_MAX,
        )),
        hub: Some(hub),
        notifications: Default::default(),
    };
    tasks.spawn(resp::serve(listener, Arc::new(edge), stopped));
    stats
}

/// The HTTP listener the API serves, and the RESP edge its status shows.
pub(super) struct Listening {
    pub(super) http: TcpListener,
    pub(super) resp: Option<(SocketAddr, Arc<resp::RespStats>)>,
}

/// Serves the HTTP API on the bound listener until the node stops; each group of
/// routes gets only what its handlers use.
pub(super) fn spawn_api(
    options: &NodeOptions,
    core: &Core,
    workers: Workers,
    sessions: Option<Arc<SessionService>>,
    listening: Listening,
    tasks: &mut JoinSet<()>,
    stopped: watch::Receiver<bool>,
) {
    let settings = &options.settings;
    let admission = Admission::new(settings.request_timeout);
    let feeds = workers.feeds.clone();
    let status = Arc::new(status_state(
        settings,
        core,
        workers,
        sessions.clone(),
        admission.clone(),
        listening.resp,
    ));
    // Other nodes' `/v1/cluster` ask this node for the same figures over the transport.
    let source = status.clone();
    let _ = core
        .service
        .overview
        .set(Arc::new(move || api::overview(&source)));
    let api = Api {
        kv: KvState {
            admission: admission.clone(),
            coordinator: core.coordinator.clone(),
            contexts: options
                .session_keys
                .as_deref()
                .and_then(api::ContextKeys::new),
            read: settings.read,
            write: settings.write,
        },
        sessions: SessionState {
            admission: admission.clone(),
            sessions: sessions.clone(),
            admin_key: options.admin_key.clone(),
        },
        admin: AdminState {
            key: options.admin_key.clone(),
            chaos: options.chaos,
            me: core.me.node.clone(),
            ring: RingConfig {
                partitions: settings.topology.partitions,
                replicas_per_region: settings.topology.replicas_per_region(),
            },
            cluster: core.state.clone(),
            gossip: core.gossip.clone(),
            transport: core.transport.clone(),
            clock: core.clock.clone(),
        },
        status: status.clone(),
        feed: api::FeedState::new(
            feeds,
            admission.clone(),
            sessions.clone(),
            options.admin_key.clone(),
            settings.http.clone(),
            stopped.clone(),
        ),
        edge: EdgeParts {
            http: settings.http.clone(),
            stopped: stopped.clone(),
            stats: Default::default(),
            tls: options.http_tls.clone(),
        },
    };
    tasks.spawn(api::server::serve(listening.http, api, stopped));
}

/// What `/v1/status`, `/v1/roots` and `/v1/ring` read.
fn status_state(
    settings: &Settings,
    core: &Core,
    workers: Workers,
    sessions: Option<Arc<SessionService>>,
    admission: Arc<Admission>,
    resp: Option<(SocketAddr, Arc<resp::RespStats>)>,
) -> StatusState {
    let resp_counters = resp.as_ref().map(|(_, stats)| {
        let stats = stats.clone();
        Arc::new(move || serde_json::to_value(stats.counters()).unwrap_or_default())
            as Arc<dyn Fn() -> serde_json::Value + Send + Sync>
    });
    StatusState {
        me: core.me.clone(),
        resp: resp.map(|(addr, _)| addr),
        resp_counters,
        read: settings.read,
        write: settings.write,
        durability: settings.durability,
        cluster: core.state.clone(),
        gossip: core.gossip.clone(),
        storage: core.storage.clone(),
        transport: core.transport.clone(),
        replica: core.replica.clone(),
        coordinator: core.coordinator.stats.clone(),
        served: core.service.served.clone(),
        transfers: workers.transfers,
        hints: core.hints.clone(),
        repair: workers.repair,
        refused: core.service.refused.clone(),
        early: core.early.clone(),
        sessions: sessions.map(|sessions| sessions.stats.clone()),
        clock: core.clock.clone(),
        checks: level_checks(settings),
        admission,
        hub: workers.hub,
    }
}

/// The levels this node's classes read and write at (RESP keys use the `user`
/// class's), for `/v1/cluster` to check against the members held dead.
fn level_checks(settings: &Settings) -> Vec<LevelCheck> {
    let session = &settings.session;
    let check = |class, op, level, sloppy| LevelCheck {
        class,
        op,
        level,
        sloppy,
    };
    vec![
        check(Class::Kv, Op::Read, settings.read, settings.sloppy),
        check(Class::Kv, Op::Write, settings.write, settings.sloppy),
        check(
            Class::Auth,
            Op::Read,
            session.auth.read,
            session.auth.policy.sloppy,
        ),
        check(
            Class::Auth,
            Op::Write,
            session.auth_create,
            session.auth.policy.sloppy,
        ),
        check(
            Class::Auth,
            Op::Write,
            session.auth.write,
            session.auth.policy.sloppy,
        ),
        check(
            Class::User,
            Op::Read,
            session.user.read,
            session.user.policy.sloppy,
        ),
        check(
            Class::User,
            Op::Write,
            session.user.write,
            session.user.policy.sloppy,
        ),
    ]
}
