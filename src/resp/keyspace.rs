//! The node's data commands over RESP: strings, keys, hashes, `SCAN` and `DBSIZE`, and
//! `CARTWHEEL LEVEL`,
//! served from the replicated store through the node's `Coordinator`.
//!
//! It owns the translation of a command into reads and `RedisOp`s of `Class::Resp` keys
//! and of their results into Redis's replies; the semantics of each type are
//! `crdt::redis`'s, the replication the coordinator's. It is the one part of the RESP
//! edge that touches the coordinator; it never touches storage, sockets or the wire
//! encoding. Reads run at the connection's read level, writes at its write level (by
//! default the `user` class's); a level that cannot be met answers `-TRYAGAIN`, which
//! Redis clients (the `redis` crate among them) retry after a wait.
//!
//! Conditions (`SET NX|XX`, `SETNX`, `EXPIRE NX|XX|GT|LT`) are first checked on a read
//! at the connection's read level that repairs the replicas it found behind: a condition
//! that read finds unmet is answered without a write. Otherwise the replica that
//! applies the op checks it again on its own state (which that read repaired when it
//! was one of those asked), so a write is made only if both saw the condition met. A
//! write made concurrently in another region is seen by neither: two regions doing
//! `SET NX` on one key at once may both answer `OK`, and the key then converges on the
//! later write (hybrid clock, then actor) everywhere.

mod cursor;
pub(crate) mod glob;
mod hashes;
mod keys;
mod parse;
mod scan;
mod strings;

#[cfg(test)]
mod tests;

use super::connection::{Command, ConnectionState, Keyspace};
use super::reply::Reply;
use crate::config::ClassPolicy;
use crate::coordinator::quorum::Level;
use crate::coordinator::{Coordinator, CoordinatorError, Policy};
use crate::crdt::redis::{RedisOp, RedisOutcome, RedisValue, SetExpiry};
use crate::crdt::{Doc, DocOp};
use crate::limits;
use crate::object::{Class, Object, ObjectKey};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use std::sync::Arc;

/// Why a data command was not carried out. Each message is the error line the client
/// is sent, its code (`ERR`, `WRONGTYPE`, `TRYAGAIN`) first, in Redis's wording where
/// Redis has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyspaceError {
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(String),
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(String),
    #[error("ERR {0}")]
    Options(&'static str),
    #[error("ERR Unsupported option {0}")]
    UnsupportedOption(String),
    #[error("ERR the key is longer than {} bytes", limits::KEY_BYTES_MAX)]
    KeyTooLong,
    #[error(
        "ERR the reply would be larger than {} bytes",
        limits::RESP_MULTI_REPLY_BYTES_MAX
    )]
    ReplyTooLarge,
    /// The level cannot be met now (too few replicas answered, or in time, or the key
    /// has too few replicas for it): clients retry `TRYAGAIN`.
    #[error("TRYAGAIN {0}")]
    Unavailable(String),
    /// A replica's refusal whose text is Redis's own line (`WRONGTYPE ...`, `ERR ...`).
    #[error("{0}")]
    Refused(String),
    #[error("ERR {0}")]
    Other(String),
}

impl KeyspaceError {
    pub fn reply(self) -> Reply {
        Reply::Error(self.to_string())
    }

    /// A coordinator's failure as the client's error.
    pub fn of(error: CoordinatorError) -> KeyspaceError {
        match error {
            CoordinatorError::QuorumNotReached { .. }
            | CoordinatorError::Timeout { .. }
            | CoordinatorError::Level(_) => KeyspaceError::Unavailable(error.to_string()),
            CoordinatorError::Refused { message, .. }
                if message.starts_with("WRONGTYPE ") || message.starts_with("ERR ") =>
            {
                KeyspaceError::Refused(message)
            }
            CoordinatorError::Refused { message, .. } => KeyspaceError::Other(message),
        }
    }
}

/// What a data command answers, or why it failed.
pub type Answer = Result<Reply, KeyspaceError>;

/// The node's keyspace: RESP keys as `Class::Resp` objects of the replicated store.
pub struct StoreKeyspace {
    coordinator: Arc<Coordinator>,
    /// The default levels and policy (the `user` class's).
    class: ClassPolicy,
}

impl StoreKeyspace {
    pub fn new(coordinator: Arc<Coordinator>, class: ClassPolicy) -> StoreKeyspace {
        StoreKeyspace { coordinator, class }
    }

    /// The scope of one command: this keyspace at the connection's levels.
    fn scope(&self, connection: &ConnectionState) -> Scope<'_> {
        Scope {
            store: self,
            read: connection.read.unwrap_or(self.class.read),
            write: connection.write.unwrap_or(self.class.write),
        }
    }
}

impl Keyspace for StoreKeyspace {
    fn execute<'a>(
        &'a self,
        connection: &'a mut ConnectionState,
        command: Command,
    ) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            if command.name == "CARTWHEEL" {
                return cartwheel(connection, command.args()).unwrap_or_else(KeyspaceError::reply);
            }
            let scope = self.scope(connection);
            match scope.run(&command).await {
                Some(answer) => answer.unwrap_or_else(KeyspaceError::reply),
                None => Reply::unknown_command(&command.words()),
            }
        })
    }

    /// Not counted for `INFO`: the keys of a cluster live on many nodes, this node's
    /// share would mislead, and counting them all is a scan of the cluster, which only
    /// `DBSIZE` (served as a data command, `scan`) pays for.
    fn size(&self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async { None })
    }
}

/// One command's view of the keyspace: the levels it reads and writes at.
pub(crate) struct Scope<'a> {
    store: &'a StoreKeyspace,
    read: Level,
    write: Level,
}

impl Scope<'_> {
    /// Runs a data command; `None` for a command this keyspace does not serve.
    async fn run(&self, command: &Command) -> Option<Answer> {
        let args = command.args();
        if let Some(answer) = strings::run(self, &command.name, args).await {
            return Some(answer);
        }
        if let Some(answer) = keys::run(self, &command.name, args).await {
            return Some(answer);
        }
        if let Some(answer) = scan::run(self, &command.name, args).await {
            return Some(answer);
        }
        hashes::run(self, &command.name, args).await
    }

    /// This node's time now, in milliseconds since the epoch: what relative expiry
    /// times count from and what decides whether a key read has expired.
    fn now_ms(&self) -> u64 {
        self.store.coordinator.now().wall_ms
    }

    fn policy(&self, sync_repair: bool) -> Policy {
        Policy {
            sync_repair: sync_repair || self.store.class.policy.sync_repair,
            ..self.store.class.policy
        }
    }

    /// The key's merged value at the read level (empty when nothing is stored).
    async fn value(&self, key: &[u8]) -> Result<RedisValue, KeyspaceError> {
        self.value_with(key, false).await
    }

    /// `value`; with `repair`, the replicas that answered with less are repaired
    /// before it returns (what a condition is decided on).
    async fn value_with(&self, key: &[u8], repair: bool) -> Result<RedisValue, KeyspaceError> {
        let key = object_key(key)?;
        let read = self
            .store
            .coordinator
            .get_with(&key, self.read, self.policy(repair));
        match read.await.map_err(KeyspaceError::of)? {
            None => Ok(RedisValue::default()),
            Some(Object::Doc(Doc::Redis(value))) => Ok(value),
            Some(_) => Err(KeyspaceError::Other(
                "the key holds a record of another class".to_string(),
            )),
        }
    }

    /// The values of `keys` in order, at most `RESP_KEYS_IN_FLIGHT_MAX` read at once.
    async fn values(&self, keys: &[Bytes]) -> Vec<Result<RedisValue, KeyspaceError>> {
        // Owned keys: a closure over borrowed ones makes the future not `Send`
        // (its lifetime is not general enough for the boxed future).
        futures::stream::iter(keys.iter().cloned())
            .map(|key| async move { self.value(&key).await })
            .buffered(limits::RESP_KEYS_IN_FLIGHT_MAX)
            .collect()
            .await
    }

    /// Applies `op` to `key` at the write level; the outcome is the applying replica's.
    /// A command whose answer or effect depends on the value it changes (all but a
    /// blind `SET` and `RENAME`'s write) reads the key first, repairing, and is applied
    /// after that value (`apply_after`): the applying replica may have missed a write
    /// another node acknowledged.
    async fn apply(&self, key: &[u8], op: RedisOp) -> Result<RedisOutcome, KeyspaceError> {
        if reads_what_it_changes(&op) {
            let base = self.value_with(key, true).await?;
            return self.apply_after(key, base, op).await;
        }
        self.apply_doc(key, DocOp::Redis(op)).await
    }

    /// `apply` of a command that reads what it changes, after `base` (the value a
    /// repairing read at the read level returned) is merged into the applying replica:
    /// it then computes from at least what a quorum acknowledged.
    async fn apply_after(
        &self,
        key: &[u8],
        base: RedisValue,
        op: RedisOp,
    ) -> Result<RedisOutcome, KeyspaceError> {
        let base = Box::new(base);
        self.apply_doc(key, DocOp::RedisAfter { base, op }).await
    }

    async fn apply_doc(&self, key: &[u8], op: DocOp) -> Result<RedisOutcome, KeyspaceError> {
        let key = object_key(key)?;
        let applied =
            self.store
                .coordinator
                .apply_outcome(&key, op, self.write, self.policy(false));
        let (_, outcome) = applied.await.map_err(KeyspaceError::of)?;
        outcome.ok_or_else(|| {
            KeyspaceError::Other("the replica did not say what the command answers".to_string())
        })
    }

    /// `apply` of one op per key, at most `RESP_KEYS_IN_FLIGHT_MAX` at once; the
    /// outcomes in order.
    async fn apply_each(
        &self,
        ops: Vec<(Bytes, RedisOp)>,
    ) -> Vec<Result<RedisOutcome, KeyspaceError>> {
        futures::stream::iter(ops)
            .map(|(key, op)| async move { self.apply(&key, op).await })
            .buffered(limits::RESP_KEYS_IN_FLIGHT_MAX)
            .collect()
            .await
    }
}

/// The store's key of a RESP key.
fn object_key(key: &[u8]) -> Result<ObjectKey, KeyspaceError> {
    if key.len() > limits::KEY_BYTES_MAX {
        return Err(KeyspaceError::KeyTooLong);
    }
    Ok(ObjectKey::new(Class::Resp, key))
}

/// A refused op's outcome of a kind its command never gets: a replica of another
/// version answered.
fn unexpected(outcome: RedisOutcome) -> KeyspaceError {
    KeyspaceError::Other(format!("unexpected outcome {outcome:?}"))
}

/// The integer an outcome carries.
fn integer(outcome: Result<RedisOutcome, KeyspaceError>) -> Answer {
    match outcome? {
        RedisOutcome::Integer(value) => Ok(Reply::Integer(value)),
        other => Err(unexpected(other)),
    }
}

/// A bulk string, or nil.
fn bulk_or_null(value: Option<impl Into<Bytes>>) -> Reply {
    value.map_or(Reply::Null, |value| Reply::Bulk(value.into()))
}

/// Fails with the wrong-arity error unless `args` holds exactly `count` arguments.
fn exactly(name: &str, args: &[Bytes], count: usize) -> Result<(), KeyspaceError> {
    match args.len() == count {
        true => Ok(()),
        false => Err(KeyspaceError::Arity(name.to_ascii_lowercase())),
    }
}

/// Fails with the wrong-arity error unless `args` holds at least `count` arguments.
fn at_least(name: &str, args: &[Bytes], count: usize) -> Result<(), KeyspaceError> {
    match args.len() >= count {
        true => Ok(()),
        false => Err(KeyspaceError::Arity(name.to_ascii_lowercase())),
    }
}

/// `CARTWHEEL LEVEL read|write <level>`: sets this connection's read or write level.
fn cartwheel(connection: &mut ConnectionState, args: &[Bytes]) -> Answer {
    let [sub, which, level] = args else {
        return Err(KeyspaceError::Arity("cartwheel".to_string()));
    };
    if !sub.eq_ignore_ascii_case(b"LEVEL") {
        return Err(KeyspaceError::Other(format!(
            "unknown CARTWHEEL subcommand '{}': try CARTWHEEL LEVEL read|write <level>",
            String::from_utf8_lossy(sub)
        )));
    }
    let text = String::from_utf8_lossy(level).to_ascii_lowercase();
    let level: Level =
        text.parse()
            .map_err(|error: crate::coordinator::quorum::UnknownLevel| {
                KeyspaceError::Other(error.to_string())
            })?;
    if which.eq_ignore_ascii_case(b"read") {
        connection.read = Some(level);
    } else if which.eq_ignore_ascii_case(b"write") {
        connection.write = Some(level);
    } else {
        return Err(KeyspaceError::Other(format!(
            "CARTWHEEL LEVEL sets 'read' or 'write', not '{}'",
            String::from_utf8_lossy(which)
        )));
    }
    Ok(Reply::ok())
}

/// Whether `op`'s answer or effect depends on the value it changes: every op but a
/// `SET` with no condition, no `GET` and no `KEEPTTL`, and `RENAME`'s write.
fn reads_what_it_changes(op: &RedisOp) -> bool {
    !matches!(
        op,
        RedisOp::Set {
            condition: None,
            get: false,
            expiry: SetExpiry::Clear | SetExpiry::AtMs(_),
            ..
        } | RedisOp::Replace { .. }
    )
}
