//! Flags and validated settings of the session service: the policy of each class
//! (`auth`, `user`), expiry, rotation, the sweeper and the document limits.

use super::{check_level, invalid, ConfigError, Topology};
use crate::coordinator::quorum::Level;
use crate::coordinator::Policy;
use crate::crdt::DocLimits;
use crate::limits;
use std::time::Duration;

const DAY_S: u64 = 86_400;

#[derive(Clone, Debug, Default, clap::Args)]
pub struct SessionFlags {
    /// Shorthand for --auth-create-write and --auth-revoke-write at once (each of them,
    /// when given too, wins over it).
    #[arg(long, value_name = "LEVEL")]
    pub auth_write: Option<Level>,
    /// Write level of new tokens: logins, a rotation's successor, the idle refresh
    /// (default region_safe: durable in two regions, acknowledged from the nearest).
    #[arg(long, value_name = "LEVEL")]
    pub auth_create_write: Option<Level>,
    /// Write level of revocations: logout, a rotation's revoke of its parent, revoke-all,
    /// a reused token's family (default majority_quorum: a local quorum in every region
    /// but those held down, see README "Sessions"; each_quorum refuses revocations
    /// while any region is down).
    #[arg(long, value_name = "LEVEL")]
    pub auth_revoke_write: Option<Level>,
    /// Read level of token validations (default local_quorum).
    #[arg(long, value_name = "LEVEL")]
    pub auth_read: Option<Level>,
    /// Write level of session data (default region_safe; quorum in one region).
    #[arg(long, value_name = "LEVEL")]
    pub user_write: Option<Level>,
    /// Read level of session data (default local_quorum).
    #[arg(long, value_name = "LEVEL")]
    pub user_read: Option<Level>,
    /// A session unused this long expires, e.g. 30d (default).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub session_idle: Option<Duration>,
    /// A session expires this long after login whatever its use, e.g. 90d (default).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub session_lifetime: Option<Duration>,
    /// The idle deadline is slid forward at most once per this interval (default 1h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub session_refresh: Option<Duration>,
    /// A rotated token keeps working this long (default 0s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub rotation_grace: Option<Duration>,
    /// Expired records the sweeper deletes per second at most (default 100; 0 stops it).
    #[arg(long, value_name = "RECORDS")]
    pub sweep_rate: Option<u64>,
    /// How often the sweeper looks for expired records (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub sweep_interval: Option<Duration>,
    /// Cart lines per user (at most 500, the default).
    #[arg(long, value_name = "COUNT")]
    pub cart_lines_max: Option<usize>,
    /// Prefs per user (at most 100, the default).
    #[arg(long, value_name = "COUNT")]
    pub prefs_max: Option<usize>,
    /// History entries served per user, newest first (at most 50, the default).
    #[arg(long, value_name = "COUNT")]
    pub history_max: Option<usize>,
    /// Bytes of one session document (at most 65536, the default).
    #[arg(long, value_name = "BYTES")]
    pub session_bytes_max: Option<usize>,
    /// Failed validations one client address may make at once (default 200); past them,
    /// until it has not failed for as long as the burst takes to earn back, a genuine
    /// token missing locally is not looked up in other regions and every rejection is
    /// answered after a 1 s delay. Valid tokens are never refused or slowed.
    #[arg(long, value_name = "COUNT")]
    pub failed_validations_burst: Option<u32>,
    /// Failed validations per second a client address earns back (default 50).
    #[arg(long, value_name = "COUNT")]
    pub failed_validations_per_s: Option<u32>,
    /// Bytes of session documents this node keeps in memory to serve reads of hot
    /// sessions without a replica read, invalidated by its region's change feeds
    /// (default 0: off; never used for token validation). A change made through
    /// another node is seen here within the feed's latency (README "Change feed").
    #[arg(long, value_name = "BYTES")]
    pub near_cache_bytes: Option<usize>,
}

impl SessionFlags {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut push =
            |name: &str, value: Option<String>| super::flags::push_flag(&mut args, name, value);
        let duration = |value: Option<Duration>| value.map(|v| format!("{}ms", v.as_millis()));
        push("auth-write", self.auth_write.map(|v| v.to_string()));
        push(
            "auth-create-write",
            self.auth_create_write.map(|v| v.to_string()),
        );
        push(
            "auth-revoke-write",
            self.auth_revoke_write.map(|v| v.to_string()),
        );
        push("auth-read", self.auth_read.map(|v| v.to_string()));
        push("user-write", self.user_write.map(|v| v.to_string()));
        push("user-read", self.user_read.map(|v| v.to_string()));
        push("session-idle", duration(self.session_idle));
        push("session-lifetime", duration(self.session_lifetime));
        push("session-refresh", duration(self.session_refresh));
        push("rotation-grace", duration(self.rotation_grace));
        push("sweep-rate", self.sweep_rate.map(|v| v.to_string()));
        push("sweep-interval", duration(self.sweep_interval));
        push("cart-lines-max", self.cart_lines_max.map(|v| v.to_string()));
        push("prefs-max", self.prefs_max.map(|v| v.to_string()));
        push("history-max", self.history_max.map(|v| v.to_string()));
        push(
            "session-bytes-max",
            self.session_bytes_max.map(|v| v.to_string()),
        );
        push(
            "failed-validations-burst",
            self.failed_validations_burst.map(|v| v.to_string()),
        );
        push(
            "failed-validations-per-s",
            self.failed_validations_per_s.map(|v| v.to_string()),
        );
        push(
            "near-cache-bytes",
            self.near_cache_bytes.map(|v| v.to_string()),
        );
        args
    }
}

/// The levels and replica use of one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassPolicy {
    pub read: Level,
    pub write: Level,
    pub policy: Policy,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    /// The `auth` class: `write` is the revocation level (`--auth-revoke-write`), also
    /// used by the sweeper's expiry of auth records.
    pub auth: ClassPolicy,
    /// The write level of new tokens (`--auth-create-write`).
    pub auth_create: Level,
    pub user: ClassPolicy,
    pub idle: Duration,
    pub lifetime: Duration,
    pub refresh: Duration,
    pub rotation_grace: Duration,
    pub sweep_rate: u64,
    pub sweep_interval: Duration,
    pub limits: DocLimits,
    pub history_max: usize,
    /// The per-client-address limit of failed validations: a burst, and what an
    /// address earns back per second.
    pub failures_burst: u32,
    pub failures_per_s: u32,
    /// The near-cache's bound (`session::near_cache`); 0: off.
    pub near_cache_bytes: usize,
}

/// Whether every validation at `read` meets every acknowledged revocation at `write`
/// in every region (the auth guarantee). `majority_quorum` revocations meet local reads
/// through the fence (`session::fence`): a region they leave out validates from a
/// majority of the regions until it has caught up.
fn reads_see_writes(read: Level, write: Level) -> bool {
    let local_everywhere = matches!(write, Level::EachQuorum | Level::MajorityQuorum);
    matches!(write, Level::All)
        || matches!(read, Level::All)
        || (local_everywhere && matches!(read, Level::LocalQuorum | Level::EachQuorum))
        || (matches!(write, Level::Quorum | Level::EachQuorum) && read == Level::Quorum)
}

/// Whether a token created at `create` is durable in two regions, which the lookup of a
/// token missing locally relies on (and a region's loss must not undo a login).
fn durable_in_two_regions(create: Level, regions: usize) -> bool {
    regions < 2
        || matches!(
            create,
            Level::RegionSafe | Level::EachQuorum | Level::MajorityQuorum | Level::All
        )
}

fn bounded(value: Option<usize>, max: usize, field: &str) -> Result<usize, ConfigError> {
    match value {
        None => Ok(max),
        Some(0) => Err(invalid(field, "must be at least 1")),
        Some(value) if value > max => Err(invalid(field, format!("must be at most {max}"))),
        Some(value) => Ok(value),
    }
}

fn positive(value: Option<u32>, default: u32, field: &str) -> Result<u32, ConfigError> {
    match value {
        Some(0) => Err(invalid(field, "must be at least 1")),
        value => Ok(value.unwrap_or(default)),
    }
}

impl SessionSettings {
    /// Validates the flags against the topology; non-fatal findings go to `warnings`.
    pub fn new(
        topology: &Topology,
        flags: &SessionFlags,
        sloppy: bool,
        warnings: &mut Vec<String>,
    ) -> Result<SessionSettings, ConfigError> {
        let multi_region = topology.regions.len() > 1;
        let user_write_default = if multi_region {
            Level::RegionSafe
        } else {
            Level::Quorum
        };
        let levels = [
            ("--auth-read", flags.auth_read, Level::LocalQuorum),
            (
                "--auth-revoke-write",
                flags.auth_revoke_write.or(flags.auth_write),
                Level::MajorityQuorum,
            ),
            ("--user-read", flags.user_read, Level::LocalQuorum),
            ("--user-write", flags.user_write, user_write_default),
            (
                "--auth-create-write",
                flags.auth_create_write.or(flags.auth_write),
                user_write_default,
            ),
        ];
        let mut chosen = Vec::new();
        for (field, level, default) in levels {
            let level = level.unwrap_or(default);
            check_level(topology, level, field)?;
            if field.ends_with("read") && level == Level::RegionSafe {
                return Err(invalid(field, "region_safe is a write level"));
            }
            chosen.push(level);
        }
        let (auth_read, auth_write, user_read, user_write, auth_create) =
            (chosen[0], chosen[1], chosen[2], chosen[3], chosen[4]);
        if !reads_see_writes(auth_read, auth_write) {
            warnings.push(format!(
                "--auth-read {auth_read} with --auth-revoke-write {auth_write}: a validation may \
                 miss a revoke or rotation acknowledged in another region until repair reaches it"
            ));
        }
        if !durable_in_two_regions(auth_create, topology.regions.len()) {
            warnings.push(format!(
                "--auth-create-write {auth_create}: a login is acknowledged before it is stored \
                 outside its region; losing that region loses it, and other regions may not \
                 find it"
            ));
        }
        let day = |days: u64| Duration::from_secs(days * DAY_S);
        let idle = flags.session_idle.unwrap_or(day(30));
        let lifetime = flags.session_lifetime.unwrap_or(day(90));
        if idle.is_zero() || lifetime.is_zero() {
            return Err(invalid("--session-idle", "durations must be above 0"));
        }
        if lifetime.as_millis() > u128::from(limits::SESSION_LIFETIME_MS_MAX) {
            return Err(invalid(
                "--session-lifetime",
                "at most 400 days (a user's auth record is kept that long)",
            ));
        }
        if idle > lifetime {
            return Err(invalid(
                "--session-idle",
                "the idle timeout cannot exceed --session-lifetime",
            ));
        }
        let refresh = flags.session_refresh.unwrap_or(Duration::from_secs(3600));
        if refresh >= idle {
            return Err(invalid(
                "--session-refresh",
                "must be shorter than --session-idle",
            ));
        }
        let sweep_interval = flags.sweep_interval.unwrap_or(Duration::from_secs(60));
        if sweep_interval.is_zero() {
            return Err(invalid("--sweep-interval", "must be above 0"));
        }
        Ok(SessionSettings {
            auth: ClassPolicy {
                read: auth_read,
                write: auth_write,
                policy: Policy {
                    sloppy: false,
                    sync_repair: true,
                },
            },
            auth_create,
            user: ClassPolicy {
                read: user_read,
                write: user_write,
                policy: Policy {
                    sloppy,
                    sync_repair: false,
                },
            },
            idle,
            lifetime,
            refresh,
            rotation_grace: flags.rotation_grace.unwrap_or(Duration::ZERO),
            sweep_rate: flags.sweep_rate.unwrap_or(limits::SWEEP_RATE_DEFAULT),
            sweep_interval,
            limits: DocLimits {
                cart_lines_max: bounded(
                    flags.cart_lines_max,
                    limits::CART_LINES_MAX,
                    "--cart-lines-max",
                )?,
                prefs_max: bounded(flags.prefs_max, limits::PREFS_MAX, "--prefs-max")?,
                doc_bytes_max: bounded(
                    flags.session_bytes_max,
                    limits::SESSION_DOC_BYTES_MAX,
                    "--session-bytes-max",
                )?,
            },
            history_max: bounded(flags.history_max, limits::HISTORY_MAX, "--history-max")?,
            failures_burst: positive(
                flags.failed_validations_burst,
                limits::FAILED_VALIDATIONS_BURST,
                "--failed-validations-burst",
            )?,
            failures_per_s: positive(
                flags.failed_validations_per_s,
                limits::FAILED_VALIDATIONS_PER_S,
                "--failed-validations-per-s",
            )?,
            near_cache_bytes: match flags.near_cache_bytes.unwrap_or(0) {
                bytes if bytes > limits::NEAR_CACHE_BYTES_MAX => {
                    let max = limits::NEAR_CACHE_BYTES_MAX;
                    return Err(invalid(
                        "--near-cache-bytes",
                        format!("must be at most {max}"),
                    ));
                }
                bytes => bytes,
            },
        })
    }
}

#[cfg(test)]
mod tests;
