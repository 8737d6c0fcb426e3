//! The change feed's families of `/metrics`: what this node's replica keeps of its
//! changes, and what its hub read of its region's feeds and handed to listeners.

use super::families::Families;
use super::StatusRoutes;
use prometheus_client::registry::Unit;
use std::fmt;

pub(super) fn feed(families: &mut Families, routes: &StatusRoutes) -> fmt::Result {
    let state = routes.state.as_ref();
    let feed = state.replica.feed();
    let (bytes, held) = feed.held();
    families.gauge(
        "cartwheel_feed_held",
        "Bytes of changes this node's change feed keeps (its oldest go past FEED_BYTES_MAX)",
        Some(&Unit::Bytes),
        bytes as f64,
    )?;
    families.gauge(
        "cartwheel_feed_changes_held",
        "Changes this node's change feed keeps",
        None,
        held as f64,
    )?;
    families.counter(
        "cartwheel_feed_changes",
        "Changes this node's replica recorded in its feed since it started",
        feed.tail().next.saturating_sub(1),
    )?;
    let (listeners, tracked) = state.hub.counts();
    families.gauge(
        "cartwheel_feed_listeners",
        "Listeners of the region's changes here: tracking or subscribed RESP connections, \
         HTTP feeds, the near-cache",
        None,
        listeners as f64,
    )?;
    families.gauge(
        "cartwheel_feed_tracked_keys",
        "Keys in this node's tracking table (read by a listener in tracking mode)",
        None,
        tracked as f64,
    )?;
    let stats = state.hub.stats();
    let counters = [
        (
            "cartwheel_feed_hub_changes_read",
            "Changes this node's hub read from its region's feeds",
            &stats.changes_read,
        ),
        (
            "cartwheel_feed_hub_events",
            "Change events the hub handed to listeners",
            &stats.events_posted,
        ),
        (
            "cartwheel_feed_hub_lost",
            "Times a listener was told anything may have changed (a feed lost or behind)",
            &stats.lost_posted,
        ),
        (
            "cartwheel_feed_hub_reads_failed",
            "Reads of a region node's feed that failed (its listeners were told once)",
            &stats.feed_reads_failed,
        ),
        (
            "cartwheel_feed_hub_behind",
            "Reads of a region node's feed that found the hub had fallen behind it",
            &stats.feeds_behind,
        ),
    ];
    families.counters(counters)?;
    Ok(())
}
