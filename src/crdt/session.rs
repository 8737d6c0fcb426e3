//! The `user` class document: cart, prefs, history and devices, merged field by field.

use serde::{Deserialize, Serialize};

use super::{Cart, History, LwwMap, OrSet};
use crate::limits::PREFS_MAX;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub cart: Cart,
    pub prefs: LwwMap<String, String>,
    pub history: History,
    /// Token hashes of the user's devices (hex or base64 text).
    pub devices: OrSet<String>,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            cart: Cart::new(),
            prefs: LwwMap::new(PREFS_MAX),
            history: History::new(),
            devices: OrSet::new(),
        }
    }
}

/// A partial update to one field, as it travels between replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionDelta {
    Cart(Cart),
    Prefs(LwwMap<String, String>),
    History(History),
    Devices(OrSet<String>),
}

impl Session {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn merge(&mut self, other: &Session) {
        self.cart.merge(&other.cart);
        self.prefs.merge(&other.prefs);
        self.history.merge(&other.history);
        self.devices.merge(&other.devices);
    }

    /// Drops everything written at or before `floor` (what an expiry ended).
    pub fn prune(&mut self, floor: crate::clock::Hlc) {
        self.cart.prune(floor);
        self.prefs.prune(floor);
        self.history.prune(floor);
        self.devices.prune(floor);
    }

    /// Whether no field holds a value (contexts may remain).
    pub fn is_empty(&self) -> bool {
        self.cart.is_empty()
            && self.prefs.len_live() == 0
            && self.prefs.is_clear()
            && self.history.is_empty()
            && self.devices.is_empty()
    }

    pub fn apply_delta(&mut self, delta: &SessionDelta) {
        match delta {
            SessionDelta::Cart(cart) => self.cart.apply_delta(cart),
            SessionDelta::Prefs(prefs) => self.prefs.merge_delta(prefs),
            SessionDelta::History(history) => self.history.merge_delta(history),
            SessionDelta::Devices(devices) => self.devices.merge_delta(devices),
        }
    }
}
