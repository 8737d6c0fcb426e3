//! Flags and validated settings of the client edge: the HTTP timeouts and the caps on
//! open client connections (`node`, `cluster up` and `sim` share them).

use super::{invalid, ConfigError};
use crate::limits;
use std::time::Duration;

#[derive(Clone, Debug, Default, clap::Args)]
pub struct HttpFlags {
    /// Time a client has to finish a request head once it started it (default 10000).
    #[arg(long, value_name = "MS")]
    pub http_header_timeout_ms: Option<u64>,
    /// Time a client has to send a whole request body (default 10000).
    #[arg(long, value_name = "MS")]
    pub http_body_timeout_ms: Option<u64>,
    /// A client connection with no request open and no byte moving is closed after
    /// this long (default 75000).
    #[arg(long, value_name = "MS")]
    pub http_idle_timeout_ms: Option<u64>,
    /// Time from a request's head to its answer (default 30000; then 503 `timeout`).
    #[arg(long, value_name = "MS")]
    pub http_request_deadline_ms: Option<u64>,
    /// A write to a client that makes no progress this long cuts it off (default 10000).
    #[arg(long, value_name = "MS")]
    pub http_write_timeout_ms: Option<u64>,
    /// Open client connections per node (default 10000).
    #[arg(long, value_name = "COUNT")]
    pub http_connections_max: Option<usize>,
    /// Open client connections per client IP address (default 1024).
    #[arg(long, value_name = "COUNT")]
    pub http_connections_per_address_max: Option<usize>,
}

impl HttpFlags {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut push =
            |name: &str, value: Option<String>| super::flags::push_flag(&mut args, name, value);
        let ms = |value: Option<u64>| value.map(|v| v.to_string());
        push("http-header-timeout-ms", ms(self.http_header_timeout_ms));
        push("http-body-timeout-ms", ms(self.http_body_timeout_ms));
        push("http-idle-timeout-ms", ms(self.http_idle_timeout_ms));
        push(
            "http-request-deadline-ms",
            ms(self.http_request_deadline_ms),
        );
        push("http-write-timeout-ms", ms(self.http_write_timeout_ms));
        let count = |value: Option<usize>| value.map(|v| v.to_string());
        push("http-connections-max", count(self.http_connections_max));
        push(
            "http-connections-per-address-max",
            count(self.http_connections_per_address_max),
        );
        args
    }
}

/// A client edge's timeout flag `--name` (`value` ms, else `default`), checked:
/// between 1 ms and `HTTP_TIMEOUT_MS_MAX` (the HTTP and RESP edges share the rule).
pub(super) fn edge_timeout(
    value: Option<u64>,
    default: u64,
    name: &str,
) -> Result<Duration, ConfigError> {
    let ms = value.unwrap_or(default);
    if ms == 0 || ms > limits::HTTP_TIMEOUT_MS_MAX {
        return Err(invalid(
            format!("--{name}"),
            format!("must be between 1 and {} ms", limits::HTTP_TIMEOUT_MS_MAX),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// A client edge's connection cap flag `--name`, checked: between 1 and
/// `HTTP_CONNECTIONS_MAX_MAX`.
pub(super) fn edge_count(
    value: Option<usize>,
    default: usize,
    name: &str,
) -> Result<usize, ConfigError> {
    let count = value.unwrap_or(default);
    if count == 0 || count > limits::HTTP_CONNECTIONS_MAX_MAX {
        return Err(invalid(
            format!("--{name}"),
            format!("must be between 1 and {}", limits::HTTP_CONNECTIONS_MAX_MAX),
        ));
    }
    Ok(count)
}

/// The client edge's timeouts and caps, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_deadline: Duration,
    pub write_timeout: Duration,
    pub connections_max: usize,
    pub connections_per_address_max: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings::new(&HttpFlags::default()).expect("the defaults are valid")
    }
}

impl HttpSettings {
    pub fn new(flags: &HttpFlags) -> Result<HttpSettings, ConfigError> {
        let (timeout, count) = (edge_timeout, edge_count);
        Ok(HttpSettings {
            header_timeout: timeout(
                flags.http_header_timeout_ms,
                limits::HTTP_HEADER_TIMEOUT_MS_DEFAULT,
                "http-header-timeout-ms",
            )?,
            body_timeout: timeout(
                flags.http_body_timeout_ms,
                limits::HTTP_BODY_TIMEOUT_MS_DEFAULT,
                "http-body-timeout-ms",
            )?,
            idle_timeout: timeout(
                flags.http_idle_timeout_ms,
                limits::HTTP_IDLE_TIMEOUT_MS_DEFAULT,
                "http-idle-timeout-ms",
            )?,
            request_deadline: timeout(
                flags.http_request_deadline_ms,
                limits::HTTP_REQUEST_DEADLINE_MS_DEFAULT,
                "http-request-deadline-ms",
            )?,
            write_timeout: timeout(
                flags.http_write_timeout_ms,
                limits::HTTP_WRITE_TIMEOUT_MS_DEFAULT,
                "http-write-timeout-ms",
            )?,
            connections_max: count(
                flags.http_connections_max,
                limits::HTTP_CONNECTIONS_MAX_DEFAULT,
                "http-connections-max",
            )?,
            connections_per_address_max: count(
                flags.http_connections_per_address_max,
                limits::HTTP_CONNECTIONS_PER_ADDRESS_MAX_DEFAULT,
                "http-connections-per-address-max",
            )?,
        })
    }
}

#[cfg(test)]
mod tests;
