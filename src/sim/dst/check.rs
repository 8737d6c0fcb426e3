//! The invariant checker: an omniscient observer that records every version minted
//! (its dot, the context it superseded, its timestamp) and every write a client saw
//! acknowledged, and judges each completed read and the final state against them.
//!
//! An acknowledged write survives a read that started after the acknowledgement when
//! its dot is among the read's siblings, or a write minted with a context that covers
//! its dot (a causally newer write) survives in turn, or the sibling cap dropped it
//! in some merge or mint (documented compaction of the oldest concurrent siblings past
//! `SIBLINGS_MAX`, seen by comparing with an uncapped merge; counted apart).
//! Anything else is a lost write. A write a fallback's hint helped acknowledge is
//! exempt from reads until the end (a sloppy quorum may miss it until the hint is
//! replayed), and so is one that a new owner lacks after a ring change moved its
//! partition (it fetched from one current owner, which may lack it), but both must
//! survive in the final state. It keeps at most `DST_WRITES_MAX`
//! writes.

use super::DST_WRITES_MAX;
use crate::clock::{Actor, Dot, VersionVector};
use crate::object::{KvObject, Object};
use std::collections::{BTreeMap, BTreeSet};

/// One minted version as the checker remembers it.
struct Write {
    context: VersionVector,
}

/// A write a client saw acknowledged.
struct Ack {
    dot: Dot,
    /// Event number at which the client received the acknowledgement.
    event: u64,
    /// A fallback's hint counted toward it: a quorum read may miss it until the hint
    /// is replayed (a sloppy quorum's documented weakening); the final state may not.
    hinted: bool,
    /// A ring change gave its key a new owner that lacks it: exempt from reads too.
    moved: bool,
}

/// How an acknowledged write fares in an object.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Survival {
    Present,
    Superseded,
    Compacted,
    Lost,
}

#[derive(Default)]
pub(super) struct Checker {
    /// Keyed by (storage key, dot): dots count per object, so only the pair is unique.
    writes: BTreeMap<(Vec<u8>, Dot), Write>,
    acks: BTreeMap<Vec<u8>, Vec<Ack>>,
    /// (storage key, dot) of siblings some merge or mint dropped at the sibling cap.
    compacted_dots: BTreeSet<(Vec<u8>, Dot)>,
    pub reads_checked: u64,
    pub compacted: u64,
}

impl Checker {
    /// Whether the checker has room for more writes.
    pub fn full(&self) -> bool {
        self.writes.len() >= DST_WRITES_MAX
    }

    /// A replica minted `dot`; a dot minted twice is a broken invariant of `clock`.
    pub fn minted(&mut self, key: &[u8], dot: Dot, context: &VersionVector) -> Result<(), String> {
        let write = Write {
            context: context.clone(),
        };
        if self.writes.insert((key.to_vec(), dot), write).is_some() {
            return Err(format!(
                "dot {dot} was minted twice for key {}",
                String::from_utf8_lossy(&key[1..])
            ));
        }
        Ok(())
    }

    /// The sibling cap dropped these (storage key, dot) pairs somewhere.
    pub fn compacted(&mut self, dropped: Vec<(Vec<u8>, Dot)>) {
        self.compacted_dots.extend(dropped);
    }

    /// A client received the acknowledgement of the write `dot` at event `event`.
    pub fn acked(&mut self, key: &[u8], dot: Dot, event: u64, hinted: bool) {
        self.acks.entry(key.to_vec()).or_default().push(Ack {
            dot,
            event,
            hinted,
            moved: false,
        });
    }

    /// A ring change gave `key` a new owner, which fetched it from one current owner
    /// (`handoff::transfer`) and holds `object`: a write acknowledged before that it
    /// lacks is on fewer replicas than its level promised, so a quorum read may miss it
    /// until anti-entropy repairs it; the final state may not.
    pub fn moved(&mut self, key: &[u8], object: Option<&Object>) {
        let lacking: BTreeSet<Dot> = self
            .acks
            .get(key)
            .into_iter()
            .flatten()
            .filter(|ack| self.survival(key, ack.dot, object) == Survival::Lost)
            .map(|ack| ack.dot)
            .collect();
        if let Some(acks) = self.acks.get_mut(key) {
            acks.iter_mut()
                .filter(|ack| lacking.contains(&ack.dot))
                .for_each(|ack| ack.moved = true);
        }
    }

    /// The newest acknowledged write of `key` was planned under the ring before a
    /// change that moved its partition: its copies may sit on a node that has left or
    /// fetched before it came, so it is exempt from reads as in `moved`.
    pub fn planned_before_change(&mut self, key: &[u8]) {
        if let Some(ack) = self.acks.get_mut(key).and_then(|acks| acks.last_mut()) {
            ack.moved = true;
        }
    }

    /// Keys with acknowledged writes (storage bytes).
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.acks.keys().cloned().collect()
    }

    /// Acknowledged writes of all keys, as (key, dot).
    pub fn all_acks(&self) -> Vec<(Vec<u8>, Dot)> {
        self.acks
            .iter()
            .flat_map(|(key, acks)| acks.iter().map(move |ack| (key.clone(), ack.dot)))
            .collect()
    }

    /// Judges a read of `key` that a client started at event `started` and that
    /// returned `object`: every write acknowledged before it must survive.
    pub fn check_read(
        &mut self,
        key: &[u8],
        started: u64,
        object: Option<&Object>,
    ) -> Result<(), String> {
        let Some(acks) = self.acks.get(key) else {
            return Ok(());
        };
        let earlier: Vec<(Dot, u64)> = acks
            .iter()
            .filter(|ack| ack.event < started && !ack.hinted && !ack.moved)
            .map(|ack| (ack.dot, ack.event))
            .collect();
        for (dot, event) in earlier {
            self.reads_checked += 1;
            match self.survival(key, dot, object) {
                Survival::Present | Survival::Superseded => {}
                Survival::Compacted => self.compacted += 1,
                Survival::Lost => {
                    return Err(format!(
                        "write {dot} of key {} acknowledged at event {event} is missing from a quorum read started at event {started}: {}",
                        String::from_utf8_lossy(&key[1..]),
                        describe(object)
                    ))
                }
            }
        }
        Ok(())
    }

    /// How the write `dot` fares in `object`.
    pub fn survival(&self, key: &[u8], dot: Dot, object: Option<&Object>) -> Survival {
        let Some(kv) = object.and_then(Object::as_kv) else {
            return Survival::Lost;
        };
        self.survival_within(key, dot, kv, &mut BTreeSet::new())
    }

    /// `survival`, following chains of supersession: a write superseded by a later
    /// write survives as long as that later write does (present, superseded in turn,
    /// or compacted). `visited` guards against walking a write twice.
    fn survival_within(
        &self,
        key: &[u8],
        dot: Dot,
        kv: &KvObject,
        visited: &mut BTreeSet<Dot>,
    ) -> Survival {
        if !visited.insert(dot) {
            return Survival::Lost;
        }
        if kv.siblings().iter().any(|sibling| sibling.dot == dot) {
            return Survival::Present;
        }
        let superseded = kv.siblings().iter().any(|sibling| {
            self.writes
                .get(&(key.to_vec(), sibling.dot))
                .is_some_and(|write| write.context.covers(&dot))
        });
        if superseded {
            return Survival::Superseded;
        }
        if self.compacted_dots.contains(&(key.to_vec(), dot)) {
            return Survival::Compacted;
        }
        let first = Dot {
            actor: Actor(0),
            counter: 0,
        };
        let later: Vec<Dot> = self
            .writes
            .range((key.to_vec(), first)..)
            .take_while(|((write_key, _), _)| write_key.as_slice() == key)
            .filter(|((_, later), write)| *later != dot && write.context.covers(&dot))
            .map(|((_, later), _)| *later)
            .collect();
        for later in later {
            if self.survival_within(key, later, kv, visited) != Survival::Lost {
                return Survival::Superseded;
            }
        }
        Survival::Lost
    }
}

/// A short description of a read's result: its context and sibling dots.
pub(super) fn describe(object: Option<&Object>) -> String {
    match object {
        None => "no object".to_string(),
        Some(Object::Doc(_)) => super::docs::describe_doc(object),
        Some(Object::Kv(kv)) => {
            let dots: Vec<String> = kv.siblings().iter().map(|s| s.dot.to_string()).collect();
            let vv = describe_vv(kv.context());
            format!("vv [{vv}], siblings [{}]", dots.join(" "))
        }
    }
}

/// A version vector as `actor:counter` pairs.
pub(super) fn describe_vv(vv: &VersionVector) -> String {
    let entries: Vec<String> = vv
        .entries()
        .iter()
        .map(|(actor, counter)| format!("{actor}:{counter}"))
        .collect();
    entries.join(" ")
}
