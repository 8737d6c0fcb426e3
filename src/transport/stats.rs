//! Transport counters: lock-free increments, a snapshot for readers, and a change signal
//! so tests and supervisors can wait for a count without polling.

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

/// A snapshot of a transport's counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Requests this node started (to peers or to itself).
    pub requests_sent: u64,
    /// Requests that returned an error (of any kind, timeouts included).
    pub requests_failed: u64,
    /// Requests that hit the request timeout.
    pub requests_timed_out: u64,
    /// Requests handed to the handler (from peers or from this node itself).
    pub requests_received: u64,
    /// Frames refused as garbage, oversized, truncated or undecodable (either direction).
    pub frames_rejected: u64,
    /// Requests whose sender id did not match the certificate of their connection.
    pub impersonations_rejected: u64,
    /// Outbound connections established.
    pub connections_opened: u64,
    /// Outbound connection attempts that failed (unreachable, certificate refused, ...).
    pub connect_failures: u64,
    /// Inbound connections that completed the mutual TLS handshake.
    pub connections_accepted: u64,
    /// Inbound connections that failed the handshake (wrong CA, ALPN, no certificate).
    pub connections_refused: u64,
    /// Inbound connections turned away because CONNECTIONS_MAX were being served.
    pub connections_overloaded: u64,
    /// Messages lost, duplicated on purpose by an injected fault plan (`--chaos`).
    pub faults_injected: u64,
    /// Inbound handshakes started (each held a handshake slot, not a connection slot).
    pub handshakes_started: u64,
    /// Inbound handshakes dropped because they did not complete within
    /// HANDSHAKE_TIMEOUT_MS.
    pub handshakes_timed_out: u64,
    /// Connection attempts answered with a QUIC Retry (address validation) because more
    /// than HANDSHAKES_BEFORE_RETRY handshakes were in progress.
    pub handshakes_retried: u64,
    /// Connection attempts refused because HANDSHAKES_IN_PROGRESS_MAX handshakes were in
    /// progress.
    pub handshakes_refused: u64,
    /// Channels (one long-lived stream carrying many requests) opened to peers.
    pub channels_opened: u64,
    /// Channels a peer refused or did not answer (its requests then take a stream each).
    pub channels_refused: u64,
}

/// This node's requests to the peers of one region, and what they cost on the wire
/// (frames as encoded; QUIC and TLS overhead not counted).
#[derive(Debug, Default)]
pub struct RegionTraffic {
    pub requests: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
    pub bytes_sent: std::sync::atomic::AtomicU64,
    pub bytes_received: std::sync::atomic::AtomicU64,
    pub connect_failures: std::sync::atomic::AtomicU64,
}

/// `RegionTraffic` as read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegionTrafficSnapshot {
    pub requests: u64,
    pub failures: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub connect_failures: u64,
}

impl RegionTraffic {
    pub(crate) fn add(counter: &std::sync::atomic::AtomicU64, amount: u64) {
        counter.fetch_add(amount, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> RegionTrafficSnapshot {
        let load = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        RegionTrafficSnapshot {
            requests: load(&self.requests),
            failures: load(&self.failures),
            bytes_sent: load(&self.bytes_sent),
            bytes_received: load(&self.bytes_received),
            connect_failures: load(&self.connect_failures),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    RequestsSent,
    RequestsFailed,
    RequestsTimedOut,
    RequestsReceived,
    FramesRejected,
    ImpersonationsRejected,
    ConnectionsOpened,
    ConnectFailures,
    ConnectionsAccepted,
    ConnectionsRefused,
    ConnectionsOverloaded,
    FaultsInjected,
    HandshakesStarted,
    HandshakesTimedOut,
    HandshakesRetried,
    HandshakesRefused,
    ChannelsOpened,
    ChannelsRefused,
}

const COUNTERS: usize = 18;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    values: [AtomicU64; COUNTERS],
    changed: Notify,
}

impl Counters {
    pub(crate) fn bump(&self, counter: Counter) {
        self.values[counter as usize].fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    pub(crate) fn snapshot(&self) -> TransportStats {
        let get = |counter: Counter| self.values[counter as usize].load(Ordering::Relaxed);
        TransportStats {
            requests_sent: get(Counter::RequestsSent),
            requests_failed: get(Counter::RequestsFailed),
            requests_timed_out: get(Counter::RequestsTimedOut),
            requests_received: get(Counter::RequestsReceived),
            frames_rejected: get(Counter::FramesRejected),
            impersonations_rejected: get(Counter::ImpersonationsRejected),
            connections_opened: get(Counter::ConnectionsOpened),
            connect_failures: get(Counter::ConnectFailures),
            connections_accepted: get(Counter::ConnectionsAccepted),
            connections_refused: get(Counter::ConnectionsRefused),
            connections_overloaded: get(Counter::ConnectionsOverloaded),
            faults_injected: get(Counter::FaultsInjected),
            handshakes_started: get(Counter::HandshakesStarted),
            handshakes_timed_out: get(Counter::HandshakesTimedOut),
            handshakes_retried: get(Counter::HandshakesRetried),
            handshakes_refused: get(Counter::HandshakesRefused),
            channels_opened: get(Counter::ChannelsOpened),
            channels_refused: get(Counter::ChannelsRefused),
        }
    }

    /// Resolves once `condition` holds for the counters; callers bound it with a timeout.
    pub(crate) async fn wait_until(&self, condition: impl Fn(&TransportStats) -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before checking, so a bump between check and await is not lost.
            notified.as_mut().enable();
            if condition(&self.snapshot()) {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests;
