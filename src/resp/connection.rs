//! What a RESP connection remembers between commands, and the seam through which the
//! node plugs its data commands in ([`Keyspace`]).
//!
//! It owns no I/O and decides no command: the server keeps one [`ConnectionState`] per
//! connection, the connection commands change it, and the keyspace reads it (the
//! protocol to answer in, the levels a `CARTWHEEL LEVEL` command chose).

use super::codec::Args;
use super::reply::{Protocol, Reply};
use crate::coordinator::quorum::Level;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::borrow::Cow;
use std::net::SocketAddr;

/// One connection's state.
#[derive(Debug, Clone)]
pub struct ConnectionState {
    /// Unique among this node's connections since it started (`CLIENT ID`).
    pub id: u64,
    pub peer: SocketAddr,
    /// RESP2 until `HELLO 3`.
    pub protocol: Protocol,
    /// `CLIENT SETNAME`, `HELLO ... SETNAME`.
    pub name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-NAME` and `LIB-VER`.
    pub library_name: Option<Bytes>,
    pub library_version: Option<Bytes>,
    /// True once `AUTH` succeeded, or from the start when no password is set.
    pub authenticated: bool,
    /// The read and write levels this connection chose (`None`: the keyspace's
    /// defaults, the `user` class policy). `RESET` clears them.
    pub read: Option<Level>,
    pub write: Option<Level>,
}

impl ConnectionState {
    pub fn new(id: u64, peer: SocketAddr, authenticated: bool) -> ConnectionState {
        ConnectionState {
            id,
            peer,
            protocol: Protocol::Resp2,
            name: None,
            library_name: None,
            library_version: None,
            authenticated,
            read: None,
            write: None,
        }
    }
}

/// One data command as the edge hands it on: the name in upper case, and the request
/// as the decoder gave it (the name first, as the client wrote it), which the command
/// owns so that it may run beside its pipeline's others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command table's spelling of a name it lists (borrowed: no allocation), a
    /// copy in upper case of any other.
    pub name: Cow<'static, str>,
    request: Args,
}

impl Command {
    /// `request` holds the name first.
    pub fn new(name: Cow<'static, str>, request: Args) -> Command {
        assert!(!request.is_empty(), "a command's request holds its name");
        Command { name, request }
    }

    /// The arguments, without the name.
    pub fn args(&self) -> &[Bytes] {
        &self.request[1..]
    }

    /// The command with its name in upper case first, for error texts.
    pub fn words(&self) -> Vec<Bytes> {
        let mut words = Vec::with_capacity(self.request.len());
        words.push(Bytes::from(self.name.clone().into_owned()));
        words.extend(self.args().iter().cloned());
        words
    }
}

/// The node's data commands (strings, keys, hashes, `CARTWHEEL`), plugged into the edge.
///
/// The edge answers the connection commands itself (`PING`, `AUTH`, `HELLO`, `SELECT`,
/// `CLIENT`, `COMMAND`, `INFO`, `QUIT`, `RESET`), refuses the ones cartwheel does not
/// serve (`MULTI`, `PUBLISH`, scripts), and hands every other command of an
/// authenticated connection to [`Keyspace::execute`], in the order the client sent
/// them; a command the keyspace does not know it answers with
/// [`Reply::unknown_command`]. The reply is encoded for `connection.protocol`.
pub trait Keyspace: Send + Sync + 'static {
    /// Runs one command. It may change the connection's levels (`CARTWHEEL LEVEL`).
    fn execute<'a>(
        &'a self,
        connection: &'a mut ConnectionState,
        command: Command,
    ) -> BoxFuture<'a, Reply>;

    /// Keys this node counts for `DBSIZE` and `INFO keyspace`; `None` when it cannot
    /// tell now.
    fn size(&self) -> BoxFuture<'_, Option<u64>>;
}
