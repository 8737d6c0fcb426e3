//! Consistency levels and the quorum tracker: which replies satisfy a request.
//!
//! Pure logic: given the replicas of a key (with their regions) and a level, it says how
//! many acknowledgements are needed where, and, fed with replies one at a time, when the
//! request has succeeded or can no longer succeed. It never sends, waits or reads a clock.

use crate::ids::Region;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// How many replicas must answer, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Any one replica.
    One,
    /// A majority of the replicas in the coordinator's region.
    LocalQuorum,
    /// A majority of all N replicas.
    Quorum,
    /// A majority in every region.
    EachQuorum,
    /// Every replica.
    All,
    /// A majority in the local region plus one replica in another region (writes).
    RegionSafe,
    /// A majority of the replicas in each of a majority of the regions (any majority:
    /// the local region need not be one). Survives one region of three being down.
    MajorityQuorum,
    /// A majority of the replicas in each of at least this many regions (at least 1,
    /// at most the regions of the key). Not parsed from text: the session service
    /// builds it from its view of which regions are down (`session::fence`).
    RegionQuorums(u32),
    /// A raw count of replicas, anywhere.
    Count(u32),
}

impl Level {
    pub const NAMES: &'static str =
        "one, local_quorum, quorum, each_quorum, majority_quorum, all, region_safe, or a number of \
         replicas";
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown consistency level {given:?}: expected {}", Level::NAMES)]
pub struct UnknownLevel {
    pub given: String,
}

impl FromStr for Level {
    type Err = UnknownLevel;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "one" => Ok(Level::One),
            "local_quorum" => Ok(Level::LocalQuorum),
            "quorum" => Ok(Level::Quorum),
            "each_quorum" => Ok(Level::EachQuorum),
            "all" => Ok(Level::All),
            "region_safe" => Ok(Level::RegionSafe),
            "majority_quorum" => Ok(Level::MajorityQuorum),
            digits => match digits.parse::<u32>() {
                Ok(count) if count >= 1 => Ok(Level::Count(count)),
                _ => Err(UnknownLevel {
                    given: text.to_string(),
                }),
            },
        }
    }
}

impl Level {
    /// The level's name; `region_quorums` for any count of regions, `None` for a raw
    /// count of replicas (whose name is the number).
    pub fn name(&self) -> Option<&'static str> {
        match self {
            Level::One => Some("one"),
            Level::LocalQuorum => Some("local_quorum"),
            Level::Quorum => Some("quorum"),
            Level::EachQuorum => Some("each_quorum"),
            Level::All => Some("all"),
            Level::RegionSafe => Some("region_safe"),
            Level::MajorityQuorum => Some("majority_quorum"),
            Level::RegionQuorums(_) => Some("region_quorums"),
            Level::Count(_) => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.name()) {
            (Level::RegionQuorums(regions), _) => {
                write!(f, "local quorums in {regions} regions")
            }
            (_, Some(name)) => f.write_str(name),
            (Level::Count(count), None) => write!(f, "{count}"),
            (_, None) => unreachable!("only a count has no name"),
        }
    }
}

/// Why a level cannot be met by a replica set even if every replica answers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuorumError {
    #[error("level {level} needs {needed} replicas but the key has only {available}")]
    TooFewReplicas {
        level: Level,
        needed: usize,
        available: usize,
    },
    #[error(
        "level region_safe needs replicas in a second region, but every replica is in {region}"
    )]
    SingleRegion { region: Region },
    #[error(
        "level {level} needs replicas in {needed} regions but the key has them in {available}"
    )]
    TooFewRegions {
        level: Level,
        needed: usize,
        available: usize,
    },
}

fn majority(count: usize) -> usize {
    count / 2 + 1
}

/// The acknowledgements a request needs: a total, a minimum per region, a minimum
/// outside the local region, and a number of regions that must each reach a majority
/// of their own replicas (whichever regions they are).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub total: usize,
    pub per_region: BTreeMap<Region, usize>,
    pub outside_local: usize,
    pub local: Region,
    /// Regions that must each reach a majority of their replicas (0: no such rule).
    pub regions_with_quorum: usize,
    /// The key's replicas per region (what a region's majority is counted against).
    pub region_sizes: BTreeMap<Region, usize>,
}

impl Requirement {
    /// What `level` asks of the replica set `regions` (one entry per replica).
    pub fn new(level: Level, regions: &[Region], local: &Region) -> Result<Self, QuorumError> {
        let mut counts: BTreeMap<Region, usize> = BTreeMap::new();
        for region in regions {
            *counts.entry(region.clone()).or_default() += 1;
        }
        let local_count = counts.get(local).copied().unwrap_or(0);
        let n = regions.len();
        let mut requirement = Requirement {
            total: 0,
            per_region: BTreeMap::new(),
            outside_local: 0,
            local: local.clone(),
            regions_with_quorum: 0,
            region_sizes: BTreeMap::new(),
        };
        match level {
            Level::One => requirement.total = 1,
            Level::Quorum => requirement.total = majority(n),
            Level::All => requirement.total = n,
            Level::Count(count) => requirement.total = count as usize,
            Level::LocalQuorum => {
                let needed = majority(local_count);
                requirement.per_region.insert(local.clone(), needed);
                requirement.total = needed;
            }
            Level::EachQuorum => {
                for (region, count) in &counts {
                    requirement
                        .per_region
                        .insert(region.clone(), majority(*count));
                }
                requirement.total = requirement.per_region.values().sum();
            }
            Level::RegionSafe => {
                if counts.len() < 2 {
                    return Err(QuorumError::SingleRegion {
                        region: local.clone(),
                    });
                }
                let needed = majority(local_count);
                requirement.per_region.insert(local.clone(), needed);
                requirement.outside_local = 1;
                requirement.total = needed + 1;
            }
            Level::MajorityQuorum => {
                requirement.regions_with_quorum_of(&counts, majority(counts.len()));
            }
            Level::RegionQuorums(regions) => {
                let regions = regions as usize;
                if regions == 0 || regions > counts.len() {
                    return Err(QuorumError::TooFewRegions {
                        level,
                        needed: regions,
                        available: counts.len(),
                    });
                }
                requirement.regions_with_quorum_of(&counts, regions);
            }
        }
        if requirement.total > n || local_count == 0 && requirement.per_region.contains_key(local) {
            return Err(QuorumError::TooFewReplicas {
                level,
                needed: requirement.total,
                available: n,
            });
        }
        Ok(requirement)
    }

    /// Asks for a majority in each of `regions` regions of the replica set `counts`;
    /// the total is the smallest sum of that many regions' majorities.
    fn regions_with_quorum_of(&mut self, counts: &BTreeMap<Region, usize>, regions: usize) {
        let mut majorities: Vec<usize> = counts.values().map(|count| majority(*count)).collect();
        majorities.sort_unstable();
        self.total = majorities.iter().take(regions).sum();
        self.regions_with_quorum = regions;
        self.region_sizes = counts.clone();
    }

    /// What `acked` still lacks, in words ("us-east 1 of 2"; parts joined by ", "),
    /// or "" when nothing is missing.
    fn shortfall(&self, acked: &BTreeMap<Region, usize>) -> String {
        let count = |region: &Region| acked.get(region).copied().unwrap_or(0);
        let mut missing: Vec<String> = self
            .per_region
            .iter()
            .filter(|(region, needed)| count(region) < **needed)
            .map(|(region, needed)| format!("{region} {} of {needed}", count(region)))
            .collect();
        let outside: usize = acked
            .iter()
            .filter(|(region, _)| **region != self.local)
            .map(|(_, count)| count)
            .sum();
        if outside < self.outside_local {
            missing.push(format!(
                "outside {} {outside} of {}",
                self.local, self.outside_local
            ));
        }
        let regions_met = self
            .region_sizes
            .iter()
            .filter(|(region, size)| count(region) >= majority(**size))
            .count();
        if regions_met < self.regions_with_quorum {
            missing.push(format!(
                "regions with a majority {regions_met} of {}",
                self.regions_with_quorum
            ));
        }
        missing.join(", ")
    }

    pub fn met_by(&self, acked: &BTreeMap<Region, usize>) -> bool {
        let total: usize = acked.values().sum();
        let outside: usize = acked
            .iter()
            .filter(|(region, _)| **region != self.local)
            .map(|(_, count)| count)
            .sum();
        let regions_met = self
            .region_sizes
            .iter()
            .filter(|(region, size)| acked.get(*region).copied().unwrap_or(0) >= majority(**size))
            .count();
        total >= self.total
            && outside >= self.outside_local
            && regions_met >= self.regions_with_quorum
            && self
                .per_region
                .iter()
                .all(|(region, needed)| acked.get(region).copied().unwrap_or(0) >= *needed)
    }
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Pending,
    Met,
    /// Too many replicas failed: the requirement can no longer be met.
    Failed {
        needed: usize,
        acked: usize,
    },
}

/// Counts replies of the replicas of one request against a [`Requirement`].
#[derive(Clone, Debug)]
pub struct QuorumTracker {
    requirement: Requirement,
    regions: Vec<Region>,
    answered: Vec<Option<bool>>,
}

impl QuorumTracker {
    pub fn new(requirement: Requirement, regions: Vec<Region>) -> Self {
        let answered = vec![None; regions.len()];
        QuorumTracker {
            requirement,
            regions,
            answered,
        }
    }

    /// Records the reply of replica `index` (`ok` = it did what was asked). A second
    /// reply of the same replica is ignored.
    pub fn record(&mut self, index: usize, ok: bool) -> Progress {
        assert!(index < self.answered.len(), "replica index out of range");
        if self.answered[index].is_none() {
            self.answered[index] = Some(ok);
        }
        self.progress()
    }

    /// Records an acknowledgement for replica `index` that was made by a node in
    /// another region (a fallback holding a hint): it counts where the copy really is.
    pub fn record_in_region(&mut self, index: usize, ok: bool, region: Region) -> Progress {
        assert!(index < self.answered.len(), "replica index out of range");
        if self.answered[index].is_none() && ok {
            self.regions[index] = region;
        }
        self.record(index, ok)
    }

    /// Forgets every reply, keeping the requirement: a read's second phase counts
    /// afresh without building a new tracker. Regions moved by `record_in_region` stay
    /// moved (reads never move them).
    pub fn forget_answers(&mut self) {
        self.answered.fill(None);
    }

    /// Whether replica `index` has answered (well or not).
    pub fn has_answered(&self, index: usize) -> bool {
        self.answered.get(index).is_some_and(Option::is_some)
    }

    /// Replicas asked.
    pub fn replicas(&self) -> usize {
        self.regions.len()
    }

    pub fn acked(&self) -> usize {
        self.answered.iter().filter(|a| **a == Some(true)).count()
    }

    pub fn answered(&self) -> usize {
        self.answered.iter().filter(|a| a.is_some()).count()
    }

    /// Acknowledgements per region, with the replicas not yet answered if asked.
    fn tally(&self, include_pending: bool) -> BTreeMap<Region, usize> {
        let mut counts: BTreeMap<Region, usize> = BTreeMap::new();
        for (region, answer) in self.regions.iter().zip(&self.answered) {
            if *answer == Some(true) || include_pending && answer.is_none() {
                *counts.entry(region.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// What the acknowledgements so far lack beyond the total, in words for an error
    /// ("; short in us-east 1 of 2"; "" when only the total falls short): the region
    /// whose count falls short is what an operator must look at.
    pub fn shortfall(&self) -> String {
        let missing = self.requirement.shortfall(&self.tally(false));
        if missing.is_empty() {
            missing
        } else {
            format!("; short in {missing}")
        }
    }

    pub fn progress(&self) -> Progress {
        if self.requirement.met_by(&self.tally(false)) {
            Progress::Met
        } else if !self.requirement.met_by(&self.tally(true)) {
            Progress::Failed {
                needed: self.requirement.total,
                acked: self.acked(),
            }
        } else {
            Progress::Pending
        }
    }

    pub fn requirement(&self) -> &Requirement {
        &self.requirement
    }

    /// The region replica `index` counts in.
    pub fn region(&self, index: usize) -> Option<&Region> {
        self.regions.get(index)
    }

    /// Whether the requirement would be met if every replica marked in `asked` that has
    /// not failed acknowledged: a read that asks only these need not ask more yet.
    pub fn could_meet_with(&self, asked: &[bool]) -> bool {
        let mut counts: BTreeMap<Region, usize> = BTreeMap::new();
        for (index, region) in self.regions.iter().enumerate() {
            let hopeful = self.answered[index] != Some(false);
            if asked.get(index).copied().unwrap_or(false) && hopeful {
                *counts.entry(region.clone()).or_default() += 1;
            }
        }
        self.requirement.met_by(&counts)
    }
}

#[cfg(test)]
mod tests;
