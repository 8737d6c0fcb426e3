//! The member list: which nodes exist (from the topology) and where each can be
//! reached (learned by exchanging address books with seeds and peers).
//!
//! Pure state: merging an address book returns what was learned; the node's driver
//! sends and receives the exchanges. SWIM failure detection replaces the static part in
//! a later step.

use crate::ids::{NodeId, Region};
use crate::wire::MemberAddress;
use std::collections::BTreeMap;

/// Addresses of the members of a static topology.
#[derive(Debug)]
pub struct AddressBook {
    expected: BTreeMap<NodeId, Region>,
    known: BTreeMap<NodeId, MemberAddress>,
    /// Entries refused because the node is not in the topology or claims another region.
    pub refused: u64,
}

impl AddressBook {
    /// `expected` is the topology's member list; `me` is known from the start.
    pub fn new(expected: BTreeMap<NodeId, Region>, me: MemberAddress) -> Self {
        let mut book = AddressBook {
            expected,
            known: BTreeMap::new(),
            refused: 0,
        };
        book.merge(std::slice::from_ref(&me));
        book
    }

    /// Merges addresses heard from a peer; returns the entries that are new or changed.
    /// The map cannot grow past the topology's member count.
    pub fn merge(&mut self, heard: &[MemberAddress]) -> Vec<MemberAddress> {
        let mut learned = Vec::new();
        for entry in heard {
            if self.expected.get(&entry.node) != Some(&entry.region) {
                self.refused += 1;
                continue;
            }
            if self.known.get(&entry.node) != Some(entry) {
                self.known.insert(entry.node.clone(), entry.clone());
                learned.push(entry.clone());
            }
        }
        learned
    }

    pub fn known(&self) -> Vec<MemberAddress> {
        self.known.values().cloned().collect()
    }

    pub fn get(&self, node: &NodeId) -> Option<&MemberAddress> {
        self.known.get(node)
    }

    pub fn expected(&self) -> &BTreeMap<NodeId, Region> {
        &self.expected
    }

    /// Every member of the topology has an address.
    pub fn is_complete(&self) -> bool {
        self.known.len() == self.expected.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(node: &str, region: &str, port: u16) -> MemberAddress {
        MemberAddress {
            node: NodeId(node.into()),
            region: Region(region.into()),
            quic: ([127, 0, 0, 1], port).into(),
            http: ([127, 0, 0, 1], port + 1).into(),
        }
    }

    #[test]
    fn learns_expected_members_and_refuses_strangers() {
        let expected = [("a-1", "a"), ("a-2", "a"), ("b-1", "b")]
            .iter()
            .map(|(n, r)| (NodeId(n.to_string()), Region(r.to_string())))
            .collect();
        let mut book = AddressBook::new(expected, address("a-1", "a", 10));
        assert!(!book.is_complete());
        let learned = book.merge(&[
            address("a-2", "a", 20),
            address("x-1", "a", 30),
            address("b-1", "a", 40),
        ]);
        assert_eq!(learned, vec![address("a-2", "a", 20)]);
        assert_eq!(book.refused, 2, "unknown node and wrong region are refused");
        assert!(
            book.merge(&[address("a-2", "a", 20)]).is_empty(),
            "nothing new twice"
        );
        book.merge(&[address("b-1", "b", 50)]);
        assert!(book.is_complete());
        assert_eq!(book.get(&NodeId("a-2".into())).unwrap().quic.port(), 20);
    }
}
