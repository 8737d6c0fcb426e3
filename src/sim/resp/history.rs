//! What the sim's RESP clients record and the pure rules the RESP checker judges it
//! by. Every key belongs to one client, which sends its operations one at a time, so
//! the writes of a key are totally ordered and the checker is exact. A string key and
//! each field of a hash key are registers: a sequence of writes that each leave a
//! version (`SET`, `HSET`) or nothing (`DEL`, `HDEL`), acknowledged or only attempted
//! (an error, a timeout: maybe applied). A counter key is a sequence of increments,
//! each with the number of times it was sent (a retried `INCRBY` may apply twice).
//! Nothing here does I/O or reads a clock.

/// One write to a register: the version it leaves (`None`: removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterWrite {
    pub version: Option<u64>,
    /// A success answer arrived; otherwise the write may or may not have applied.
    pub acked: bool,
    /// Attempts that reached a node or may have (a retried write sends more than once).
    pub sends: u32,
}

impl RegisterWrite {
    /// Whether an attempt of this write went unanswered, so may have applied on a
    /// replica that the later commands' reads did not see.
    pub fn in_doubt(&self) -> bool {
        self.sends > u32::from(self.acked)
    }
}

/// A read of a register during the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterRead {
    /// How many of the register's writes the client had finished when it read.
    pub after_writes: u32,
    /// The version read (`None`: no value). A value the client never wrote reads as
    /// `Some(0)`, a version no write has.
    pub observed: Option<u64>,
}

/// A string key, or one field of a hash key.
#[derive(Clone, Debug, Default)]
pub struct Register {
    pub key: String,
    /// The hash field; `None` for a string key.
    pub field: Option<String>,
    pub writes: Vec<RegisterWrite>,
    pub reads: Vec<RegisterRead>,
}

impl Register {
    /// How this register's writes merge: a hash field is add-wins.
    pub fn merge(&self) -> Merge {
        match self.field {
            Some(_) => Merge::AddWins,
            None => Merge::LastWriterWins,
        }
    }
}

/// One `INCRBY` (an `INCR` is one by 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterWrite {
    pub amount: u64,
    /// Attempts that reached a node or may have: each may have applied.
    pub sends: u32,
    pub acked: bool,
}

/// A read (`GET`) of a counter during the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterRead {
    pub after_writes: u32,
    pub observed: i64,
}

/// A counter key.
#[derive(Clone, Debug, Default)]
pub struct Counter {
    pub key: String,
    pub writes: Vec<CounterWrite>,
    pub reads: Vec<CounterRead>,
}

/// What a register's value says about its history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// The state the last acknowledged write left, or one a later attempted write may.
    Allowed,
    /// An older version, or none, where a later one was acknowledged.
    Lost,
    /// A value where the last acknowledged write removed it and no later write may
    /// have set one.
    Resurrected,
}

/// How a register's writes merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// A string: last writer wins on the hybrid clock, removals included.
    LastWriterWins,
    /// A hash field: a removal removes only the versions its read saw (add-wins).
    AddWins,
}

/// Judges `observed` against `writes` (in the client's order): allowed are the state
/// the last acknowledged write left (no value before any) and the state any later
/// attempted write leaves. Earlier attempted writes are not allowed over a later
/// acknowledged version: the client sent every later write after the earlier one's
/// answer or timeout, so it is ordered after it on the hybrid clock of the one machine
/// the sim runs on. Under `Merge::AddWins` a removal is not ordered that way: an
/// attempt whose answer was lost may sit on a replica the removal's read did not reach
/// (its node crashed mid-write), which makes it concurrent with the removal, and
/// add-wins keeps it. So after an acknowledged removal, the version of any earlier
/// write in doubt is allowed there too.
pub fn judge_register(writes: &[RegisterWrite], merge: Merge, observed: Option<u64>) -> Judgement {
    let last_acked = writes.iter().rposition(|write| write.acked);
    let base = last_acked.and_then(|index| writes[index].version);
    if observed == base {
        return Judgement::Allowed;
    }
    let later = &writes[last_acked.map_or(0, |index| index + 1)..];
    if later.iter().any(|write| write.version == observed) {
        return Judgement::Allowed;
    }
    let removed = last_acked.is_some() && base.is_none();
    if merge == Merge::AddWins
        && removed
        && observed.is_some()
        && writes
            .iter()
            .any(|write| write.in_doubt() && write.version == observed)
    {
        return Judgement::Allowed;
    }
    match (last_acked, base, observed) {
        (Some(_), None, Some(_)) => Judgement::Resurrected,
        _ => Judgement::Lost,
    }
}

/// The bounds a counter's value must lie in after `writes`: every acknowledged
/// increment at least, every send of every increment at most.
pub fn counter_bounds(writes: &[CounterWrite]) -> (i64, i64) {
    let sum = |amounts: &mut dyn Iterator<Item = u64>| -> i64 {
        let total = amounts.fold(0u64, u64::saturating_add);
        i64::try_from(total).unwrap_or(i64::MAX)
    };
    let acked = sum(&mut writes.iter().filter(|w| w.acked).map(|w| w.amount));
    let attempted = sum(&mut writes.iter().map(|w| {
        w.amount
            .saturating_mul(u64::from(w.sends.max(u32::from(w.acked))))
    }));
    (acked, attempted)
}

/// Whether a counter's final value lies in its bounds.
pub fn counter_in_range(writes: &[CounterWrite], observed: i64) -> bool {
    let (low, high) = counter_bounds(writes);
    (low..=high).contains(&observed)
}

/// Reads of a register during the run that missed the client's own acknowledged
/// writes (an older version, a removed value back, none where one was set).
pub fn register_reads_behind(register: &Register) -> usize {
    register
        .reads
        .iter()
        .filter(|read| {
            let seen = (read.after_writes as usize).min(register.writes.len());
            judge_register(&register.writes[..seen], register.merge(), read.observed)
                != Judgement::Allowed
        })
        .count()
}

/// Reads of a counter during the run below the client's acknowledged increments.
pub fn counter_reads_behind(counter: &Counter) -> usize {
    counter
        .reads
        .iter()
        .filter(|read| {
            let seen = (read.after_writes as usize).min(counter.writes.len());
            read.observed < counter_bounds(&counter.writes[..seen]).0
        })
        .count()
}

/// The string value of a version (what `SET` and `HSET` send).
pub fn value_of(version: u64) -> String {
    format!("v{version}")
}

/// The version of a value read back; `Some(0)` for a value no write of this workload
/// has (it matches no write, so the rules judge it).
pub fn version_of(value: &[u8]) -> u64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.strip_prefix('v'))
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
