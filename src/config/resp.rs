//! Flags and validated settings of the RESP (Redis protocol) edge: its timeouts and its
//! caps on open connections (`node`, `cluster up` and `sim` share them). The listen
//! address and the password are a node's own (`node --resp`, `--resp-password-file`).

use super::ConfigError;
use crate::limits;
use std::time::Duration;

#[derive(Clone, Debug, Default, clap::Args)]
pub struct RespFlags {
    /// A RESP connection with no request open and no byte moving is closed after this
    /// long (default 300000).
    #[arg(long, value_name = "MS")]
    pub resp_idle_timeout_ms: Option<u64>,
    /// Time a RESP client has to finish a request once it started it (default 10000).
    #[arg(long, value_name = "MS")]
    pub resp_request_timeout_ms: Option<u64>,
    /// A write of answers to a RESP client that takes longer cuts it off (default 10000).
    #[arg(long, value_name = "MS")]
    pub resp_write_timeout_ms: Option<u64>,
    /// Open RESP connections per node (default 10000).
    #[arg(long, value_name = "COUNT")]
    pub resp_connections_max: Option<usize>,
    /// Open RESP connections per client IP address (default 1024).
    #[arg(long, value_name = "COUNT")]
    pub resp_connections_per_address_max: Option<usize>,
}

impl RespFlags {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut push =
            |name: &str, value: Option<String>| super::flags::push_flag(&mut args, name, value);
        let text = |value: Option<u64>| value.map(|v| v.to_string());
        push("resp-idle-timeout-ms", text(self.resp_idle_timeout_ms));
        push(
            "resp-request-timeout-ms",
            text(self.resp_request_timeout_ms),
        );
        push("resp-write-timeout-ms", text(self.resp_write_timeout_ms));
        push(
            "resp-connections-max",
            self.resp_connections_max.map(|v| v.to_string()),
        );
        push(
            "resp-connections-per-address-max",
            self.resp_connections_per_address_max.map(|v| v.to_string()),
        );
        args
    }
}

/// The RESP edge's timeouts and connection cap, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RespSettings {
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub write_timeout: Duration,
    pub connections_max: usize,
    pub connections_per_address_max: usize,
}

impl Default for RespSettings {
    fn default() -> Self {
        RespSettings::new(&RespFlags::default()).expect("the defaults are valid")
    }
}

impl RespSettings {
    pub fn new(flags: &RespFlags) -> Result<RespSettings, ConfigError> {
        let timeout = super::http::edge_timeout;
        let connections_max = super::http::edge_count(
            flags.resp_connections_max,
            limits::RESP_CONNECTIONS_MAX_DEFAULT,
            "resp-connections-max",
        )?;
        let connections_per_address_max = super::http::edge_count(
            flags.resp_connections_per_address_max,
            limits::RESP_CONNECTIONS_PER_ADDRESS_MAX_DEFAULT,
            "resp-connections-per-address-max",
        )?;
        Ok(RespSettings {
            idle_timeout: timeout(
                flags.resp_idle_timeout_ms,
                limits::RESP_IDLE_TIMEOUT_MS_DEFAULT,
                "resp-idle-timeout-ms",
            )?,
            request_timeout: timeout(
                flags.resp_request_timeout_ms,
                limits::RESP_REQUEST_TIMEOUT_MS_DEFAULT,
                "resp-request-timeout-ms",
            )?,
            write_timeout: timeout(
                flags.resp_write_timeout_ms,
                limits::RESP_WRITE_TIMEOUT_MS_DEFAULT,
                "resp-write-timeout-ms",
            )?,
            connections_max,
            connections_per_address_max,
        })
    }
}

#[cfg(test)]
mod tests;
