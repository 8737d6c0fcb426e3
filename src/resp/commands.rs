//! The connection commands (`PING`, `ECHO`, `HELLO`, `AUTH`, `SELECT`, `CLIENT`,
//! `COMMAND`, `INFO`, `QUIT`, `RESET`, `DBSIZE`) with Redis's reply shapes, the
//! authentication gate, and the dispatch of every other command to the node's
//! [`Keyspace`].
//!
//! It owns which command is answered where and the wording of their errors. It never
//! reads or writes a socket (the server does) and never touches the store (the
//! keyspace does); a command it refuses gets a clear `-ERR` naming it, never silence.

use super::codec::Args;
use super::connection::{Command, ConnectionState, Keyspace};
use super::info::{self, ServerInfo};
use super::reply::{Protocol, Reply};
use crate::limits;
use bytes::Bytes;
use std::borrow::Cow;
use std::sync::Arc;

/// What a connection does after its answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Continue,
    /// `QUIT`: the answer is written, then the connection closes.
    Close,
}

/// The operator's password, kept as a hash: a check compares hashes of equal length
/// in constant time, so neither the password nor its length leaks through timing.
#[derive(Clone)]
pub struct Password([u8; 32]);

impl Password {
    pub fn new(text: &[u8]) -> Password {
        Password(*blake3::hash(text).as_bytes())
    }

    pub fn matches(&self, attempt: &[u8]) -> bool {
        attempt.len() <= limits::RESP_PASSWORD_BYTES_MAX
            && constant_time_eq::constant_time_eq(&self.0, blake3::hash(attempt).as_bytes())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Password(..)")
    }
}

/// Commands with no multi-region meaning here, refused by name.
const REFUSED: &[&str] = &[
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SSUBSCRIBE",
    "SUNSUBSCRIBE",
    "PUBLISH",
    "SPUBLISH",
    "PUBSUB",
    "MONITOR",
    "SYNC",
    "PSYNC",
    "REPLCONF",
    "REPLICAOF",
    "SLAVEOF",
    "WAIT",
    "WAITAOF",
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "SCRIPT",
    "FUNCTION",
    "FCALL",
    "FCALL_RO",
    "BLPOP",
    "BRPOP",
    "BLMOVE",
    "BZPOPMIN",
    "BZPOPMAX",
    "BLMPOP",
    "BZMPOP",
    "XREAD",
    "XREADGROUP",
    "CLUSTER",
    "READONLY",
    "READWRITE",
    "ASKING",
    "SWAPDB",
    "MOVE",
    "FLUSHALL",
    "FLUSHDB",
    "SHUTDOWN",
    "DEBUG",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
];

/// The data commands the issue names; without a keyspace they are answered that
/// this node serves no data yet, rather than "unknown".
const DATA: &[&str] = &[
    "GET",
    "SET",
    "SETEX",
    "PSETEX",
    "SETNX",
    "GETDEL",
    "GETEX",
    "MGET",
    "MSET",
    "INCR",
    "INCRBY",
    "DECR",
    "DECRBY",
    "DEL",
    "UNLINK",
    "EXISTS",
    "TYPE",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "PERSIST",
    "TTL",
    "PTTL",
    "RENAME",
    "SCAN",
    "HSET",
    "HMSET",
    "HGET",
    "HMGET",
    "HGETALL",
    "HDEL",
    "HEXISTS",
    "HLEN",
    "HKEYS",
    "HVALS",
    "HINCRBY",
    "CARTWHEEL",
];

/// Data commands that name several keys or none, or change the connection: in a
/// pipeline they run alone. Every other data command names one key (its first
/// argument), reads the connection's levels and changes nothing else of it, so a
/// pipeline's requests of those on distinct keys may run at once (a command added to
/// `DATA` that is not such belongs here).
const RUN_ALONE: &[&str] = &["MGET", "MSET", "RENAME", "SCAN", "CARTWHEEL"];

/// Commands of one key or many: of one key, they run beside others.
const ONE_KEY_WHEN_ALONE: &[&str] = &["DEL", "UNLINK", "EXISTS"];

/// The connection commands this module answers, for `COMMAND COUNT`, and those the
/// server answers through `super::pushes` (`CONFIG` and pub/sub).
pub const CONNECTION: &[&str] = &[
    "PING",
    "ECHO",
    "HELLO",
    "AUTH",
    "SELECT",
    "CLIENT",
    "COMMAND",
    "INFO",
    "QUIT",
    "RESET",
    "DBSIZE",
    "CONFIG",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "PSUBSCRIBE",
    "PUNSUBSCRIBE",
];

/// Commands answered before `AUTH` when a password is set.
const BEFORE_AUTH: &[&str] = &["AUTH", "HELLO", "PING", "QUIT", "RESET"];

/// The node's command table: connection commands here, data commands to the keyspace.
#[derive(Clone)]
pub struct Commands {
    pub password: Option<Password>,
    pub keyspace: Option<Arc<dyn Keyspace>>,
    pub server: ServerInfo,
}

impl Commands {
    /// Answers one request (`args` is never empty: the decoder drops empty ones).
    pub async fn execute(&self, state: &mut ConnectionState, args: Args) -> (Reply, After) {
        let Some(first) = args.first() else {
            return (Reply::err("empty command"), After::Continue);
        };
        let name = upper_case_name(first);
        if !state.authenticated && !BEFORE_AUTH.contains(&&*name) {
            return (
                Reply::Error("NOAUTH Authentication required.".to_string()),
                After::Continue,
            );
        }
        let reply = match &*name {
            "QUIT" => return (Reply::ok(), After::Close),
            "PING" => ping(&args),
            "ECHO" => match args.as_slice() {
                [_, message] => Reply::Bulk(message.clone()),
                _ => Reply::wrong_arity("echo"),
            },
            "AUTH" => self.auth(state, &args),
            "HELLO" => self.hello(state, &args),
            "SELECT" => select(&args),
            "CLIENT" => client(state, &args),
            "COMMAND" => command(&args),
            "RESET" => self.reset(state),
            // With a keyspace, a count of the cluster's keys (a scan); without, none.
            "DBSIZE" if self.keyspace.is_some() => {
                return (self.data(state, name, args).await, After::Continue)
            }
            "DBSIZE" => match args.len() {
                1 => Reply::Integer(0),
                _ => Reply::wrong_arity("dbsize"),
            },
            "INFO" => {
                let keys = self.size().await;
                info::info(&self.server, state.protocol, keys, &args[1..])
            }
            refused if REFUSED.contains(&refused) => Reply::err(format!(
                "'{refused}' is not supported by cartwheel: transactions, publishing, scripts, \
                 blocking and server administration commands have no multi-region meaning here"
            )),
            _ => return (self.data(state, name, args).await, After::Continue),
        };
        (reply, After::Continue)
    }

    /// The key of a request that may run beside the other requests of a pipeline on
    /// other keys: a data command of one key, of an authenticated connection, with a
    /// keyspace to serve it. Requests on one key, and every other request, keep their
    /// order (the server runs them one after another).
    pub fn runs_beside<'a>(&self, state: &ConnectionState, args: &'a [Bytes]) -> Option<&'a Bytes> {
        if !state.authenticated || self.keyspace.is_none() {
            return None;
        }
        let (name, key) = (args.first()?, args.get(1)?);
        let listed = |names: &[&str]| {
            names
                .iter()
                .any(|listed| listed.as_bytes().eq_ignore_ascii_case(name))
        };
        let one_key = !listed(RUN_ALONE) && (args.len() == 2 || !listed(ONE_KEY_WHEN_ALONE));
        (listed(DATA) && one_key).then_some(key)
    }

    async fn size(&self) -> Option<u64> {
        match &self.keyspace {
            Some(keyspace) => keyspace.size().await,
            None => Some(0),
        }
    }

    async fn data(
        &self,
        state: &mut ConnectionState,
        name: Cow<'static, str>,
        args: Args,
    ) -> Reply {
        match &self.keyspace {
            Some(keyspace) => keyspace.execute(state, Command::new(name, args)).await,
            None if DATA.contains(&&*name) => Reply::err(format!(
                "'{name}' is not served yet: this node has no keyspace attached"
            )),
            None => Reply::unknown_command(&args),
        }
    }

    /// `AUTH [user] password`; the only user is `default`, as in Redis without ACLs.
    fn auth(&self, state: &mut ConnectionState, args: &[Bytes]) -> Reply {
        let (user, password) = match args {
            [_, password] => (None, password),
            [_, user, password] => (Some(user), password),
            _ => return Reply::wrong_arity("auth"),
        };
        let Some(expected) = &self.password else {
            return Reply::err(
                "AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?",
            );
        };
        if check(expected, user, password) {
            state.authenticated = true;
            Reply::ok()
        } else {
            wrong_password()
        }
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`: authenticates, names and
    /// switches the protocol at once, then answers the server's map.
    fn hello(&self, state: &mut ConnectionState, args: &[Bytes]) -> Reply {
        let mut protocol = state.protocol;
        if let Some(version) = args.get(1) {
            protocol = match super::codec::parse_integer(version) {
                Some(2) => Protocol::Resp2,
                Some(3) => Protocol::Resp3,
                Some(_) => return Reply::Error("NOPROTO unsupported protocol version".to_string()),
                None => return Reply::err("Protocol version is not an integer or out of range"),
            };
        }
        let mut authenticated = state.authenticated;
        let mut name = None;
        let mut rest = args.iter().skip(2);
        while let Some(option) = rest.next() {
            if option.eq_ignore_ascii_case(b"AUTH") {
                let (Some(user), Some(password)) = (rest.next(), rest.next()) else {
                    return Reply::err(syntax_error());
                };
                match &self.password {
                    Some(expected) if check(expected, Some(user), password) => authenticated = true,
                    // Redis answers AUTH without a configured password the same way.
                    _ if self.password.is_none() => authenticated = true,
                    _ => return wrong_password(),
                }
            } else if option.eq_ignore_ascii_case(b"SETNAME") {
                let Some(given) = rest.next() else {
                    return Reply::err(syntax_error());
                };
                if let Err(error) = valid_name(given) {
                    return error;
                }
                name = Some(given.clone());
            } else {
                return Reply::err(syntax_error());
            }
        }
        if !authenticated {
            return Reply::Error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise \
                 the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the \
                 client and select the RESP protocol version at the same time"
                    .to_string(),
            );
        }
        state.authenticated = true;
        state.protocol = protocol;
        if name.is_some() {
            state.name = name;
        }
        info::hello_map(&self.server, state)
    }

    /// `RESET`: the connection as it was when it opened (but its id).
    fn reset(&self, state: &mut ConnectionState) -> Reply {
        *state = ConnectionState::new(state.id, state.peer, self.password.is_none());
        Reply::Simple(Cow::Borrowed("RESET"))
    }
}

/// A command's name in upper case: the table's own spelling of a name it lists (no
/// allocation, whatever case the client wrote), a copy of any other.
fn upper_case_name(name: &[u8]) -> Cow<'static, str> {
    let listed = [DATA, CONNECTION, REFUSED]
        .into_iter()
        .flatten()
        .find(|listed| listed.as_bytes().eq_ignore_ascii_case(name));
    match listed {
        Some(listed) => Cow::Borrowed(listed),
        None => Cow::Owned(String::from_utf8_lossy(name).to_ascii_uppercase()),
    }
}

fn check(expected: &Password, user: Option<&Bytes>, password: &[u8]) -> bool {
    let default_user = user.is_none_or(|user| user.as_ref() == b"default");
    // Checked even for another user, so the answer takes the same time.
    expected.matches(password) && default_user
}

fn wrong_password() -> Reply {
    Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".to_string())
}

fn syntax_error() -> &'static str {
    "syntax error"
}

fn ping(args: &[Bytes]) -> Reply {
    match args {
        [_] => Reply::Simple(Cow::Borrowed("PONG")),
        [_, message] => Reply::Bulk(message.clone()),
        _ => Reply::wrong_arity("ping"),
    }
}

fn select(args: &[Bytes]) -> Reply {
    let [_, index] = args else {
        return Reply::wrong_arity("select");
    };
    match super::codec::parse_integer(index) {
        Some(0) => Reply::ok(),
        Some(_) => Reply::err("DB index is out of range"),
        None => Reply::err("value is not an integer or out of range"),
    }
}

/// A client name: printable, no spaces, bounded, as Redis checks it.
fn valid_name(name: &[u8]) -> Result<(), Reply> {
    if name.len() > limits::RESP_CLIENT_NAME_BYTES_MAX {
        return Err(Reply::err(format!(
            "Client names are limited to {} bytes",
            limits::RESP_CLIENT_NAME_BYTES_MAX
        )));
    }
    if name.iter().any(|&byte| byte <= b' ' || byte > b'~') {
        return Err(Reply::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn client(state: &mut ConnectionState, args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::wrong_arity("client");
    };
    let sub = String::from_utf8_lossy(sub).to_ascii_uppercase();
    match (sub.as_str(), &args[2..]) {
        ("ID", []) => Reply::Integer(i64::try_from(state.id).unwrap_or(i64::MAX)),
        ("GETNAME", []) => state.name.clone().map_or(Reply::Null, Reply::Bulk),
        ("SETNAME", [name]) => match valid_name(name) {
            Ok(()) => {
                // An empty name clears it, as in Redis.
                state.name = (!name.is_empty()).then(|| name.clone());
                Reply::ok()
            }
            Err(error) => error,
        },
        ("SETINFO", [attribute, value]) => {
            if let Err(error) = valid_name(value) {
                return error;
            }
            if attribute.eq_ignore_ascii_case(b"LIB-NAME") {
                state.library_name = Some(value.clone());
            } else if attribute.eq_ignore_ascii_case(b"LIB-VER") {
                state.library_version = Some(value.clone());
            } else {
                return Reply::err(format!(
                    "Unrecognized option '{}'",
                    String::from_utf8_lossy(attribute)
                ));
            }
            Reply::ok()
        }
        ("INFO", []) => Reply::Verbatim {
            format: *b"txt",
            text: Bytes::from(info::client_line(state)),
        },
        ("ID" | "GETNAME" | "SETNAME" | "SETINFO" | "INFO", _) => Reply::err(format!(
            "wrong number of arguments for 'client|{}' command",
            sub.to_ascii_lowercase()
        )),
        _ => Reply::err(format!(
            "unknown subcommand '{}'. Try CLIENT HELP.",
            sub.chars().take(128).collect::<String>()
        )),
    }
}

/// `COMMAND`: minimal answers that redis-cli and client libraries accept (they use it
/// for hints only): no command documentation, the count of commands answered here.
fn command(args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(Vec::new());
    };
    let sub = String::from_utf8_lossy(sub).to_ascii_uppercase();
    match sub.as_str() {
        "COUNT" => Reply::Integer((CONNECTION.len() + DATA.len()) as i64),
        "DOCS" => Reply::Map(Vec::new()),
        "INFO" => Reply::Array(args[2..].iter().map(|_| Reply::NullArray).collect()),
        "LIST" => Reply::Array(
            CONNECTION
                .iter()
                .chain(DATA)
                .map(|name| Reply::bulk(name.to_ascii_lowercase()))
                .collect(),
        ),
        _ => Reply::err(format!(
            "unknown subcommand '{}'. Try COMMAND HELP.",
            sub.chars().take(128).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests;
