//! The Redis protocol (RESP) edge of a node: a listener that speaks RESP2 and RESP3 to
//! the Redis clients session middleware already uses, so that pointing a Redis URL at
//! a node is the whole migration.
//!
//! It owns the wire (the bounded request decoder in [`codec`], the reply encoder in
//! [`reply`]), the connections ([`server`]: cap, budgets, timeouts, pipelining), the
//! connection commands and the authentication gate ([`commands`]), and the seam
//! through which the node plugs its data commands in ([`Keyspace`]), and TLS on the
//! listener ([`crate::config::EdgeTls`]). Only the keyspace ([`StoreKeyspace`]) reaches the store,
//! and only through the node's coordinator; nothing here touches storage or the HTTP
//! edge.

pub mod codec;
pub mod commands;
pub mod connection;
mod info;
pub mod keyspace;
pub mod notify;
pub mod pushes;
pub mod reply;
pub mod server;

pub use codec::Args;
pub use commands::{Commands, Password};
pub use connection::{Command, ConnectionState, Keyspace};
pub use info::{ServerInfo, REDIS_VERSION};
pub use keyspace::{KeyspaceError, StoreKeyspace};
pub use pushes::Notifications;
pub use reply::{Protocol, Reply};
pub use server::{serve, RespCounters, RespEdge, RespStats};

use crate::limits;
use std::net::SocketAddr;

/// Why the RESP edge cannot start as configured.
#[derive(Debug, thiserror::Error)]
pub enum RespConfigError {
    /// Without a password anyone who reaches the port reads and writes every key: only
    /// a loopback address is served so.
    #[error(
        "the RESP address {0} is not loopback (127.0.0.0/8 or ::1) and no password is set; \
         give one with --resp-password-file"
    )]
    PasswordNeeded(SocketAddr),
    #[error("the RESP password is empty")]
    EmptyPassword,
    #[error(
        "the RESP password is longer than {} bytes",
        limits::RESP_PASSWORD_BYTES_MAX
    )]
    PasswordTooLong,
}

/// Refuses to serve a non-loopback address without a password.
pub fn check_bind(addr: SocketAddr, password: Option<&Password>) -> Result<(), RespConfigError> {
    if password.is_none() && !addr.ip().to_canonical().is_loopback() {
        return Err(RespConfigError::PasswordNeeded(addr));
    }
    Ok(())
}

/// The password from a password file's text: the first line, without its line end.
pub fn password_from_file_text(text: &str) -> Result<Password, RespConfigError> {
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(RespConfigError::EmptyPassword);
    }
    if line.len() > limits::RESP_PASSWORD_BYTES_MAX {
        return Err(RespConfigError::PasswordTooLong);
    }
    Ok(Password::new(line.as_bytes()))
}

#[cfg(test)]
mod tests;
