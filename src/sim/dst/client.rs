//! A simulated application client: one request at a time, to a node it picks at random,
//! writing with the causal context of its last read or write of the key, as users of
//! `/v1/kv` do, or (a document client) sending a document operation (`docs::draw`) to
//! a session key. It keeps one context per key (at most `DST_KEYS_MAX`).

use super::network::OpId;
use crate::clock::VersionVector;
use crate::crdt::DocOp;
use crate::object::ObjectKey;
use std::collections::BTreeMap;

/// The request a client waits for.
pub(super) struct Waiting {
    pub op: OpId,
    pub key: ObjectKey,
    pub is_put: bool,
    /// The document operation of a write to a `user` or `auth` key.
    pub doc_op: Option<DocOp>,
    /// Event number at which the request was sent.
    pub started: u64,
}

pub(super) struct Client {
    pub waiting: Option<Waiting>,
    /// The causal context last returned for each key (storage bytes).
    contexts: BTreeMap<Vec<u8>, VersionVector>,
    /// Writes issued, to make every written value unique.
    pub puts: u64,
}

impl Client {
    pub fn new() -> Self {
        Client {
            waiting: None,
            contexts: BTreeMap::new(),
            puts: 0,
        }
    }

    /// The context to send with a write of `key` (empty: a blind write).
    pub fn context(&self, key: &ObjectKey) -> VersionVector {
        self.contexts
            .get(&key.storage_bytes())
            .cloned()
            .unwrap_or_default()
    }

    pub fn remember(&mut self, key: &ObjectKey, context: VersionVector) {
        self.contexts.insert(key.storage_bytes(), context);
    }
}
