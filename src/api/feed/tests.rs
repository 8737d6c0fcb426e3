//! The feed's position encoding (round trip, refusals, never a panic on any text) and
//! its filters (parsing, bounds, what they let through, who may read them).

use super::filter::{change_body, identity, parse_query, Access, QueryError};
use super::position::{Position, PositionError, UNKNOWN};
use super::reader::Reader;
use super::stream::Seen;
use super::*;
use crate::feed::{Change, ChangeKind, Cursor};
use crate::ids::{NodeId, PartitionId};
use crate::object::{Class, ObjectKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn position(entries: &[(&str, u64, u64)]) -> Position {
    Position {
        cursors: entries
            .iter()
            .map(|(name, epoch, next)| {
                (
                    node(name),
                    Cursor {
                        epoch: *epoch,
                        next: *next,
                    },
                )
            })
            .collect(),
    }
}

fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn change(class: Class, key: &[u8], kind: ChangeKind, digest: u8) -> Change {
    Change {
        global: 1,
        partition: PartitionId(0),
        seq: 1,
        key: ObjectKey::new(class, key).storage_bytes(),
        kind,
        digest: [digest; 32],
    }
}

#[test]
fn a_position_survives_its_text() {
    let position = position(&[("east-1", 7, 42), ("east-2", u64::MAX, 0), ("east-3", 0, 0)]);
    let text = position.encode();
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(Position::decode(&text), Ok(position));
    assert_eq!(
        Position::decode(&Position::default().encode()),
        Ok(Position::default())
    );
}

#[test]
fn a_position_not_handed_out_is_refused_with_its_reason() {
    let good = position(&[("east-1", 7, 42)]).encode();
    let mut bytes = URL_SAFE_NO_PAD.decode(&good).unwrap();
    assert_eq!(
        Position::decode("not base64!"),
        Err(PositionError::NotBase64)
    );
    assert_eq!(Position::decode(""), Err(PositionError::Empty));
    bytes[0] = 2;
    assert_eq!(
        Position::decode(&URL_SAFE_NO_PAD.encode(&bytes)),
        Err(PositionError::Version(2))
    );
    bytes[0] = 1;
    bytes.push(0);
    let trailing = URL_SAFE_NO_PAD.encode(&bytes);
    assert_eq!(Position::decode(&trailing), Err(PositionError::Malformed));
    let long = "A".repeat(limits::FEED_POSITION_CHARS_MAX + 1);
    assert!(matches!(
        Position::decode(&long),
        Err(PositionError::TooLong(_))
    ));
    let encode = |list: &Vec<(&str, u64, u64)>| {
        let mut bytes = vec![1];
        rmp_serde::encode::write(&mut bytes, list).unwrap();
        URL_SAFE_NO_PAD.encode(bytes)
    };
    let twice = vec![("east-1", 1, 1), ("east-1", 2, 2)];
    assert_eq!(
        Position::decode(&encode(&twice)),
        Err(PositionError::Repeated("east-1".into()))
    );
    let bad_node = vec![("East_1", 1, 1)];
    assert!(matches!(
        Position::decode(&encode(&bad_node)),
        Err(PositionError::BadNode(_))
    ));
    let names: Vec<String> = (0..=limits::FEED_POSITION_NODES_MAX)
        .map(|i| format!("n{i}"))
        .collect();
    let many: Vec<(&str, u64, u64)> = names.iter().map(|name| (name.as_str(), 1, 1)).collect();
    assert_eq!(
        Position::decode(&encode(&many)),
        Err(PositionError::TooManyNodes(limits::FEED_POSITION_NODES_MAX))
    );
}

#[test]
fn a_full_region_position_fits_its_bound() {
    let names: Vec<String> = (0..limits::FEED_POSITION_NODES_MAX)
        .map(|i| format!("{}{i}", "n".repeat(60)))
        .collect();
    let full = Position {
        cursors: names
            .iter()
            .map(|name| {
                (
                    node(name),
                    Cursor {
                        epoch: u64::MAX,
                        next: u64::MAX,
                    },
                )
            })
            .collect(),
    };
    let text = full.encode();
    assert!(
        text.len() <= limits::FEED_POSITION_CHARS_MAX,
        "{} chars",
        text.len()
    );
    assert_eq!(Position::decode(&text), Ok(full));
}

proptest! {
    #[test]
    fn any_text_decodes_or_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Position::decode(&URL_SAFE_NO_PAD.encode(&bytes));
        let mut framed = vec![1];
        framed.extend_from_slice(&bytes);
        let _ = Position::decode(&URL_SAFE_NO_PAD.encode(&framed));
        let _ = Position::decode(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn any_position_round_trips(entries in proptest::collection::btree_map("[a-z0-9]{1,20}", (any::<u64>(), any::<u64>()), 0..10)) {
        let position = Position {
            cursors: entries
                .into_iter()
                .map(|(name, (epoch, next))| (node(&name), Cursor { epoch, next }))
                .collect(),
        };
        prop_assert_eq!(Position::decode(&position.encode()), Ok(position));
    }
}

#[test]
fn filters_parse_within_their_bounds() {
    let query = parse_query(&pairs(&[
        ("class", "kv"),
        ("key", "a"),
        ("key", "b"),
        ("prefix", "cart:"),
    ]))
    .unwrap();
    assert_eq!(query.filter.class, Some(Class::Kv));
    assert_eq!(query.filter.keys, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(query.filter.prefix, Some(b"cart:".to_vec()));
    assert_eq!(query.filter.access(), Access::Open);
    let filter_error =
        |query: &[(&str, &str)]| matches!(parse_query(&pairs(query)), Err(QueryError::Filter(_)));
    assert!(filter_error(&[("class", "nope")]));
    assert!(filter_error(&[("key", "")]));
    assert!(filter_error(&[("user", "dana"), ("key", "x")]));
    assert!(filter_error(&[("user", "dana"), ("class", "kv")]));
    assert!(filter_error(&[("user", "")]));
    assert!(filter_error(&[("user", "a\u{7}b")]));
    let many: Vec<(&str, &str)> = vec![("key", "k"); limits::FEED_FILTER_KEYS_MAX + 1];
    assert!(filter_error(&many));
    let big = "k".repeat(limits::FEED_FILTER_BYTES_MAX / 4 + 1);
    let heavy: Vec<(&str, &str)> = vec![("key", big.as_str()); 4];
    assert!(filter_error(&heavy));
    let other =
        |query: &[(&str, &str)]| matches!(parse_query(&pairs(query)), Err(QueryError::Other(_)));
    assert!(other(&[("color", "red")]));
    assert!(other(&[("class", "kv"), ("class", "kv")]));
    assert!(other(&[("wait_ms", "soon")]));
    assert!(matches!(
        parse_query(&pairs(&[("position", "!!")])),
        Err(QueryError::Position(_))
    ));
    let query = parse_query(&pairs(&[("user", "dana"), ("wait_ms", "500")])).unwrap();
    assert_eq!(query.filter.access(), Access::User("dana".into()));
    assert_eq!(query.wait_ms, Some(500));
    assert_eq!(parse_query(&[]).unwrap().filter.access(), Access::Admin);
    assert_eq!(
        parse_query(&pairs(&[("class", "auth")]))
            .unwrap()
            .filter
            .access(),
        Access::Admin
    );
}

#[test]
fn a_filter_lets_through_what_it_names_only() {
    let kv_cart = change(Class::Kv, b"cart:7", ChangeKind::Written, 1);
    let kv_other = change(Class::Kv, b"other", ChangeKind::Deleted, 2);
    let resp_cart = change(Class::Resp, b"cart:7", ChangeKind::Expired, 3);
    let dana = change(Class::User, b"dana", ChangeKind::Written, 4);
    let dan = change(Class::User, b"dan", ChangeKind::Written, 5);
    let parse = |query: &[(&str, &str)]| parse_query(&pairs(query)).unwrap().filter;
    let everything = parse(&[]);
    assert!([&kv_cart, &kv_other, &resp_cart, &dana]
        .iter()
        .all(|c| everything.matches(c)));
    let kv = parse(&[("class", "kv")]);
    assert!(kv.matches(&kv_cart) && kv.matches(&kv_other) && !kv.matches(&resp_cart));
    let prefix = parse(&[("prefix", "cart:")]);
    assert!(prefix.matches(&kv_cart) && prefix.matches(&resp_cart) && !prefix.matches(&kv_other));
    let keys = parse(&[("class", "kv"), ("key", "other"), ("key", "x")]);
    assert!(keys.matches(&kv_other) && !keys.matches(&kv_cart));
    let user = parse(&[("user", "dana")]);
    assert!(user.matches(&dana) && !user.matches(&dan) && !user.matches(&kv_cart));
    let unknown_class = Change {
        key: vec![9, b'x'],
        ..kv_cart.clone()
    };
    assert!(!everything.matches(&unknown_class));
    assert_eq!(change_body(&unknown_class), None);
}

#[test]
fn a_change_reads_as_text_or_base64_and_says_which() {
    let text = change_body(&change(Class::Kv, b"cart:7", ChangeKind::Expired, 0xab)).unwrap();
    assert_eq!(
        (
            text.class.as_str(),
            text.key.as_str(),
            text.encoding.as_str()
        ),
        ("kv", "cart:7", "utf8")
    );
    assert_eq!(text.kind, "expired");
    assert_eq!(text.digest, "ab".repeat(32));
    let binary = change_body(&change(Class::Auth, &[0xff, 0, 1], ChangeKind::Deleted, 0)).unwrap();
    assert_eq!(
        (
            binary.key.as_str(),
            binary.encoding.as_str(),
            binary.kind.as_str()
        ),
        ("/wAB", "base64", "deleted")
    );
}

#[test]
fn repeats_are_told_apart_by_key_digest_and_kind() {
    let one = change(Class::Kv, b"a", ChangeKind::Written, 1);
    let again = Change {
        global: 9,
        seq: 4,
        partition: PartitionId(3),
        ..one.clone()
    };
    assert_eq!(identity(&one), identity(&again));
    assert_ne!(
        identity(&one),
        identity(&change(Class::Kv, b"a", ChangeKind::Written, 2))
    );
    assert_ne!(
        identity(&one),
        identity(&change(Class::Kv, b"b", ChangeKind::Written, 1))
    );
    assert_ne!(
        identity(&one),
        identity(&change(Class::Kv, b"a", ChangeKind::Deleted, 1))
    );
    let mut seen = Seen::default();
    assert!(seen.insert(identity(&one)));
    assert!(!seen.insert(identity(&again)));
    for i in 0..limits::FEED_STREAM_SEEN_MAX as u64 {
        seen.insert(identity(&change(
            Class::Kv,
            &i.to_le_bytes(),
            ChangeKind::Written,
            0,
        )));
    }
    assert_eq!(seen.len(), limits::FEED_STREAM_SEEN_MAX);
    assert!(
        seen.insert(identity(&one)),
        "the oldest is forgotten past the bound"
    );
}

#[test]
fn a_reader_from_a_position_keeps_its_region_and_reads_newcomers_from_unknown() {
    let region: BTreeSet<NodeId> = [node("east-1"), node("east-2")].into();
    let given = position(&[("east-1", 7, 42), ("west-1", 1, 1)]);
    let reader = Reader::new(Some(&given), &region);
    let mut expected = position(&[("east-1", 7, 42)]);
    expected.cursors.insert(node("east-2"), UNKNOWN);
    assert_eq!(reader.position(), expected);
    assert!(
        reader.unknown(),
        "a node the position does not name is behind until read"
    );
    let whole = position(&[("east-1", 7, 42), ("east-2", 3, 9)]);
    assert!(!Reader::new(Some(&whole), &region).unknown());
    let fresh = Reader::new(None, &region);
    assert!(
        fresh.unknown(),
        "a fresh reader has no cursor until its first read"
    );
    let mut moved = Reader::new(Some(&given), &region);
    moved.set_region(&[node("east-1"), node("east-3")].into());
    assert_eq!(
        moved.position().cursors.keys().cloned().collect::<Vec<_>>(),
        vec![node("east-1"), node("east-3")]
    );
}

#[test]
fn a_long_poll_waits_below_the_request_deadline() {
    let http = HttpSettings::default();
    assert_eq!(
        poll_wait(&http, None),
        Duration::from_millis(limits::FEED_POLL_WAIT_MS_MAX)
    );
    assert_eq!(poll_wait(&http, Some(300)), Duration::from_millis(300));
    assert_eq!(
        poll_wait(&http, Some(u64::MAX)),
        Duration::from_millis(limits::FEED_POLL_WAIT_MS_MAX)
    );
    let short = HttpSettings {
        request_deadline: Duration::from_millis(5_000),
        ..HttpSettings::default()
    };
    assert_eq!(poll_wait(&short, None), Duration::from_millis(3_000));
    assert!(
        poll_wait(&http, None) + Duration::from_millis(limits::FEED_POLL_DEADLINE_MARGIN_MS)
            <= http.request_deadline
    );
}
