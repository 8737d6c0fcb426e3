//! What each command does on one replica (as in Redis) and when two regions write one
//! key concurrently (as the module documentation promises).

use serde_bytes::ByteBuf;

use super::*;
use crate::crdt::CrdtError;
use crate::limits::{
    RESP_COUNTER_ACTORS_MAX, RESP_FIELD_NAME_BYTES_MAX, RESP_HASH_FIELDS_MAX, VALUE_BYTES_MAX,
};

/// A copy of the key in one region: its actor and its state.
#[derive(Clone)]
struct Region {
    actor: Actor,
    value: RedisValue,
}

fn region(replica: usize) -> Region {
    Region {
        actor: actor(replica),
        value: RedisValue::new(),
    }
}

impl Region {
    /// Applies `op` at wall time `wall_ms` (also the time expiry is judged at).
    fn run(&mut self, op: RedisOp, wall_ms: u64) -> Result<RedisOutcome, CrdtError> {
        let applied = self.value.apply(&op, at(wall_ms), self.actor, wall_ms)?;
        Ok(applied.outcome)
    }

    fn ok(&mut self, op: RedisOp, wall_ms: u64) -> RedisOutcome {
        self.run(op, wall_ms).expect("the op is accepted")
    }

    fn hear(&mut self, other: &Region) {
        self.value.merge(&other.value);
    }

    fn get(&self, now_ms: u64) -> Option<Vec<u8>> {
        let value = self.value.get(now_ms).expect("a string key");
        value.map(|value| value.into_owned())
    }
}

/// Both regions after hearing each other (checked to agree).
fn exchange(left: &mut Region, right: &mut Region) {
    let (left_before, right_before) = (left.clone(), right.clone());
    left.hear(&right_before);
    right.hear(&left_before);
    assert_eq!(left.value, right.value, "merge is commutative here");
}

fn set(value: &str) -> RedisOp {
    RedisOp::Set {
        value: value.as_bytes().to_vec(),
        expiry: SetExpiry::Clear,
        condition: None,
        get: false,
    }
}

fn set_with(value: &str, expiry: SetExpiry, condition: Option<SetCondition>) -> RedisOp {
    RedisOp::Set {
        value: value.as_bytes().to_vec(),
        expiry,
        condition,
        get: false,
    }
}

fn hset(pairs: &[(&str, &str)]) -> RedisOp {
    RedisOp::HSet(
        pairs
            .iter()
            .map(|(field, value)| {
                (
                    ByteBuf::from(field.as_bytes()),
                    ByteBuf::from(value.as_bytes()),
                )
            })
            .collect(),
    )
}

fn hdel(fields: &[&str]) -> RedisOp {
    RedisOp::HDel(
        fields
            .iter()
            .map(|field| ByteBuf::from(field.as_bytes()))
            .collect(),
    )
}

fn expire(deadline_ms: u64) -> RedisOp {
    RedisOp::Expire {
        deadline_ms,
        condition: None,
    }
}

fn fields(region: &Region, now_ms: u64) -> Vec<(String, String)> {
    region
        .value
        .hash_fields(now_ms)
        .expect("a hash key")
        .into_iter()
        .map(|(field, value)| {
            (
                String::from_utf8_lossy(field).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(field, value)| (field.to_string(), value.to_string()))
        .collect()
}

// ---- one replica: as Redis -------------------------------------------------------------

#[test]
fn strings_and_types_behave_as_in_redis() {
    let mut key = region(0);
    assert_eq!(key.get(1), None);
    assert_eq!(key.value.kind(1), None);
    key.ok(set("hello"), 1);
    assert_eq!(key.get(2), Some(b"hello".to_vec()));
    assert_eq!(key.value.kind(2).map(RedisKind::type_name), Some("string"));
    let before = key.value.clone();
    let refused = key.run(hset(&[("f", "v")]), 3);
    assert_eq!(refused, Err(CrdtError::Redis(RedisError::WrongType)));
    assert_eq!(key.value, before, "a refused op changes nothing");
    assert_eq!(
        key.run(RedisOp::IncrBy(1), 3),
        Err(CrdtError::Redis(RedisError::NotInteger))
    );
    assert_eq!(key.ok(RedisOp::Del, 4), RedisOutcome::Integer(1));
    assert_eq!(key.ok(RedisOp::Del, 5), RedisOutcome::Integer(0));
    assert!(key.value.is_tombstone());
    assert_eq!(
        key.ok(hset(&[("f", "v"), ("g", "w")]), 6),
        RedisOutcome::Integer(2)
    );
    assert_eq!(key.value.kind(7).map(RedisKind::type_name), Some("hash"));
    assert_eq!(
        key.value.get(7),
        Err(RedisError::WrongType),
        "GET on a hash is WRONGTYPE"
    );
    key.ok(set("again"), 8);
    assert_eq!(key.get(9), Some(b"again".to_vec()), "SET overwrites a hash");
    assert_eq!(key.value.hash_len(9), Err(RedisError::WrongType));
}

#[test]
fn error_lines_are_redis_own() {
    assert_eq!(
        CrdtError::from(RedisError::WrongType).to_string(),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        CrdtError::from(RedisError::Overflow).to_string(),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        CrdtError::from(RedisError::NotInteger).to_string(),
        "ERR value is not an integer or out of range"
    );
}

#[test]
fn incr_turns_an_integer_string_into_a_counter() {
    let mut key = region(0);
    key.ok(set_with("10", SetExpiry::AtMs(1_000), None), 1);
    assert_eq!(key.ok(RedisOp::IncrBy(5), 2), RedisOutcome::Integer(15));
    assert_eq!(key.ok(RedisOp::IncrBy(-20), 3), RedisOutcome::Integer(-5));
    assert_eq!(key.get(4), Some(b"-5".to_vec()));
    assert_eq!(key.value.kind(4), Some(RedisKind::Counter));
    assert_eq!(key.value.kind(4).map(RedisKind::type_name), Some("string"));
    assert_eq!(key.value.deadline_ms(), Some(1_000), "INCR keeps the TTL");
    let before = key.value.clone();
    assert_eq!(
        key.run(RedisOp::IncrBy(i64::MIN), 5),
        Err(CrdtError::Redis(RedisError::Overflow))
    );
    assert_eq!(key.value, before);
    assert_eq!(
        key.run(hset(&[("f", "v")]), 5),
        Err(CrdtError::Redis(RedisError::WrongType))
    );
    key.ok(set("7"), 6);
    assert_eq!(key.get(7), Some(b"7".to_vec()), "SET overwrites a counter");
    assert_eq!(
        key.value.deadline_ms(),
        None,
        "SET without KEEPTTL clears the TTL"
    );
    for text in ["+1", " 1", "01", "-0", "", "1.5", "99999999999999999999"] {
        assert_eq!(parse_integer(text.as_bytes()), None, "{text:?}");
    }
    assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
}

#[test]
fn an_incr_on_a_missing_key_counts_from_zero() {
    let mut key = region(0);
    assert_eq!(key.ok(RedisOp::IncrBy(-3), 1), RedisOutcome::Integer(-3));
    assert_eq!(key.ok(RedisOp::IncrBy(3), 2), RedisOutcome::Integer(0));
    assert_eq!(
        key.get(3),
        Some(b"0".to_vec()),
        "a counter at 0 still exists"
    );
}

#[test]
fn hash_commands_behave_as_in_redis() {
    let mut key = region(0);
    assert_eq!(
        key.ok(hset(&[("a", "1"), ("b", "2"), ("a", "3")]), 1),
        RedisOutcome::Integer(2)
    );
    assert_eq!(fields(&key, 2), pairs(&[("a", "3"), ("b", "2")]));
    assert_eq!(
        key.ok(hset(&[("a", "4"), ("c", "5")]), 2),
        RedisOutcome::Integer(1)
    );
    assert_eq!(key.value.hash_get(b"a", 3), Ok(Some(&b"4"[..])));
    assert_eq!(
        key.ok(
            RedisOp::HIncrBy {
                field: b"a".to_vec(),
                by: 10
            },
            3
        ),
        RedisOutcome::Integer(14)
    );
    assert_eq!(
        key.ok(
            RedisOp::HIncrBy {
                field: b"n".to_vec(),
                by: -2
            },
            3
        ),
        RedisOutcome::Integer(-2)
    );
    key.ok(hset(&[("text", "x")]), 4);
    assert_eq!(
        key.run(
            RedisOp::HIncrBy {
                field: b"text".to_vec(),
                by: 1
            },
            5
        ),
        Err(CrdtError::Redis(RedisError::HashValueNotInteger))
    );
    assert_eq!(
        key.ok(hdel(&["a", "a", "missing"]), 5),
        RedisOutcome::Integer(1)
    );
    assert_eq!(key.value.hash_len(6), Ok(4));
    key.ok(hdel(&["b", "c", "n", "text"]), 6);
    assert_eq!(key.value.kind(7), None, "an emptied hash is gone");
    assert_eq!(key.value.hash_len(7), Ok(0));
}

#[test]
fn set_conditions_and_get_behave_as_in_redis() {
    let mut key = region(0);
    let xx = set_with("x", SetExpiry::Clear, Some(SetCondition::Xx));
    assert_eq!(
        key.ok(xx.clone(), 1),
        RedisOutcome::Set {
            written: false,
            old: None
        }
    );
    assert_eq!(
        key.ok(set_with("a", SetExpiry::Clear, Some(SetCondition::Nx)), 2),
        RedisOutcome::Set {
            written: true,
            old: None
        }
    );
    assert_eq!(
        key.ok(set_with("b", SetExpiry::Clear, Some(SetCondition::Nx)), 3),
        RedisOutcome::Set {
            written: false,
            old: None
        }
    );
    assert_eq!(key.get(4), Some(b"a".to_vec()));
    let get = RedisOp::Set {
        value: b"c".to_vec(),
        expiry: SetExpiry::Clear,
        condition: None,
        get: true,
    };
    assert_eq!(
        key.ok(get.clone(), 4),
        RedisOutcome::Set {
            written: true,
            old: Some(b"a".to_vec())
        }
    );
    key.ok(RedisOp::Del, 5);
    key.ok(hset(&[("f", "v")]), 6);
    let before = key.value.clone();
    assert_eq!(
        key.run(get, 7),
        Err(CrdtError::Redis(RedisError::WrongType))
    );
    assert_eq!(key.value, before, "SET GET on a hash writes nothing");
    assert_eq!(
        key.run(RedisOp::GetDel, 8),
        Err(CrdtError::Redis(RedisError::WrongType))
    );
    key.ok(set("s"), 9);
    assert_eq!(
        key.ok(RedisOp::GetDel, 10),
        RedisOutcome::Value(Some(b"s".to_vec()))
    );
    assert_eq!(key.value.kind(11), None);
}

#[test]
fn bounds_are_refused_and_change_nothing() {
    let mut key = region(0);
    let long_field = "f".repeat(RESP_FIELD_NAME_BYTES_MAX + 1);
    assert!(matches!(
        key.run(hset(&[(long_field.as_str(), "v")]), 1),
        Err(CrdtError::TooLarge { .. })
    ));
    let big = RedisOp::Set {
        value: vec![b'x'; VALUE_BYTES_MAX + 1],
        expiry: SetExpiry::Clear,
        condition: None,
        get: false,
    };
    assert!(matches!(key.run(big, 1), Err(CrdtError::TooLarge { .. })));
    let half = "v".repeat(VALUE_BYTES_MAX / 2);
    key.ok(hset(&[("a", half.as_str())]), 2);
    let before = key.value.clone();
    assert!(matches!(
        key.run(hset(&[("b", half.as_str())]), 3),
        Err(CrdtError::TooLarge { .. })
    ));
    assert_eq!(key.value, before, "a hash past VALUE_BYTES_MAX is refused");

    let mut hash = region(0);
    let names: Vec<String> = (0..RESP_HASH_FIELDS_MAX).map(|n| n.to_string()).collect();
    let all: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "")).collect();
    hash.ok(hset(&all), 1);
    assert_eq!(hash.value.hash_len(2), Ok(RESP_HASH_FIELDS_MAX));
    assert_eq!(
        hash.run(hset(&[("one-more", "")]), 2),
        Err(CrdtError::TooMany {
            what: "hash fields",
            max: RESP_HASH_FIELDS_MAX
        })
    );
    assert_eq!(
        hash.ok(hset(&[("0", "changed")]), 3),
        RedisOutcome::Integer(0)
    );
}

#[test]
fn counter_actors_are_bounded() {
    let mut key = region(0);
    for replica in 0..RESP_COUNTER_ACTORS_MAX {
        let mut other = region(replica);
        other.hear(&key);
        other.ok(RedisOp::IncrBy(1), replica as u64 + 1);
        key.hear(&other);
    }
    let mut newcomer = region(RESP_COUNTER_ACTORS_MAX);
    newcomer.hear(&key);
    let before = newcomer.value.clone();
    assert_eq!(
        newcomer.run(RedisOp::IncrBy(1), 1_000),
        Err(CrdtError::TooMany {
            what: "counter actors",
            max: RESP_COUNTER_ACTORS_MAX
        })
    );
    assert_eq!(newcomer.value, before);
    let total = RESP_COUNTER_ACTORS_MAX as i64 + 1;
    assert_eq!(
        key.ok(RedisOp::IncrBy(1), 1_000),
        RedisOutcome::Integer(total)
    );
}

// ---- expiry ----------------------------------------------------------------------------

#[test]
fn nothing_expired_is_served_and_a_write_starts_a_new_key() {
    let mut key = region(0);
    key.ok(hset(&[("old", "1")]), 1);
    assert_eq!(key.ok(expire(100), 2), RedisOutcome::Integer(1));
    assert!(key.value.is_live(99));
    assert!(!key.value.is_live(100));
    assert_eq!(key.value.kind(100), None);
    assert_eq!(key.value.hash_get(b"old", 100), Ok(None));
    assert_eq!(
        key.value.deadline_ms(),
        Some(100),
        "the sweeper finds the deadline"
    );
    assert_eq!(key.ok(hset(&[("new", "2")]), 150), RedisOutcome::Integer(1));
    assert_eq!(
        fields(&key, 151),
        pairs(&[("new", "2")]),
        "the expired fields are gone"
    );
    assert_eq!(key.value.deadline_ms(), None, "the new hash has no TTL");
    assert_eq!(key.ok(expire(50), 152), RedisOutcome::Integer(1));
    assert_eq!(
        key.value.kind(152),
        None,
        "an EXPIRE in the past ends the key at once"
    );
}

#[test]
fn expire_conditions_follow_redis() {
    let mut key = region(0);
    assert_eq!(
        key.ok(expire(500), 1),
        RedisOutcome::Integer(0),
        "no key, no expiry"
    );
    key.ok(set("v"), 1);
    let with = |deadline_ms, condition| RedisOp::Expire {
        deadline_ms,
        condition: Some(condition),
    };
    assert_eq!(
        key.ok(with(500, ExpireCondition::Xx), 2),
        RedisOutcome::Integer(0)
    );
    assert_eq!(
        key.ok(with(500, ExpireCondition::Gt), 2),
        RedisOutcome::Integer(0),
        "no TTL is infinite for GT"
    );
    assert_eq!(
        key.ok(with(500, ExpireCondition::Lt), 2),
        RedisOutcome::Integer(1),
        "no TTL is infinite for LT"
    );
    assert_eq!(
        key.ok(with(900, ExpireCondition::Nx), 3),
        RedisOutcome::Integer(0)
    );
    assert_eq!(
        key.ok(with(400, ExpireCondition::Gt), 3),
        RedisOutcome::Integer(0)
    );
    assert_eq!(
        key.ok(with(600, ExpireCondition::Gt), 3),
        RedisOutcome::Integer(1)
    );
    assert_eq!(key.value.deadline_ms(), Some(600));
    assert_eq!(key.value.pttl(100), 500);
    assert_eq!(key.value.pttl(600), -2);
    assert_eq!(key.ok(RedisOp::Persist, 4), RedisOutcome::Integer(1));
    assert_eq!(key.value.pttl(600), -1);
    assert_eq!(key.ok(RedisOp::Persist, 5), RedisOutcome::Integer(0));
    assert_eq!(key.value.deadline_ms(), None);
    assert_eq!(
        key.ok(expire(700), 6),
        RedisOutcome::Integer(1),
        "a later EXPIRE sets it again"
    );
    assert_eq!(key.value.deadline_ms(), Some(700));
}

#[test]
fn keepttl_keeps_and_set_clears_the_deadline() {
    let mut key = region(0);
    key.ok(set_with("a", SetExpiry::AtMs(500), None), 1);
    key.ok(set_with("b", SetExpiry::KeepTtl, None), 2);
    assert_eq!(key.value.deadline_ms(), Some(500));
    let getex = RedisOp::GetEx(GetExExpiry::AtMs(800));
    assert_eq!(key.ok(getex, 3), RedisOutcome::Value(Some(b"b".to_vec())));
    assert_eq!(key.value.deadline_ms(), Some(800));
    key.ok(set("c"), 4);
    assert_eq!(key.value.deadline_ms(), None);
    assert!(key.value.is_live(u64::MAX));
}

#[test]
fn the_sweeper_ends_only_the_expired_value() {
    let mut east = region(0);
    east.ok(set_with("a", SetExpiry::AtMs(100), None), 1);
    let mut west = region(1);
    west.hear(&east);
    assert_eq!(east.value.sweep(99, 99), Err(CrdtError::StillLive));
    let delta = east
        .value
        .sweep(100, 110)
        .expect("expired")
        .expect("a delete");
    assert!(east.value.is_tombstone());
    assert_eq!(
        east.value.deleted_ms(),
        110,
        "collection waits past the sweep, not the SET"
    );
    assert_eq!(
        east.value.sweep(100, 110),
        Ok(None),
        "nothing left to sweep"
    );
    // West, not having heard of the sweep, wrote a new value after the deadline.
    west.ok(set("fresh"), 120);
    west.value.merge(&delta);
    east.hear(&west);
    assert_eq!(east.value, west.value);
    assert_eq!(east.get(130), Some(b"fresh".to_vec()));
    // A key without a deadline is never swept.
    assert_eq!(east.value.sweep(u64::MAX, 200), Err(CrdtError::StillLive));
}

// ---- across regions --------------------------------------------------------------------

#[test]
fn set_set_and_set_del_are_last_writer_wins() {
    for (east_ms, west_ms) in [(10, 20), (20, 10)] {
        let (mut east, mut west) = (region(0), region(1));
        east.ok(set("east"), east_ms);
        west.ok(set("west"), west_ms);
        exchange(&mut east, &mut west);
        let winner = if east_ms > west_ms { "east" } else { "west" };
        assert_eq!(east.get(30), Some(winner.as_bytes().to_vec()));

        let (mut east, mut west) = (region(0), region(1));
        east.ok(set("east"), 1);
        west.hear(&east);
        east.ok(set("newer"), east_ms);
        west.ok(RedisOp::Del, west_ms);
        exchange(&mut east, &mut west);
        let expected = (east_ms > west_ms).then(|| b"newer".to_vec());
        assert_eq!(east.get(30), expected);
    }
}

#[test]
fn a_field_set_concurrent_with_del_survives() {
    let (mut east, mut west) = (region(0), region(1));
    east.ok(hset(&[("seen", "1"), ("cart", "1")]), 1);
    west.hear(&east);
    // The delete is later by the clock, the field set still survives it.
    east.ok(RedisOp::Del, 50);
    west.ok(hset(&[("cart", "2"), ("new", "3")]), 10);
    exchange(&mut east, &mut west);
    assert_eq!(fields(&east, 60), pairs(&[("cart", "2"), ("new", "3")]));
}

#[test]
fn a_field_set_concurrent_with_hdel_survives() {
    let (mut east, mut west) = (region(0), region(1));
    east.ok(hset(&[("f", "1")]), 1);
    west.hear(&east);
    east.ok(hdel(&["f"]), 50);
    west.ok(hset(&[("f", "2")]), 10);
    exchange(&mut east, &mut west);
    assert_eq!(fields(&east, 60), pairs(&[("f", "2")]));
}

#[test]
fn counters_sum_and_del_removes_only_what_it_saw() {
    // Redis Enterprise's own example: 10 and 50 synced, then DEL against INCRBY 100.
    let (mut east, mut west) = (region(0), region(1));
    east.ok(RedisOp::IncrBy(10), 1);
    west.ok(RedisOp::IncrBy(50), 1);
    exchange(&mut east, &mut west);
    assert_eq!(east.get(2), Some(b"60".to_vec()));
    east.ok(RedisOp::Del, 30);
    west.ok(RedisOp::IncrBy(100), 3);
    exchange(&mut east, &mut west);
    assert_eq!(east.get(40), Some(b"100".to_vec()));
    assert_eq!(west.ok(RedisOp::IncrBy(1), 41), RedisOutcome::Integer(101));
}

#[test]
fn a_type_conflict_goes_to_the_newer_write() {
    for (set_ms, hset_ms, shown) in [(10, 20, RedisKind::Hash), (20, 10, RedisKind::String)] {
        let (mut east, mut west) = (region(0), region(1));
        east.ok(set("s"), set_ms);
        west.ok(hset(&[("f", "v")]), hset_ms);
        exchange(&mut east, &mut west);
        assert_eq!(east.value.kind(30), Some(shown));
        // The next whole-key write removes the hidden loser too.
        east.ok(RedisOp::Del, 40);
        assert_eq!(east.value.kind(41), None);
        assert!(east.value.is_tombstone());
    }
}

#[test]
fn concurrent_set_nx_both_succeed_and_one_value_stays() {
    let (mut east, mut west) = (region(0), region(1));
    let nx = |value| set_with(value, SetExpiry::Clear, Some(SetCondition::Nx));
    assert_eq!(
        east.ok(nx("east"), 10),
        RedisOutcome::Set {
            written: true,
            old: None
        }
    );
    assert_eq!(
        west.ok(nx("west"), 11),
        RedisOutcome::Set {
            written: true,
            old: None
        }
    );
    exchange(&mut east, &mut west);
    assert_eq!(east.get(20), Some(b"west".to_vec()));
}

#[test]
fn the_longest_ttl_and_persist_win() {
    let (mut east, mut west) = (region(0), region(1));
    east.ok(set("v"), 1);
    west.hear(&east);
    east.ok(expire(900), 10);
    west.ok(expire(500), 20);
    exchange(&mut east, &mut west);
    assert_eq!(east.value.deadline_ms(), Some(900), "the longest TTL wins");

    let mut third = region(2);
    third.hear(&east);
    east.ok(expire(2_000), 30);
    third.ok(RedisOp::Persist, 25);
    exchange(&mut east, &mut third);
    assert_eq!(east.value.deadline_ms(), None, "PERSIST wins");
}

#[test]
fn a_set_that_wins_keeps_its_own_expiry() {
    let (mut east, mut west) = (region(0), region(1));
    east.ok(set_with("old", SetExpiry::AtMs(100), None), 1);
    west.hear(&east);
    east.ok(set("new"), 20);
    west.ok(expire(5_000), 10);
    exchange(&mut east, &mut west);
    assert_eq!(east.get(30), Some(b"new".to_vec()));
    assert_eq!(
        east.value.deadline_ms(),
        None,
        "the EXPIRE was of the value replaced"
    );
}

#[test]
fn a_hash_reborn_after_del_keeps_a_concurrent_expire() {
    let (mut east, mut west) = (region(0), region(1));
    east.ok(hset(&[("a", "1")]), 1);
    west.hear(&east);
    east.ok(RedisOp::Del, 20);
    west.ok(hset(&[("b", "2")]), 10);
    west.ok(expire(1_000), 11);
    exchange(&mut east, &mut west);
    assert_eq!(fields(&east, 30), pairs(&[("b", "2")]));
    assert_eq!(east.value.deadline_ms(), Some(1_000));
}

#[test]
fn rename_carries_content_and_deadline() {
    let mut source = region(0);
    source.ok(hset(&[("a", "1"), ("b", "2")]), 1);
    let content = source.value.content(2).expect("a live key");
    let mut target = region(0);
    target.ok(set("overwritten"), 1);
    let replace = RedisOp::Replace {
        content,
        deadline_ms: Some(500),
    };
    assert_eq!(target.ok(replace, 3), RedisOutcome::Done);
    assert_eq!(fields(&target, 4), pairs(&[("a", "1"), ("b", "2")]));
    assert_eq!(target.value.deadline_ms(), Some(500));
}

#[test]
fn a_state_survives_encoding() {
    let mut key = region(0);
    key.ok(hset(&[("a", "1")]), 1);
    key.ok(expire(100), 2);
    let bytes = rmp_serde::to_vec(&key.value).expect("encodes");
    let decoded: RedisValue = rmp_serde::from_slice(&bytes).expect("decodes");
    assert_eq!(decoded, key.value);
}

#[test]
fn a_new_key_on_a_deleted_one_starts_without_a_stale_deadline() {
    let (mut east, mut west) = (region(0), region(1));
    east.ok(set("v"), 1);
    west.hear(&east);
    east.ok(RedisOp::Del, 20);
    west.ok(expire(1_000), 10);
    exchange(&mut east, &mut west);
    assert_eq!(
        east.value.kind(30),
        None,
        "the EXPIRE alone brings nothing back"
    );
    east.ok(hset(&[("f", "1")]), 40);
    assert_eq!(east.value.deadline_ms(), None, "a new hash has no TTL");
    west.ok(RedisOp::IncrBy(1), 40);
    assert_eq!(west.value.deadline_ms(), None, "a new counter has no TTL");
}

#[test]
fn stored_sizes_stay_small() {
    let encoded = |value: &RedisValue| rmp_serde::to_vec(value).expect("encodes").len();
    let mut session = region(0);
    let payload = "s".repeat(200);
    session.ok(
        set_with(&payload, SetExpiry::AtMs(1_700_000_000_000), None),
        1_700_000_000_000,
    );
    let session_bytes = encoded(&session.value);
    let mut counter = region(0);
    counter.ok(RedisOp::IncrBy(1), 1_700_000_000_000);
    let one = encoded(&counter.value);
    for replica in 1..9 {
        let mut other = region(replica);
        other.hear(&counter);
        other.ok(RedisOp::IncrBy(1), 1_700_000_000_000 + replica as u64);
        counter.hear(&other);
    }
    let per_actor = (encoded(&counter.value) - one) / 8;
    println!("session string key: {session_bytes} bytes for 200; counter: {one} bytes, {per_actor} per more actor");
    assert!(session_bytes < payload.len() + 120, "{session_bytes}");
    assert!(per_actor <= 64, "{per_actor}");
}

#[test]
fn only_a_counter_increment_is_unsafe_to_apply_twice() {
    // A coordinator that lost a minter's answer asks the next replica only for ops
    // whose second application changes nothing (`wire::PeerRequest::repeatable`).
    assert!(!RedisOp::IncrBy(3).repeatable());
    assert!(set("v").repeatable());
    assert!(RedisOp::Del.repeatable());
    assert!(RedisOp::HSet(vec![(ByteBuf::from("f"), ByteBuf::from("v"))]).repeatable());
    let doc = crate::crdt::DocOp::Redis(RedisOp::IncrBy(1));
    assert!(!doc.repeatable());
    let after = crate::crdt::DocOp::RedisAfter {
        base: Box::default(),
        op: RedisOp::IncrBy(1),
    };
    assert!(!after.repeatable());
    assert!(crate::crdt::DocOp::Redis(RedisOp::Persist).repeatable());
}
