//! The texts and maps that describe the server to a client: `HELLO`'s map, `INFO`'s
//! sections, `CLIENT INFO`'s line. Shapes and field names are Redis's, so clients that
//! parse them (redis-py reads `redis_version`, redis-cli the keyspace line) work.
//! It only formats: every figure comes from its caller.

use super::connection::ConnectionState;
use super::reply::{Protocol, Reply};
use bytes::Bytes;

/// The `redis_version` the node reports (`HELLO`, `INFO`): clients pick features by
/// it, and cartwheel answers the commands of Redis 7.4 that it serves as 7.4 does.
/// 7.4: redis-py turns its client-side cache on only against 7.4 or later, and cartwheel
/// serves the client tracking that cache relies on.
pub const REDIS_VERSION: &str = "7.4.0";

/// Who this node is, for `HELLO` and `INFO`.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    pub node: String,
    pub region: String,
    pub tcp_port: u16,
}

/// `HELLO`'s answer: the server map.
pub fn hello_map(server: &ServerInfo, state: &ConnectionState) -> Reply {
    let text = |value: &str| Reply::bulk(value.to_string());
    Reply::Map(vec![
        (text("server"), text("redis")),
        (text("version"), text(REDIS_VERSION)),
        (text("proto"), Reply::Integer(state.protocol.number())),
        (
            text("id"),
            Reply::Integer(i64::try_from(state.id).unwrap_or(i64::MAX)),
        ),
        (text("mode"), text("standalone")),
        (text("role"), text("master")),
        (text("modules"), Reply::Array(Vec::new())),
        (text("cartwheel_node"), text(&server.node)),
    ])
}

/// `INFO [section ...]`: `server` and `keyspace` (all of them by default, and for
/// `all`, `everything` or `default`); a section it does not have is left out, as Redis
/// leaves out unknown ones.
pub fn info(
    server: &ServerInfo,
    protocol: Protocol,
    keys: Option<u64>,
    sections: &[Bytes],
) -> Reply {
    let wants = |name: &str| {
        sections.is_empty()
            || sections.iter().any(|section| {
                section.eq_ignore_ascii_case(name.as_bytes())
                    || section.eq_ignore_ascii_case(b"all")
                    || section.eq_ignore_ascii_case(b"everything")
                    || section.eq_ignore_ascii_case(b"default")
            })
    };
    let mut text = String::new();
    if wants("server") {
        text.push_str(&server_section(server));
    }
    if wants("keyspace") {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str("# Keyspace\r\n");
        if let Some(keys) = keys.filter(|keys| *keys > 0) {
            text.push_str(&format!("db0:keys={keys},expires=0,avg_ttl=0\r\n"));
        }
    }
    match protocol {
        Protocol::Resp3 => Reply::Verbatim {
            format: *b"txt",
            text: Bytes::from(text),
        },
        Protocol::Resp2 => Reply::bulk(text),
    }
}

fn server_section(server: &ServerInfo) -> String {
    let lines = [
        ("redis_version", REDIS_VERSION.to_string()),
        ("redis_mode", "standalone".to_string()),
        ("os", std::env::consts::OS.to_string()),
        ("arch_bits", (usize::BITS).to_string()),
        ("process_id", std::process::id().to_string()),
        ("tcp_port", server.tcp_port.to_string()),
        ("cartwheel_version", env!("CARGO_PKG_VERSION").to_string()),
        ("cartwheel_node", server.node.clone()),
        ("cartwheel_region", server.region.clone()),
    ];
    let mut text = String::from("# Server\r\n");
    for (name, value) in lines {
        text.push_str(&format!("{name}:{value}\r\n"));
    }
    text
}

/// `CLIENT INFO`'s line (the fields Redis gives that cartwheel knows).
pub fn client_line(state: &ConnectionState) -> String {
    let lossy = |bytes: &Option<Bytes>| {
        bytes
            .as_ref()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default()
    };
    format!(
        "id={} addr={} name={} db=0 resp={} lib-name={} lib-ver={}\n",
        state.id,
        state.peer,
        lossy(&state.name),
        state.protocol.number(),
        lossy(&state.library_name),
        lossy(&state.library_version),
    )
}
