//! The addresses a node publishes for its listeners, as opposed to the ones it binds:
//! a node bound to `0.0.0.0:7000` behind an interface whose address is `10.0.0.5`
//! tells peers (gossip) and clients (`/v1/ring`, `/v1/status`) `10.0.0.5:7000`.
//!
//! It owns the rule that turns a bind address and an optional `--advertise-*` flag into
//! the address others dial, and refuses an address nobody can dial (0.0.0.0, `::`). It
//! never binds or resolves anything: the caller hands it the address it bound.

use std::fmt;
use std::net::SocketAddr;

/// A listener whose address the node publishes; its name is the flag's (`--quic`,
/// `--advertise-quic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Quic,
    Http,
    Resp,
}

impl fmt::Display for Listener {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Listener::Quic => "quic",
            Listener::Http => "http",
            Listener::Resp => "resp",
        })
    }
}

/// Why a node cannot publish an address for one of its listeners.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdvertiseError {
    #[error(
        "--{listener} {bind} listens on every interface, and {ip} is no address another \
         node or a client can dial: pass --advertise-{listener} IP:PORT with the address \
         this node is reached at (port 0 there means the bound port)",
        ip = bind.ip()
    )]
    UnspecifiedBind {
        listener: Listener,
        bind: SocketAddr,
    },
    #[error(
        "--advertise-{listener} {advertise}: {ip} is no address another node or a client \
         can dial; give the address this node is reached at",
        ip = advertise.ip()
    )]
    UnspecifiedAdvertise {
        listener: Listener,
        advertise: SocketAddr,
    },
    #[error("--advertise-{listener} {advertise} is given, but the node serves no {listener} listener (--{listener} off)")]
    NoListener {
        listener: Listener,
        advertise: SocketAddr,
    },
}

/// What the node advertises for each listener (`--advertise-quic`, `--advertise-http`,
/// `--advertise-resp`); `None` advertises the bound address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Advertise {
    pub quic: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub resp: Option<SocketAddr>,
}

impl Advertise {
    /// Checks every listener's rule against the addresses about to be bound, before
    /// anything binds, so a node that could not publish its addresses starts nothing.
    pub fn check(
        &self,
        quic: SocketAddr,
        http: SocketAddr,
        resp: Option<SocketAddr>,
    ) -> Result<(), AdvertiseError> {
        advertised(Listener::Quic, quic, self.quic)?;
        advertised(Listener::Http, http, self.http)?;
        match (resp, self.resp) {
            (Some(resp), advertise) => advertised(Listener::Resp, resp, advertise).map(drop),
            (None, Some(advertise)) => Err(AdvertiseError::NoListener {
                listener: Listener::Resp,
                advertise,
            }),
            (None, None) => Ok(()),
        }
    }
}

/// The address `listener` publishes, given the address it `bound` (its real port when
/// it asked for port 0) and its `--advertise-*` flag: the flag's address, its port 0
/// replaced by the bound port; without the flag, the bound address, unless that is
/// unspecified (0.0.0.0, `::`), which nobody can dial.
pub fn advertised(
    listener: Listener,
    bound: SocketAddr,
    advertise: Option<SocketAddr>,
) -> Result<SocketAddr, AdvertiseError> {
    let Some(advertise) = advertise else {
        if bound.ip().to_canonical().is_unspecified() {
            return Err(AdvertiseError::UnspecifiedBind {
                listener,
                bind: bound,
            });
        }
        return Ok(bound);
    };
    if advertise.ip().to_canonical().is_unspecified() {
        return Err(AdvertiseError::UnspecifiedAdvertise {
            listener,
            advertise,
        });
    }
    let port = match advertise.port() {
        0 => bound.port(),
        port => port,
    };
    Ok(SocketAddr::new(advertise.ip(), port))
}

#[cfg(test)]
mod tests;
