//! The latency of every request this node coordinates, by operation, class, level and
//! outcome: a fixed table of histograms (`stats`), so recording takes no lock and the
//! label combinations are bounded (a raw count of replicas past
//! `COUNT_LEVELS_LABELLED` shares one label).

use super::quorum::Level;
use super::CoordinatorError;
use crate::object::Class;
use crate::stats::{HistogramTable, Snapshot, LATENCY_BOUNDS_US};
use std::time::Duration;

/// Raw replica counts (`Level::Count`) with a label of their own; larger ones share
/// `COUNT_OVER_LABEL`.
const COUNT_LEVELS_LABELLED: u32 = 9;
const COUNT_OVER_LABEL: &str = "10_or_more";

/// A coordinated request's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
}

const OPS: [Op; 2] = [Op::Read, Op::Write];

impl Op {
    /// The operation's name in metrics and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
        }
    }
}

/// How a request ended, as metrics name it.
const OUTCOMES: [&str; 4] = ["ok", "unavailable", "timeout", "refused"];

/// The named levels in slot order; `Count(1..=9)` follow, then the larger counts.
const NAMED_LEVELS: [Level; 8] = [
    Level::One,
    Level::LocalQuorum,
    Level::Quorum,
    Level::EachQuorum,
    Level::All,
    Level::RegionSafe,
    Level::MajorityQuorum,
    Level::RegionQuorums(1),
];
const LEVEL_SLOTS: usize = NAMED_LEVELS.len() + COUNT_LEVELS_LABELLED as usize + 1;
const COUNT_LABELS: [&str; COUNT_LEVELS_LABELLED as usize] =
    ["1", "2", "3", "4", "5", "6", "7", "8", "9"];
const SLOTS: usize = OPS.len() * Class::ALL.len() * LEVEL_SLOTS * OUTCOMES.len();

/// One histogram's labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Labels {
    pub op: &'static str,
    pub class: &'static str,
    pub level: &'static str,
    pub outcome: &'static str,
}

/// Request latencies by (operation, class, level, outcome).
#[derive(Debug)]
pub struct RequestLatencies {
    table: HistogramTable,
}

impl Default for RequestLatencies {
    fn default() -> Self {
        RequestLatencies {
            table: HistogramTable::new(SLOTS, LATENCY_BOUNDS_US),
        }
    }
}

fn level_slot(level: Level) -> usize {
    match level {
        Level::One => 0,
        Level::LocalQuorum => 1,
        Level::Quorum => 2,
        Level::EachQuorum => 3,
        Level::All => 4,
        Level::RegionSafe => 5,
        Level::MajorityQuorum => 6,
        Level::RegionQuorums(_) => 7,
        Level::Count(count @ 1..=COUNT_LEVELS_LABELLED) => NAMED_LEVELS.len() + count as usize - 1,
        Level::Count(_) => LEVEL_SLOTS - 1,
    }
}

fn level_label(slot: usize) -> &'static str {
    NAMED_LEVELS
        .get(slot)
        .and_then(Level::name)
        .or_else(|| COUNT_LABELS.get(slot - NAMED_LEVELS.len()).copied())
        .unwrap_or(COUNT_OVER_LABEL)
}

fn outcome_slot<T>(answer: &Result<T, CoordinatorError>) -> usize {
    match answer {
        Ok(_) => 0,
        Err(CoordinatorError::QuorumNotReached { .. } | CoordinatorError::Level(_)) => 1,
        Err(CoordinatorError::Timeout { .. }) => 2,
        Err(CoordinatorError::Refused { .. }) => 3,
    }
}

fn class_slot(class: Class) -> usize {
    Class::ALL
        .iter()
        .position(|known| *known == class)
        .expect("Class::ALL lists every class")
}

impl RequestLatencies {
    /// Counts one finished request.
    pub fn observe<T>(
        &self,
        op: Op,
        class: Class,
        level: Level,
        answer: &Result<T, CoordinatorError>,
        elapsed: Duration,
    ) {
        let op = OPS
            .iter()
            .position(|known| *known == op)
            .expect("OPS lists every operation");
        let slot = ((op * Class::ALL.len() + class_slot(class)) * LEVEL_SLOTS + level_slot(level))
            * OUTCOMES.len()
            + outcome_slot(answer);
        self.table.slot(slot).observe_duration(elapsed);
    }

    /// Every combination that has seen a request, with its labels.
    pub fn observed(&self) -> impl Iterator<Item = (Labels, Snapshot)> + '_ {
        self.table.observed().map(|(slot, snapshot)| {
            let outcome = slot % OUTCOMES.len();
            let level = (slot / OUTCOMES.len()) % LEVEL_SLOTS;
            let class = (slot / OUTCOMES.len() / LEVEL_SLOTS) % Class::ALL.len();
            let op = slot / OUTCOMES.len() / LEVEL_SLOTS / Class::ALL.len();
            let labels = Labels {
                op: OPS[op].name(),
                class: Class::ALL[class].name(),
                level: level_label(level),
                outcome: OUTCOMES[outcome],
            };
            (labels, snapshot)
        })
    }
}

#[cfg(test)]
mod tests;
