use super::parse::{self, deadline_ms, ExpireOptions, SetOptions, TimeUnit};
use super::{cartwheel, KeyspaceError};
use crate::coordinator::quorum::Level;
use crate::coordinator::CoordinatorError;
use crate::crdt::redis::{ExpireCondition, GetExExpiry, SetCondition, SetExpiry};
use crate::resp::connection::ConnectionState;
use crate::resp::reply::Reply;
use crate::wire::Refusal;
use bytes::Bytes;
use proptest::prelude::*;

const NOW_MS: u64 = 1_700_000_000_000;

fn words(text: &str) -> Vec<Bytes> {
    text.split_whitespace()
        .map(|word| Bytes::copy_from_slice(word.as_bytes()))
        .collect()
}

fn set(text: &str) -> Result<SetOptions, KeyspaceError> {
    parse::set_options(&words(text), NOW_MS)
}

#[test]
fn set_without_options_clears_the_expiry() {
    assert_eq!(
        set(""),
        Ok(SetOptions {
            expiry: SetExpiry::Clear,
            condition: None,
            get: false
        })
    );
}

#[test]
fn set_options_combine_in_any_order_and_case() {
    assert_eq!(
        set("nx GET px 1500"),
        Ok(SetOptions {
            expiry: SetExpiry::AtMs(NOW_MS + 1500),
            condition: Some(SetCondition::Nx),
            get: true
        })
    );
    assert_eq!(
        set("KEEPTTL XX"),
        Ok(SetOptions {
            expiry: SetExpiry::KeepTtl,
            condition: Some(SetCondition::Xx),
            get: false
        })
    );
    assert_eq!(
        set("EX 10").unwrap().expiry,
        SetExpiry::AtMs(NOW_MS + 10_000)
    );
    assert_eq!(set("EXAT 20").unwrap().expiry, SetExpiry::AtMs(20_000));
    assert_eq!(set("PXAT 20").unwrap().expiry, SetExpiry::AtMs(20));
}

#[test]
fn set_refuses_conflicting_repeated_or_unknown_options() {
    for text in [
        "NX XX",
        "NX NX",
        "GET GET",
        "EX 1 PX 1",
        "EX 1 KEEPTTL",
        "KEEPTTL PX 5",
        "EX",
        "BOGUS",
        "PX 5 EX",
    ] {
        assert_eq!(set(text), Err(KeyspaceError::Syntax), "{text}");
    }
}

#[test]
fn set_expiry_times_must_be_positive_integers() {
    assert_eq!(set("EX ten"), Err(KeyspaceError::NotInteger));
    assert_eq!(set("PX 1.5"), Err(KeyspaceError::NotInteger));
    for text in ["EX 0", "PX -1", "EX 9223372036854775807"] {
        assert_eq!(
            set(text),
            Err(KeyspaceError::InvalidExpire("set".to_string())),
            "{text}"
        );
    }
    assert_eq!(
        KeyspaceError::InvalidExpire("set".to_string()).to_string(),
        "ERR invalid expire time in 'set' command"
    );
}

#[test]
fn getex_takes_one_expiry_or_persist() {
    let getex = |text: &str| parse::getex_option(&words(text), NOW_MS);
    assert_eq!(getex(""), Ok(None));
    assert_eq!(getex("persist"), Ok(Some(GetExExpiry::Persist)));
    assert_eq!(getex("PX 5"), Ok(Some(GetExExpiry::AtMs(NOW_MS + 5))));
    assert_eq!(getex("PERSIST EX 5"), Err(KeyspaceError::Syntax));
    assert_eq!(getex("EX"), Err(KeyspaceError::Syntax));
    assert_eq!(
        getex("EX 0"),
        Err(KeyspaceError::InvalidExpire("getex".to_string()))
    );
}

#[test]
fn expire_flags_map_to_one_condition_with_redis_errors() {
    let expire = |text: &str| parse::expire_options(&words(text));
    let only = |condition| {
        Ok(ExpireOptions {
            condition,
            needs_deadline: false,
        })
    };
    assert_eq!(expire(""), only(None));
    assert_eq!(expire("nx"), only(Some(ExpireCondition::Nx)));
    assert_eq!(expire("XX"), only(Some(ExpireCondition::Xx)));
    assert_eq!(expire("XX GT"), only(Some(ExpireCondition::Gt)));
    assert_eq!(
        expire("LT XX"),
        Ok(ExpireOptions {
            condition: Some(ExpireCondition::Lt),
            needs_deadline: true
        })
    );
    assert_eq!(
        expire("NX GT").unwrap_err().to_string(),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        expire("GT LT").unwrap_err().to_string(),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        expire("SOON").unwrap_err().to_string(),
        "ERR Unsupported option SOON"
    );
}

#[test]
fn deadlines_past_stay_past_and_overflow_is_refused() {
    assert_eq!(deadline_ms(-10, TimeUnit::Seconds, 5_000), Some(0));
    assert_eq!(deadline_ms(-1, TimeUnit::Millis, 5_000), Some(4_999));
    assert_eq!(deadline_ms(i64::MAX, TimeUnit::Seconds, 0), None);
    assert_eq!(deadline_ms(i64::MAX, TimeUnit::Millis, 5), None);
    assert_eq!(
        deadline_ms(i64::MAX, TimeUnit::MillisAt, 5),
        Some(i64::MAX as u64)
    );
}

proptest! {
    /// Any in-range relative time lands that many milliseconds after now.
    #[test]
    fn relative_deadlines_add_to_now(amount in 0i64..1_000_000_000, now in 0u64..4_000_000_000_000) {
        prop_assert_eq!(deadline_ms(amount, TimeUnit::Millis, now), Some(now + amount as u64));
        prop_assert_eq!(
            deadline_ms(amount, TimeUnit::Seconds, now),
            Some(now + amount as u64 * 1000)
        );
    }
}

#[test]
fn integers_are_parsed_as_redis_parses_them() {
    assert_eq!(parse::integer(b"-42"), Ok(-42));
    for text in ["+1", " 1", "01", "1e3", "", "9223372036854775808"] {
        assert_eq!(
            parse::integer(text.as_bytes()),
            Err(KeyspaceError::NotInteger),
            "{text}"
        );
    }
}

fn connection() -> ConnectionState {
    ConnectionState::new(1, "127.0.0.1:1".parse().unwrap(), true)
}

#[test]
fn cartwheel_level_sets_the_connection_levels() {
    let mut state = connection();
    let answer = cartwheel(&mut state, &words("LEVEL write each_quorum"));
    assert_eq!(answer, Ok(Reply::ok()));
    assert_eq!(state.write, Some(Level::EachQuorum));
    assert_eq!(state.read, None);
    let answer = cartwheel(&mut state, &words("level READ One"));
    assert_eq!(answer, Ok(Reply::ok()));
    assert_eq!(state.read, Some(Level::One));
}

#[test]
fn cartwheel_level_refuses_bad_levels_and_words() {
    let mut state = connection();
    let error = cartwheel(&mut state, &words("LEVEL write sometimes")).unwrap_err();
    assert!(error
        .to_string()
        .starts_with("ERR unknown consistency level"));
    assert!(error.to_string().contains("sometimes"), "{error}");
    let error = cartwheel(&mut state, &words("LEVEL both one")).unwrap_err();
    assert!(error.to_string().contains("'both'"), "{error}");
    let error = cartwheel(&mut state, &words("LEVEL write")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "ERR wrong number of arguments for 'cartwheel' command"
    );
    assert_eq!(state.write, None);
}

#[test]
fn unmet_levels_answer_tryagain_and_redis_refusals_keep_their_line() {
    let unmet = CoordinatorError::QuorumNotReached {
        level: Level::All,
        needed: 3,
        acked: 2,
        replicas: 3,
    };
    assert!(KeyspaceError::of(unmet)
        .to_string()
        .starts_with("TRYAGAIN consistency all not reached"));
    let wrong_type = CoordinatorError::Refused {
        refusal: Refusal::Mismatch,
        message: "WRONGTYPE Operation against a key holding the wrong kind of value".to_string(),
    };
    assert_eq!(
        KeyspaceError::of(wrong_type).reply(),
        Reply::Error(
            "WRONGTYPE Operation against a key holding the wrong kind of value".to_string()
        )
    );
    let too_large = CoordinatorError::Refused {
        refusal: Refusal::TooLarge,
        message: "the document would be 9 bytes, the limit is 8".to_string(),
    };
    assert_eq!(
        KeyspaceError::of(too_large).to_string(),
        "ERR the document would be 9 bytes, the limit is 8"
    );
}
