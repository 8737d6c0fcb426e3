//! Observed-remove cart: sku → quantity. Each write puts a (Hlc, quantity) register under a
//! fresh dot and supersedes the dots it observed; a remove takes away only observed dots,
//! so a concurrent add keeps the line (add-wins). When concurrent registers survive, the
//! highest (Hlc, actor, counter) wins, the same on every replica.

use serde::{Deserialize, Serialize};

use super::kernel::DotKernel;
use super::CrdtError;
use crate::clock::{Actor, Hlc};
use crate::limits::{CART_LINES_MAX, QUANTITY_MAX};

/// The value under one dot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartRegister {
    pub at: Hlc,
    pub quantity: u32,
}

/// Deltas are `Cart`s; apply with `apply_delta` (or `merge`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    kernel: DotKernel<String, CartRegister>,
}

impl Cart {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `quantity` to the visible quantity of `sku` (0 if absent).
    pub fn add(
        &mut self,
        sku: String,
        quantity: u32,
        at: Hlc,
        actor: Actor,
    ) -> Result<Cart, CrdtError> {
        check_quantity(u64::from(quantity))?;
        let total = u64::from(self.quantity(&sku).unwrap_or(0)) + u64::from(quantity);
        self.write(sku, total, at, actor)
    }

    /// Sets the quantity of `sku`, superseding every register observed here.
    pub fn set(
        &mut self,
        sku: String,
        quantity: u32,
        at: Hlc,
        actor: Actor,
    ) -> Result<Cart, CrdtError> {
        self.write(sku, u64::from(quantity), at, actor)
    }

    /// Removes the observed registers of `sku`; a concurrent add survives.
    pub fn remove(&mut self, sku: &String) -> Cart {
        let delta = Cart {
            kernel: self.kernel.remove_delta(sku),
        };
        self.apply_delta(&delta);
        delta
    }

    fn write(
        &mut self,
        sku: String,
        quantity: u64,
        at: Hlc,
        actor: Actor,
    ) -> Result<Cart, CrdtError> {
        let quantity = check_quantity(quantity)?;
        if self.kernel.dots(&sku).is_none() && self.kernel.entries.len() >= CART_LINES_MAX {
            return Err(CrdtError::TooMany {
                what: "cart lines",
                max: CART_LINES_MAX,
            });
        }
        let register = CartRegister { at, quantity };
        let delta = Cart {
            kernel: self.kernel.write_delta(sku, register, actor)?,
        };
        self.apply_delta(&delta);
        Ok(delta)
    }

    /// The winning register's quantity: highest (Hlc, actor, counter) among survivors.
    pub fn quantity(&self, sku: &String) -> Option<u32> {
        let dots = self.kernel.dots(sku)?;
        dots.iter()
            .max_by_key(|(dot, register)| (register.at, dot.actor, dot.counter))
            .map(|(_, register)| register.quantity)
    }

    /// (sku, quantity) in sku order.
    pub fn lines(&self) -> Vec<(String, u32)> {
        self.kernel
            .entries
            .keys()
            .filter_map(|sku| self.quantity(sku).map(|quantity| (sku.clone(), quantity)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.kernel.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kernel.entries.is_empty()
    }

    pub fn merge(&mut self, other: &Cart) {
        self.kernel.merge(&other.kernel);
    }

    pub fn apply_delta(&mut self, delta: &Cart) {
        self.merge(delta);
    }

    /// Drops the registers written at or before `floor`.
    pub fn prune(&mut self, floor: Hlc) {
        self.kernel.retain(|register| register.at > floor);
    }
}

fn check_quantity(quantity: u64) -> Result<u32, CrdtError> {
    match u32::try_from(quantity) {
        Ok(checked) if (1..=QUANTITY_MAX).contains(&checked) => Ok(checked),
        _ => Err(CrdtError::Quantity {
            quantity: i64::try_from(quantity).unwrap_or(i64::MAX),
            max: QUANTITY_MAX,
        }),
    }
}
