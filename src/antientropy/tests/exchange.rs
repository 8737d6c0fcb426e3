//! The exchange against a model: the diff names exactly the differing keys, equal
//! replicas are in sync after one round trip, big leaves page, the diff is capped, and
//! malformed messages are refused with typed errors.

use std::convert::Infallible;

use proptest::prelude::*;

use super::model::{digest, model_diff, run, sorted, LeafSource, Outcome, Replica};
use crate::antientropy::{
    compare_roots, plan_levels, respond, respond_roots, roots_requests, Bound, Exchange,
    ExchangeConfig, ExchangeError, Hash, LeafPage, Message, MessageKind, PartitionTree,
    RootsOutcome, Step, StepError,
};
use crate::ids::PartitionId;
use crate::limits::{
    DIFF_KEYS_MAX, ENTRY_KEY_BYTES_MAX, HASHES_PER_MESSAGE_MAX, LEAF_ENTRIES_PER_MESSAGE_MAX,
    LEAF_ENTRY_BYTES_PER_MESSAGE_MAX, LEAVES_PER_MESSAGE_MAX, ROOTS_PER_MESSAGE_MAX, STEP_BITS_MAX,
    TREE_DEPTH_MAX, TREE_DEPTH_MIN,
};

const PARTITION: PartitionId = PartitionId(7);

fn replicas_strategy() -> impl Strategy<Value = (Replica, Replica)> {
    let key = prop::collection::vec(any::<u8>(), 1..10);
    (
        prop::collection::btree_map(key.clone(), any::<u64>(), 0..80),
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u64>()), 0..24),
        prop::collection::btree_map(key.clone(), any::<u64>(), 0..6),
        prop::collection::btree_map(key, any::<u64>(), 0..6),
        1u8..=10,
    )
        .prop_map(|(base, edits, only_a, only_b, depth)| {
            let (mut a, mut b) = (Replica::new(depth), Replica::new(depth));
            for (key, seed) in &base {
                a.put(key, digest(*seed));
                b.put(key, digest(*seed));
            }
            let keys: Vec<&Vec<u8>> = base.keys().collect();
            for (pick, kind, seed) in edits {
                let Some(key) = (!keys.is_empty()).then(|| keys[pick.index(keys.len())]) else {
                    break;
                };
                match kind {
                    0 => a.remove(key),
                    1 => b.remove(key),
                    2 => b.put(key, digest(seed)),
                    _ => {
                        a.put(key, digest(seed));
                        b.put(key, digest(seed ^ 1));
                    }
                }
            }
            for (key, seed) in only_a {
                a.put(&key, digest(seed));
            }
            for (key, seed) in only_b {
                b.put(&key, digest(seed));
            }
            (a, b)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_diff_names_exactly_the_differing_keys((a, b) in replicas_strategy(), step_bits in 1u8..=STEP_BITS_MAX) {
        let config = ExchangeConfig::new(step_bits).unwrap();
        let result = run(PARTITION, &a, &b, config);
        let (pull, push) = model_diff(&a.entries, &b.entries);
        match result.outcome {
            Outcome::InSync => {
                prop_assert!(pull.is_empty() && push.is_empty());
                prop_assert_eq!(a.tree.root(), b.tree.root());
            }
            Outcome::Done(diff) => {
                prop_assert!(diff.complete);
                prop_assert_eq!(sorted(&diff), (pull, push));
            }
        }
        // And from the other side, the lists swap.
        let reverse = run(PARTITION, &b, &a, config);
        if let (Outcome::Done(forward), Outcome::Done(backward)) = (run(PARTITION, &a, &b, config).outcome, reverse.outcome) {
            prop_assert_eq!(sorted(&forward).0, sorted(&backward).1);
        }
    }
}

#[test]
fn plans_start_at_the_root_end_at_the_leaves_and_step_at_most_step_bits() {
    for depth in TREE_DEPTH_MIN..=TREE_DEPTH_MAX {
        for step in 1..=STEP_BITS_MAX {
            let plan = plan_levels(depth, step);
            assert_eq!((plan[0], *plan.last().unwrap()), (0, depth));
            assert!(plan
                .windows(2)
                .all(|pair| pair[0] < pair[1] && pair[1] - pair[0] <= step));
            let steps = plan.len() - 1;
            assert!(
                steps.is_multiple_of(2) || steps == usize::from(depth),
                "{depth}/{step}: {plan:?}"
            );
        }
    }
    assert_eq!(plan_levels(10, 5), vec![0, 5, 10]);
    assert_eq!(plan_levels(16, 5), vec![0, 4, 8, 12, 16]);
    assert_eq!(plan_levels(1, 5), vec![0, 1]);
    assert!(matches!(
        ExchangeConfig::new(0),
        Err(ExchangeError::StepOutOfRange { step_bits: 0 })
    ));
    assert!(ExchangeConfig::new(STEP_BITS_MAX + 1).is_err());
}

fn filled(depth: u8, keys: impl IntoIterator<Item = u64>) -> Replica {
    let mut replica = Replica::new(depth);
    for id in keys {
        replica.put(&id.to_be_bytes(), digest(id));
    }
    replica
}

#[test]
fn equal_replicas_are_in_sync_after_one_round_trip() {
    let a = filled(10, 0..2000);
    let b = a.clone();
    let result = run(PARTITION, &a, &b, ExchangeConfig::default());
    assert_eq!(result.outcome, Outcome::InSync);
    assert_eq!(result.messages, 2);
    assert!(
        result.bytes < 80,
        "root request and InSync are small: {}",
        result.bytes
    );
    let empty = run(
        PARTITION,
        &Replica::new(4),
        &Replica::new(4),
        ExchangeConfig::default(),
    );
    assert_eq!(empty.outcome, Outcome::InSync);
}

#[test]
fn one_difference_in_a_default_tree_takes_two_round_trips() {
    let a = filled(10, 0..1000);
    let mut b = a.clone();
    b.put(&5u64.to_be_bytes(), digest(99));
    let result = run(PARTITION, &a, &b, ExchangeConfig::default());
    let Outcome::Done(diff) = result.outcome else {
        panic!("replicas differ")
    };
    assert_eq!(diff.keys_to_pull, vec![5u64.to_be_bytes().to_vec()]);
    assert_eq!(diff.keys_to_push, vec![5u64.to_be_bytes().to_vec()]);
    assert_eq!(result.messages, 4);
}

#[test]
fn a_big_leaf_is_paged_by_entry_count_and_by_bytes() {
    // Two leaves, 10,000 keys: each leaf holds more than one message may carry.
    let a = filled(1, 0..10_000);
    let b = Replica::new(1);
    let result = run(PARTITION, &b, &a, ExchangeConfig::default());
    let Outcome::Done(diff) = result.outcome else {
        panic!("replicas differ")
    };
    assert!(diff.complete);
    assert_eq!(diff.keys_to_pull.len(), 10_000);
    assert!(diff.keys_to_push.is_empty());
    assert!(
        result.messages >= 2 * (10_000 / LEAF_ENTRIES_PER_MESSAGE_MAX + 1),
        "paged: {} messages",
        result.messages
    );

    // Keys of the largest size: the byte budget pages first.
    let mut big = Replica::new(1);
    for id in 0..2500u64 {
        let mut key = vec![b'k'; ENTRY_KEY_BYTES_MAX];
        key[..8].copy_from_slice(&id.to_be_bytes());
        big.put(&key, digest(id));
    }
    let mut other = big.clone();
    for id in (0..2500u64).step_by(3) {
        let key = big.entries.keys().nth(id as usize).unwrap().clone();
        other.remove(&key);
    }
    let result = run(PARTITION, &other, &big, ExchangeConfig::default());
    let Outcome::Done(diff) = result.outcome else {
        panic!("replicas differ")
    };
    assert_eq!(sorted(&diff), model_diff(&other.entries, &big.entries));
    assert!(
        result.messages >= 2 * 3,
        "2.5 MB of keys need at least three pages"
    );
}

#[test]
fn the_diff_stops_at_its_bound_and_says_so() {
    let a = filled(4, 0..(DIFF_KEYS_MAX as u64 + 500));
    let b = Replica::new(4);
    let result = run(PARTITION, &a, &b, ExchangeConfig::default());
    let Outcome::Done(diff) = result.outcome else {
        panic!("replicas differ")
    };
    assert!(!diff.complete);
    assert_eq!(diff.len(), DIFF_KEYS_MAX);
    assert!(diff
        .keys_to_push
        .iter()
        .all(|key| a.entries.contains_key(key)));
}

#[test]
fn roots_are_compared_in_bulk() {
    let ours: Vec<(PartitionId, Hash)> = (0..10_000u32)
        .rev()
        .map(|id| (PartitionId(id), digest(id.into())))
        .collect();
    let requests = roots_requests(ours.iter().copied().chain([(PartitionId(3), digest(0))]));
    assert_eq!(requests.len(), 10_000usize.div_ceil(ROOTS_PER_MESSAGE_MAX));
    let theirs = |partition: PartitionId| match partition.0 {
        5 | 4100 => Some(digest(0)),
        9 => None,
        id => Some(digest(id.into())),
    };
    let mut outcome = RootsOutcome::default();
    for request in &requests {
        let answer = respond_roots(request, theirs).unwrap();
        let part = compare_roots(request, answer).unwrap();
        outcome.differing.extend(part.differing);
        outcome.not_held.extend(part.not_held);
    }
    assert_eq!(outcome.differing, vec![PartitionId(5), PartitionId(4100)]);
    assert_eq!(outcome.not_held, vec![PartitionId(9)]);
}

fn answer(request: &Message, tree: &PartitionTree) -> Result<Message, StepError<Infallible>> {
    respond(request, tree, |_| Ok(Vec::new()))
}

fn protocol_error(result: Result<Message, StepError<Infallible>>) -> ExchangeError {
    match result {
        Err(StepError::Protocol(error)) => error,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

fn tree_level(level: u8, reply_level: u8, indexes: Vec<u32>) -> Message {
    let hashes = vec![digest(1); indexes.len()];
    Message::TreeLevel {
        partition: PARTITION,
        depth: 10,
        level,
        reply_level,
        indexes,
        hashes,
    }
}

#[test]
fn the_responder_refuses_malformed_requests() {
    let tree = filled(10, 0..100).tree;
    let error = |request: Message| protocol_error(answer(&request, &tree));
    let mut wrong_depth = tree_level(0, 5, vec![0]);
    if let Message::TreeLevel { depth, .. } = &mut wrong_depth {
        *depth = 9;
    }
    assert_eq!(
        error(wrong_depth),
        ExchangeError::DepthMismatch {
            ours: 10,
            theirs: 9
        }
    );
    assert!(matches!(
        error(tree_level(11, 11, vec![0])),
        ExchangeError::LevelOutOfRange { .. }
    ));
    assert!(matches!(
        error(tree_level(0, 9, vec![0])),
        ExchangeError::LevelOutOfRange { .. }
    ));
    assert!(matches!(
        error(tree_level(3, 3, vec![0])),
        ExchangeError::LevelOutOfRange { .. }
    ));
    assert_eq!(
        error(tree_level(3, 5, vec![2, 1])),
        ExchangeError::NotIncreasing
    );
    assert_eq!(
        error(tree_level(3, 5, vec![8])),
        ExchangeError::IndexOutOfRange { level: 3, index: 8 }
    );
    assert_eq!(error(tree_level(3, 5, vec![])), ExchangeError::Empty);
    assert!(matches!(
        error(tree_level(
            10,
            10,
            (0..(HASHES_PER_MESSAGE_MAX as u32 + 1)).collect()
        )),
        ExchangeError::TooLarge {
            what: Bound::Hashes,
            ..
        }
    ));
    // Within the message limit, but asking for an answer over it (65 nodes × 2^6).
    let deep = filled(16, 0..10).tree;
    let mut greedy = tree_level(10, 16, (0..65).collect());
    if let Message::TreeLevel { depth, .. } = &mut greedy {
        *depth = 16;
    }
    assert!(matches!(
        protocol_error(answer(&greedy, &deep)),
        ExchangeError::TooLarge {
            what: Bound::Hashes,
            count: 4160,
            ..
        }
    ));
    let mut unpaired = tree_level(3, 5, vec![1, 2]);
    if let Message::TreeLevel { hashes, .. } = &mut unpaired {
        hashes.pop();
    }
    assert_eq!(
        error(unpaired),
        ExchangeError::LengthMismatch {
            indexes: 2,
            hashes: 1
        }
    );
    let leaves = |leaves: Vec<u32>, after: Option<Vec<u8>>| Message::LeafRequest {
        partition: PARTITION,
        depth: 10,
        leaves,
        after,
    };
    assert_eq!(error(leaves(vec![], None)), ExchangeError::Empty);
    assert_eq!(
        error(leaves(vec![1024], None)),
        ExchangeError::IndexOutOfRange {
            level: 10,
            index: 1024
        }
    );
    assert_eq!(
        error(leaves(vec![1], Some(vec![0; ENTRY_KEY_BYTES_MAX + 1]))),
        ExchangeError::KeyTooLarge {
            len: ENTRY_KEY_BYTES_MAX + 1
        }
    );
    assert_eq!(
        error(Message::InSync {
            partition: PARTITION
        }),
        ExchangeError::Unexpected {
            got: MessageKind::InSync
        }
    );
    assert!(matches!(
        respond_roots(
            &Message::InSync {
                partition: PARTITION
            },
            |_| None
        ),
        Err(ExchangeError::Unexpected { .. })
    ));
    let unsorted = Message::Roots {
        partitions: vec![(PartitionId(2), digest(0)), (PartitionId(1), digest(0))],
    };
    assert_eq!(
        respond_roots(&unsorted, |_| None),
        Err(ExchangeError::NotIncreasing)
    );
}

#[test]
fn the_responder_passes_on_a_storage_failure() {
    let a = filled(2, 0..10);
    let request = Message::LeafRequest {
        partition: PARTITION,
        depth: 2,
        leaves: vec![1, 3],
        after: None,
    };
    let result = respond(&request, &a.tree, |leaf| {
        if leaf == 3 {
            Err("disk")
        } else {
            Ok(a.entries(leaf))
        }
    });
    assert!(matches!(
        result,
        Err(StepError::Source {
            leaf: 3,
            error: "disk"
        })
    ));
}

/// An initiator that has sent its root for a tree of 100 keys, and that tree.
fn started() -> (Exchange, PartitionTree) {
    let tree = filled(10, 0..100).tree;
    let (exchange, first) = Exchange::start(PARTITION, &tree);
    assert!(matches!(
        first,
        Message::TreeLevel {
            level: 0,
            reply_level: 5,
            ..
        }
    ));
    (exchange, tree)
}

fn feed(exchange: &mut Exchange, tree: &PartitionTree, message: Message) -> ExchangeError {
    match exchange.on_message(message, tree, |_| Ok::<_, Infallible>(Vec::new())) {
        Err(StepError::Protocol(error)) => error,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn the_initiator_refuses_answers_that_do_not_fit_its_question() {
    let descendants = |level: u8, indexes: Vec<u32>| {
        let hashes = vec![digest(1); indexes.len()];
        Message::Descendants {
            partition: PARTITION,
            level,
            indexes,
            hashes,
        }
    };
    let cases = [
        (descendants(4, vec![0]), "wrong level"),
        (descendants(5, vec![32]), "index outside the level"),
        (descendants(5, vec![3, 3]), "repeated index"),
        (
            Message::InSync {
                partition: PartitionId(8),
            },
            "other partition",
        ),
        (
            Message::LeafEntries {
                partition: PARTITION,
                pages: vec![],
                unsent: vec![],
            },
            "entries for a non-leaf level",
        ),
        (Message::Roots { partitions: vec![] }, "a request as answer"),
    ];
    let mut errors = Vec::new();
    for (message, case) in cases {
        let (mut exchange, tree) = started();
        errors.push((feed(&mut exchange, &tree, message), case));
        // After an error the exchange is over.
        assert_eq!(
            feed(
                &mut exchange,
                &tree,
                Message::InSync {
                    partition: PARTITION
                }
            ),
            ExchangeError::Finished
        );
    }
    assert!(
        matches!(errors[0].0, ExchangeError::LevelOutOfRange { level: 4, .. }),
        "{errors:?}"
    );
    assert!(
        matches!(
            errors[1].0,
            ExchangeError::IndexOutOfRange {
                level: 5,
                index: 32
            }
        ),
        "{errors:?}"
    );
    assert_eq!(errors[2].0, ExchangeError::NotIncreasing);
    assert!(matches!(
        errors[3].0,
        ExchangeError::PartitionMismatch { .. }
    ));
    assert_eq!(
        errors[4].0,
        ExchangeError::Unexpected {
            got: MessageKind::LeafEntries
        }
    );
    assert_eq!(
        errors[5].0,
        ExchangeError::Unexpected {
            got: MessageKind::Roots
        }
    );
}

/// Two replicas differing in one key, and an initiator whose walk reached the leaf
/// level: it has just sent its leaf hashes (the returned request).
fn at_leaf_level() -> (Exchange, Replica, Replica, Message) {
    let a = filled(10, 0..100);
    let mut b = a.clone();
    b.put(b"extra", digest(5));
    let (mut exchange, request) = Exchange::start(PARTITION, &a.tree);
    let answer = respond(&request, &b.tree, |leaf| {
        Ok::<_, Infallible>(b.entries(leaf))
    })
    .unwrap();
    let step = exchange.on_message(answer, &a.tree, |leaf| Ok::<_, Infallible>(a.entries(leaf)));
    let Ok(Step::Send(request)) = step else {
        panic!("the walk goes on: {step:?}")
    };
    assert!(matches!(request, Message::TreeLevel { level: 10, .. }));
    (exchange, a, b, request)
}

#[test]
fn the_initiator_refuses_leaf_entries_that_do_not_fit_the_leaf() {
    let leaf = Replica::new(10).tree.leaf_of(b"extra");
    let page = |leaf, entries: Vec<(Vec<u8>, Hash)>, complete| LeafPage {
        leaf,
        entries,
        complete,
    };
    let bad = [
        (
            vec![page(leaf, vec![(b"not-here".to_vec(), digest(1))], true)],
            "a key of another leaf",
        ),
        (vec![page(leaf, vec![], false)], "an empty incomplete page"),
        (
            vec![page(leaf ^ 512, vec![], true)],
            "a leaf under a node that did not differ",
        ),
    ];
    let mut errors = Vec::new();
    for (pages, case) in bad {
        let (mut exchange, a, _, _) = at_leaf_level();
        let message = Message::LeafEntries {
            partition: PARTITION,
            pages,
            unsent: vec![],
        };
        errors.push((feed(&mut exchange, &a.tree, message), case));
    }
    assert!(
        matches!(errors[0].0, ExchangeError::WrongLeaf { .. }),
        "{errors:?}"
    );
    assert_eq!(errors[1].0, ExchangeError::NoProgress);
    assert!(
        matches!(errors[2].0, ExchangeError::NotRequested { level: 10, .. }),
        "{errors:?}"
    );
    // The genuine answer completes the exchange.
    let (mut exchange, a, b, request) = at_leaf_level();
    let answer = respond(&request, &b.tree, |leaf| {
        Ok::<_, Infallible>(b.entries(leaf))
    })
    .unwrap();
    let step = exchange
        .on_message(answer, &a.tree, |leaf| Ok::<_, Infallible>(a.entries(leaf)))
        .unwrap();
    let Step::Done(diff) = step else {
        panic!("one key differs")
    };
    assert_eq!(diff.keys_to_pull, vec![b"extra".to_vec()]);
    assert!(diff.keys_to_push.is_empty());
}

#[test]
fn undecodable_bytes_are_an_error() {
    assert!(Message::decode(&[0xc1]).is_err());
    assert!(Message::decode(&[]).is_err());
    // A hash list whose length is not a multiple of 32.
    let good = tree_level(3, 5, vec![1]).encode();
    let mut bad = good.clone();
    let position = bad
        .windows(2)
        .position(|pair| pair == [0xc4, 32])
        .expect("the hash list is a bin8 of 32 bytes");
    bad[position + 1] = 31;
    bad.remove(position + 2);
    assert!(Message::decode(&bad).is_err());
    assert_eq!(Message::decode(&good).unwrap(), tree_level(3, 5, vec![1]));
}

#[test]
fn roots_answers_are_checked_against_the_request() {
    let request = Message::Roots {
        partitions: vec![(PartitionId(1), digest(0)), (PartitionId(4), digest(0))],
    };
    let answer = |differing: Vec<u32>, not_held: Vec<u32>| Message::RootsDiffer {
        differing: differing.into_iter().map(PartitionId).collect(),
        not_held: not_held.into_iter().map(PartitionId).collect(),
    };
    assert!(matches!(
        compare_roots(&request, answer(vec![2], vec![])),
        Err(ExchangeError::NotRequested { index: 2, .. })
    ));
    assert_eq!(
        compare_roots(&request, answer(vec![4, 1], vec![])),
        Err(ExchangeError::NotIncreasing)
    );
    assert_eq!(
        compare_roots(&request, answer(vec![4], vec![4])),
        Err(ExchangeError::Contradictory {
            partition: PartitionId(4)
        })
    );
    assert!(compare_roots(&request, answer(vec![1], vec![4])).is_ok());
}

#[test]
fn the_largest_messages_stay_far_below_the_transport_frame_limit() {
    // FRAME_BYTES_MAX of the transport is 8 MiB.
    let frame_bytes_max = 8 * 1024 * 1024;
    let level = Message::TreeLevel {
        partition: PARTITION,
        depth: 16,
        level: 16,
        reply_level: 16,
        indexes: (0..HASHES_PER_MESSAGE_MAX as u32)
            .map(|index| index * 16)
            .collect(),
        hashes: vec![digest(1); HASHES_PER_MESSAGE_MAX],
    };
    let key_bytes = LEAF_ENTRY_BYTES_PER_MESSAGE_MAX / LEAF_ENTRIES_PER_MESSAGE_MAX - 32;
    let entries = (0..LEAF_ENTRIES_PER_MESSAGE_MAX)
        .map(|_| (vec![7; key_bytes], digest(2)))
        .collect();
    let leaves = Message::LeafEntries {
        partition: PARTITION,
        pages: vec![LeafPage {
            leaf: 0,
            entries,
            complete: false,
        }],
        unsent: (1..LEAVES_PER_MESSAGE_MAX as u32).collect(),
    };
    assert!(level.encoded_len() < 160 * 1024, "{}", level.encoded_len());
    assert!(
        leaves.encoded_len() < frame_bytes_max / 4,
        "{}",
        leaves.encoded_len()
    );
    // A node hash costs 32 bytes plus its index on the wire, not an array of 32 integers.
    let one = Message::Descendants {
        partition: PARTITION,
        level: 1,
        indexes: vec![0],
        hashes: vec![[0xff; 32]],
    };
    let two = Message::Descendants {
        partition: PARTITION,
        level: 1,
        indexes: vec![0, 1],
        hashes: vec![[0xff; 32]; 2],
    };
    assert_eq!(two.encoded_len() - one.encoded_len(), 33);
}
