//! A key's replicated expiry: entries under dots, keyed by the epoch (the whole-key
//! write) they belong to. An `EXPIRE` or `PERSIST` replaces the entries it has seen, so
//! only concurrent ones stay side by side; of those, `PERSIST` wins, else the latest
//! deadline (the longest TTL). A whole-key write removes every entry it has seen.
//! It never decides which epoch is current: the value does.

use serde::{Deserialize, Serialize};

use super::Stamp;
use crate::clock::Actor;
use crate::crdt::kernel::DotKernel;
use crate::crdt::CrdtError;

/// One expiry write. Ordered so the winner of concurrent entries is the maximum:
/// `Persist` above every deadline, later deadlines above earlier ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Deadline {
    AtMs(u64),
    Persist,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Expiry {
    kernel: DotKernel<Stamp, Deadline>,
}

impl Expiry {
    /// The deadline of epoch `epoch`, or of every surviving entry when `epoch` is `None`
    /// (a key reborn after a delete: all its entries were concurrent with the delete).
    pub(crate) fn deadline_ms(&self, epoch: Option<Stamp>) -> Option<u64> {
        let winner = match epoch {
            Some(epoch) => self.kernel.dots(&epoch)?.values().max().copied(),
            None => self
                .kernel
                .entries
                .values()
                .flat_map(|dots| dots.values())
                .max()
                .copied(),
        };
        match winner? {
            Deadline::AtMs(deadline_ms) => Some(deadline_ms),
            Deadline::Persist => None,
        }
    }

    /// A delta writing `deadline` for `epoch` and removing every entry seen here.
    pub(crate) fn set_delta(
        &self,
        epoch: Stamp,
        deadline: Deadline,
        actor: Actor,
    ) -> Result<Expiry, CrdtError> {
        let mut kernel = self.kernel.remove_all_delta();
        kernel.merge(&self.kernel.write_delta(epoch, deadline, actor)?);
        Ok(Expiry { kernel })
    }

    /// A delta removing every entry seen here.
    pub(crate) fn clear_delta(&self) -> Expiry {
        Expiry {
            kernel: self.kernel.remove_all_delta(),
        }
    }

    pub(crate) fn is_bottom(&self) -> bool {
        self.kernel.is_bottom()
    }

    pub(crate) fn merge(&mut self, other: &Expiry) {
        self.kernel.merge(&other.kernel);
    }
}
