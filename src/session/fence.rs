//! The auth fence: whether this node may answer a token's validation from its own
//! region, and at what level a revocation is written, from what this node's failure
//! detector says of the other regions.
//!
//! The rules (README, "Sessions: region outages and partitions", says them for
//! operators):
//! - A node is **fenced** while its view holds every node of some other region suspect
//!   or dead, or half or more of the nodes outside its region: it may be the cut-off
//!   side, so revocations may be passing it by. (The regions that survive an outage
//!   fence too: they cannot tell it from their own isolation. Their validations still
//!   succeed, from the majority they form, at the cost of a cross-region read.) Fenced,
//!   a validation reads the token's records from a local majority in a majority of the
//!   regions (`Level::MajorityQuorum`), merged (a revocation wins), and fails closed
//!   (`auth_fenced`) when it cannot.
//! - When its view sees every region again, and from its start, a node is **catching
//!   up**: validations read the same way, until each partition it holds has been found
//!   in sync with a replica in another region by anti-entropy since the catch-up began.
//!   Then it validates **locally** (`local_quorum`) again. A stall of this node of
//!   `AUTH_STALL_CATCH_UP_MS` or more (the process did not run, e.g. paused) also
//!   starts a catch-up: a region paused as a whole suspects nobody when it resumes.
//! - A revocation is written at a local majority in every region, except the regions
//!   whose every node this node has held dead for at least `fence_margin_ms` (their
//!   nodes have fenced themselves by then: suspicion comes before death, and the margin
//!   covers the cut-off side's slower view of a whole region), and never with fewer than
//!   a majority of the regions. A region that is going (dead for less than the margin)
//!   makes the revocation wait; one that is down makes no difference.
//!
//! Pure: it takes what the failure detector says and the time, and returns decisions.
//! It never reads a clock, locks, sends or waits; `SessionService` and the runtime's
//! region watch carry its decisions out.

use crate::coordinator::quorum::Level;
use crate::ids::Region;
use crate::limits;

/// What this node's failure detector says of one other region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionLiveness {
    pub region: Region,
    /// Members of the region that own data (joining, member or leaving).
    pub nodes: usize,
    /// Of them, those this node holds alive.
    pub alive: usize,
    /// Since when (milliseconds on the watch's monotonic clock) this node has held
    /// every one of them dead; `None` while any is not dead.
    pub all_dead_since_ms: Option<u64>,
}

impl RegionLiveness {
    /// No node of the region is alive in this node's view.
    fn cut_off(&self) -> bool {
        self.nodes > 0 && self.alive == 0
    }
}

/// This node's view of the other regions, at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionsView {
    /// Every region but this node's, each once.
    pub others: Vec<RegionLiveness>,
    /// The member list's version: it moves with every change of any member's state.
    pub version: u64,
    /// Milliseconds this node has spent stalled so far, as the failure detector counts
    /// them (the process did not run, e.g. paused: its view may be stale, as if it had
    /// been away).
    pub stalled_ms: u64,
}

impl RegionsView {
    /// A view of a cluster with no other region: never fenced, nothing to catch up.
    pub fn single_region() -> RegionsView {
        RegionsView {
            others: Vec::new(),
            version: 0,
            stalled_ms: 0,
        }
    }

    /// Some other region has no node alive in this node's view (it is going, or gone).
    fn any_region_cut_off(&self) -> bool {
        self.others.iter().any(RegionLiveness::cut_off)
    }

    /// Some other region has no node alive in this node's view, or half or more of the
    /// nodes outside its region are not alive. The second clause changes nothing for
    /// the rules (a region cut off soon fails the first), but it fences a cut-off node
    /// sooner, which is what bounds the fence margin.
    pub fn cut_off(&self) -> bool {
        let nodes: usize = self.others.iter().map(|region| region.nodes).sum();
        let alive: usize = self.others.iter().map(|region| region.alive).sum();
        self.any_region_cut_off() || nodes > 0 && alive * 2 <= nodes
    }
}

/// How a node answers validations now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardMode {
    /// From its own region (`local_quorum`), looking further only for a token missing
    /// locally.
    Local,
    /// Cut off from some region: reads a majority of the regions, or fails closed.
    Fenced,
    /// Back in touch, not yet caught up: reads a majority of the regions.
    CatchingUp,
}

impl GuardMode {
    pub fn name(self) -> &'static str {
        match self {
            GuardMode::Local => "local",
            GuardMode::Fenced => "fenced",
            GuardMode::CatchingUp => "catching_up",
        }
    }
}

/// The state machine of one node's fence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthGuard {
    mode: GuardMode,
    /// Wall-clock milliseconds at which the current catch-up began: anti-entropy must
    /// have found each partition in sync with another region at or after it.
    catch_up_since_ms: u64,
    /// The stalled milliseconds of the last view (`None` before the first).
    stalled_seen_ms: Option<u64>,
}

impl AuthGuard {
    /// A node that starts (or restarts) catches up first: it may have been away.
    pub fn new(now_wall_ms: u64) -> AuthGuard {
        AuthGuard {
            mode: GuardMode::CatchingUp,
            catch_up_since_ms: now_wall_ms,
            stalled_seen_ms: None,
        }
    }

    pub fn mode(&self) -> GuardMode {
        self.mode
    }

    /// When the current catch-up began (wall-clock milliseconds).
    pub fn catch_up_since_ms(&self) -> u64 {
        self.catch_up_since_ms
    }

    /// Moves the machine on what the failure detector says now (never out of `Local`
    /// with fewer than three regions); `caught_up(since)`
    /// says whether anti-entropy has found every partition this node holds in sync
    /// with another region at or after `since` (wall-clock milliseconds).
    pub fn observe(
        &mut self,
        view: &RegionsView,
        now_wall_ms: u64,
        caught_up: impl FnOnce(u64) -> bool,
    ) -> GuardMode {
        // A long stall since the last view: this node may have been away unnoticed (a
        // whole region paused sees nobody suspect when it resumes). A shorter one
        // cannot have let a revocation leave its region out: that takes its whole
        // region held dead for the fence margin.
        let stalled = self.stalled_seen_ms.is_some_and(|seen| {
            view.stalled_ms.saturating_sub(seen) >= limits::AUTH_STALL_CATCH_UP_MS
        });
        self.stalled_seen_ms = Some(view.stalled_ms);
        // With fewer than three regions no revocation can leave a region out (the
        // others are no majority): every acknowledged one is in this region's quorum.
        if view.others.len() < 2 {
            self.mode = GuardMode::Local;
            return self.mode;
        }
        if view.cut_off() {
            self.mode = GuardMode::Fenced;
            return self.mode;
        }
        if stalled {
            self.mode = GuardMode::CatchingUp;
            self.catch_up_since_ms = now_wall_ms;
            return self.mode;
        }
        match self.mode {
            GuardMode::Local => {}
            GuardMode::Fenced => {
                self.mode = GuardMode::CatchingUp;
                self.catch_up_since_ms = now_wall_ms;
            }
            GuardMode::CatchingUp => {
                if view.others.is_empty() || caught_up(self.catch_up_since_ms) {
                    self.mode = GuardMode::Local;
                }
            }
        }
        self.mode
    }
}

/// What a revocation does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokePlan {
    /// Write at `level`; acknowledge it only if the member list is still at the version
    /// the plan was made from (else the regions excused may have changed: plan again).
    Write { level: Level, excused: usize },
    /// Some region's nodes are all dead but not for `fence_margin_ms` yet: its nodes
    /// may not have fenced themselves. Wait for the margin (or for the region back).
    Wait,
    /// Fewer than a majority of the regions are left: no revocation can be made safe.
    Unavailable,
}

/// The plan of a revocation under `configured` (the `--auth-revoke-write` level): only
/// `majority_quorum` excuses regions; any other level is written as configured.
pub fn revocation_plan(
    configured: Level,
    view: &RegionsView,
    now_ms: u64,
    fence_margin_ms: u64,
) -> RevokePlan {
    if configured != Level::MajorityQuorum {
        return RevokePlan::Write {
            level: configured,
            excused: 0,
        };
    }
    let regions = view.others.len() + 1;
    let mut excused = 0;
    for region in &view.others {
        match region.all_dead_since_ms {
            Some(since) if now_ms.saturating_sub(since) >= fence_margin_ms => excused += 1,
            Some(_) => return RevokePlan::Wait,
            None => {}
        }
    }
    let needed = regions - excused;
    if needed < regions / 2 + 1 {
        return RevokePlan::Unavailable;
    }
    let level = match excused {
        0 => Level::EachQuorum,
        _ => Level::RegionQuorums(u32::try_from(needed).unwrap_or(u32::MAX)),
    };
    RevokePlan::Write { level, excused }
}

#[cfg(test)]
mod tests;
