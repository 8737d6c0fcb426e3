//! The endpoint's UDP socket, counted: every send call (one `sendmsg`, possibly carrying
//! several datagrams with segmentation offload) and every datagram, in both directions.
//! These are what a message costs the kernel, so they show whether coalescing works:
//! datagrams and send calls per operation must fall as load grows.
//!
//! It wraps the socket quinn's tokio runtime makes and forwards every call unchanged.

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, UdpPoller};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// What crossed the socket since start.
#[derive(Debug, Default)]
pub(crate) struct WireCounters {
    send_calls: AtomicU64,
    datagrams_sent: AtomicU64,
    receive_calls: AtomicU64,
    datagrams_received: AtomicU64,
}

/// [`WireCounters`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireSnapshot {
    /// Calls that handed datagrams to the kernel (each one `sendmsg`).
    pub send_calls: u64,
    /// Datagrams sent (a send call with segmentation offload carries several).
    pub datagrams_sent: u64,
    /// Receive calls that returned datagrams (each one `recvmsg` or `recvmmsg`).
    pub receive_calls: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
}

impl WireCounters {
    pub(crate) fn snapshot(&self) -> WireSnapshot {
        WireSnapshot {
            send_calls: self.send_calls.load(Ordering::Relaxed),
            datagrams_sent: self.datagrams_sent.load(Ordering::Relaxed),
            receive_calls: self.receive_calls.load(Ordering::Relaxed),
            datagrams_received: self.datagrams_received.load(Ordering::Relaxed),
        }
    }
}

/// Datagrams in a buffer of `len` bytes cut every `segment` bytes (at least one).
pub(crate) fn datagrams_in(len: usize, segment: Option<usize>) -> u64 {
    match segment {
        Some(segment) if segment > 0 && len > segment => len.div_ceil(segment) as u64,
        _ => 1,
    }
}

#[derive(Debug)]
struct CountingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    counters: Arc<WireCounters>,
}

/// Binds `addr` as quinn would for a server endpoint, counting into `counters`.
pub(crate) fn bind(
    addr: SocketAddr,
    runtime: &Arc<dyn Runtime>,
    counters: Arc<WireCounters>,
) -> io::Result<Arc<dyn AsyncUdpSocket>> {
    let socket = std::net::UdpSocket::bind(addr)?;
    let inner = runtime.wrap_udp_socket(socket)?;
    Ok(Arc::new(CountingSocket { inner, counters }))
}

impl AsyncUdpSocket for CountingSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let result = self.inner.try_send(transmit);
        if result.is_ok() {
            let datagrams = datagrams_in(transmit.contents.len(), transmit.segment_size);
            self.counters.send_calls.fetch_add(1, Ordering::Relaxed);
            self.counters
                .datagrams_sent
                .fetch_add(datagrams, Ordering::Relaxed);
        }
        result
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let result = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(filled)) = &result {
            let datagrams: u64 = meta
                .iter()
                .take(*filled)
                .map(|meta| datagrams_in(meta.len, Some(meta.stride)))
                .sum();
            self.counters.receive_calls.fetch_add(1, Ordering::Relaxed);
            self.counters
                .datagrams_received
                .fetch_add(datagrams, Ordering::Relaxed);
        }
        result
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests;
