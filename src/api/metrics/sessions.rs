//! The session service's families of `/metrics`: logins, validations by outcome, the
//! sweeper and its expiry index.

use super::families::Families;
use super::load;
use super::StatusRoutes;
use prometheus_client::encoding::NoLabelSet;
use prometheus_client::metrics::MetricType;
use std::fmt;

pub(super) fn sessions(families: &mut Families, routes: &StatusRoutes) -> fmt::Result {
    let Some(stats) = &routes.state.sessions else {
        return Ok(());
    };
    let counters = [
        ("cartwheel_session_logins", "Logins", &stats.logins),
        (
            "cartwheel_session_validations",
            "Token validations",
            &stats.validations,
        ),
        (
            "cartwheel_session_rejections",
            "Validations that refused their token",
            &stats.rejections,
        ),
        (
            "cartwheel_session_forged_tokens",
            "Well-formed tokens this cluster never issued, refused by arithmetic",
            &stats.forged,
        ),
        (
            "cartwheel_session_remote_validation_reads",
            "Validations that read another region",
            &stats.remote_validation_reads,
        ),
        (
            "cartwheel_session_rate_limited",
            "Validations answered without their cross-region read (address over its limit)",
            &stats.rate_limited,
        ),
        (
            "cartwheel_session_reuse_detections",
            "Rotated tokens used again (their family is revoked)",
            &stats.reuse_detected,
        ),
        (
            "cartwheel_session_families_revoked",
            "Token families revoked after a reuse",
            &stats.families_revoked,
        ),
        (
            "cartwheel_session_rotations",
            "Token rotations that answered a successor",
            &stats.rotations,
        ),
        (
            "cartwheel_session_logouts",
            "Logouts acknowledged (one device, or every device of a user)",
            &stats.logouts,
        ),
        (
            "cartwheel_session_rotation_conflicts",
            "Rotations refused because the token was already rotated",
            &stats.rotation_conflicts,
        ),
        (
            "cartwheel_session_refreshes",
            "Session expiry refreshes",
            &stats.refreshes,
        ),
        (
            "cartwheel_session_swept",
            "Expired sessions removed by the sweeper",
            &stats.swept,
        ),
        (
            "cartwheel_session_sweep_entries_read",
            "Expiry index entries the sweeper read (each due)",
            &stats.sweep_entries_read,
        ),
        (
            "cartwheel_session_sweep_entries_stale",
            "Stale expiry index entries the sweeper dropped",
            &stats.sweep_entries_stale,
        ),
        (
            "cartwheel_session_validations_failed_closed",
            "Validations refused with auth_fenced (region cut off)",
            &stats.validations_failed_closed,
        ),
    ];
    families.counters(counters)?;
    let near = &stats.near_cache;
    let near_cache = [
        (
            "cartwheel_session_near_cache_hits",
            "Session document reads served from the near-cache (--near-cache-bytes)",
            &near.hits,
        ),
        (
            "cartwheel_session_near_cache_misses",
            "Session document reads the near-cache did not hold (read from replicas)",
            &near.misses,
        ),
        (
            "cartwheel_session_near_cache_invalidations",
            "Near-cache entries invalidated: a change fed by the region's feeds or made here",
            &near.invalidations,
        ),
        (
            "cartwheel_session_near_cache_clears",
            "Times the near-cache was emptied because a change feed was lost or fell behind",
            &near.clears,
        ),
        (
            "cartwheel_session_near_cache_raced",
            "Reads whose result was not kept because their key changed while they read",
            &near.raced,
        ),
        (
            "cartwheel_session_near_cache_evictions",
            "Near-cache entries dropped to stay within --near-cache-bytes",
            &near.evictions,
        ),
    ];
    families.counters(near_cache)?;
    families.gauge(
        "cartwheel_session_expiry_backfill_done",
        "1 once the expiry index covers every record written before it (backfill done)",
        None,
        load(&stats.expiry_backfill_done) as f64,
    )?;
    let mut metric = families.encoder.encode_descriptor(
        "cartwheel_session_validation_outcomes",
        "Token validations by how they ended: accepted, a rejection (missing, malformed, \
         unknown, expired, revoked, reused) or an error (a level not met)",
        None,
        MetricType::Counter,
    )?;
    let outcomes = crate::session::VALIDATION_OUTCOMES.iter();
    for (outcome, counter) in outcomes.zip(&stats.validation_outcomes) {
        metric
            .encode_family(&[("outcome", *outcome)])?
            .encode_counter::<NoLabelSet, _, u64>(&load(counter), None)?;
    }
    Ok(())
}
