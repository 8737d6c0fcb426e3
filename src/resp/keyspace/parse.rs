//! The options of the data commands, parsed into the `RedisOp` pieces they stand for:
//! `SET`'s, `GETEX`'s and `EXPIRE`'s, and expiry times into deadlines. Pure: the time
//! comes in as an argument; errors are Redis's own lines.

use super::KeyspaceError;
use crate::crdt::redis::{parse_integer, ExpireCondition, GetExExpiry, SetCondition, SetExpiry};
use bytes::Bytes;

/// How an expiry time is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    /// `EX`, `SETEX`, `EXPIRE`: seconds from now.
    Seconds,
    /// `PX`, `PSETEX`, `PEXPIRE`: milliseconds from now.
    Millis,
    /// `EXAT`, `EXPIREAT`: a Unix time in seconds.
    SecondsAt,
    /// `PXAT`, `PEXPIREAT`: a Unix time in milliseconds.
    MillisAt,
}

impl TimeUnit {
    fn of_option(option: &[u8]) -> Option<TimeUnit> {
        let upper = option.to_ascii_uppercase();
        match upper.as_slice() {
            b"EX" => Some(TimeUnit::Seconds),
            b"PX" => Some(TimeUnit::Millis),
            b"EXAT" => Some(TimeUnit::SecondsAt),
            b"PXAT" => Some(TimeUnit::MillisAt),
            _ => None,
        }
    }
}

/// The deadline (ms since the epoch) of `amount` in `unit` at `now_ms`: `None` when it
/// overflows a signed 64-bit millisecond time, as Redis refuses it. A time already past
/// gives a deadline already past (0 at the earliest).
pub fn deadline_ms(amount: i64, unit: TimeUnit, now_ms: u64) -> Option<u64> {
    let scaled = match unit {
        TimeUnit::Seconds | TimeUnit::SecondsAt => i128::from(amount) * 1000,
        TimeUnit::Millis | TimeUnit::MillisAt => i128::from(amount),
    };
    let at = match unit {
        TimeUnit::Seconds | TimeUnit::Millis => i128::from(now_ms) + scaled,
        TimeUnit::SecondsAt | TimeUnit::MillisAt => scaled,
    };
    let range = i128::from(i64::MIN)..=i128::from(i64::MAX);
    if !range.contains(&scaled) || at > i128::from(i64::MAX) {
        return None;
    }
    Some(u64::try_from(at.max(0)).unwrap_or(0))
}

/// A strictly positive expiry time (`SET`, `SETEX`, `GETEX`) as a deadline.
pub fn positive_deadline(
    amount: &[u8],
    unit: TimeUnit,
    now_ms: u64,
    command: &str,
) -> Result<u64, KeyspaceError> {
    let amount = parse_integer(amount).ok_or(KeyspaceError::NotInteger)?;
    let invalid = || KeyspaceError::InvalidExpire(command.to_string());
    if amount <= 0 {
        return Err(invalid());
    }
    deadline_ms(amount, unit, now_ms).ok_or_else(invalid)
}

/// What `SET key value [options]` asks besides the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetOptions {
    pub expiry: SetExpiry,
    pub condition: Option<SetCondition>,
    pub get: bool,
}

/// `SET`'s options: `NX|XX`, `GET`, and one of `EX|PX|EXAT|PXAT|KEEPTTL`, in any order,
/// case-insensitive; a repeated or conflicting one is a syntax error.
pub fn set_options(options: &[Bytes], now_ms: u64) -> Result<SetOptions, KeyspaceError> {
    let mut parsed = SetOptions {
        expiry: SetExpiry::Clear,
        condition: None,
        get: false,
    };
    let mut expiry_given = false;
    let mut index = 0;
    while let Some(option) = options.get(index) {
        let upper = option.to_ascii_uppercase();
        match upper.as_slice() {
            b"NX" | b"XX" if parsed.condition.is_none() => {
                parsed.condition = Some(match upper.as_slice() {
                    b"NX" => SetCondition::Nx,
                    _ => SetCondition::Xx,
                });
            }
            b"GET" if !parsed.get => parsed.get = true,
            b"KEEPTTL" if !expiry_given => {
                expiry_given = true;
                parsed.expiry = SetExpiry::KeepTtl;
            }
            _ => match (TimeUnit::of_option(option), options.get(index + 1)) {
                (Some(unit), Some(amount)) if !expiry_given => {
                    expiry_given = true;
                    let at = positive_deadline(amount, unit, now_ms, "set")?;
                    parsed.expiry = SetExpiry::AtMs(at);
                    index += 1;
                }
                _ => return Err(KeyspaceError::Syntax),
            },
        }
        index += 1;
    }
    Ok(parsed)
}

/// `GETEX`'s option: none (a plain read), `PERSIST`, or one of `EX|PX|EXAT|PXAT`.
pub fn getex_option(options: &[Bytes], now_ms: u64) -> Result<Option<GetExExpiry>, KeyspaceError> {
    match options {
        [] => Ok(None),
        [option] if option.eq_ignore_ascii_case(b"PERSIST") => Ok(Some(GetExExpiry::Persist)),
        [option, amount] => match TimeUnit::of_option(option) {
            Some(unit) => {
                let at = positive_deadline(amount, unit, now_ms, "getex")?;
                Ok(Some(GetExExpiry::AtMs(at)))
            }
            None => Err(KeyspaceError::Syntax),
        },
        _ => Err(KeyspaceError::Syntax),
    }
}

/// What `EXPIRE`'s `NX|XX|GT|LT` ask: the op's condition, and whether the key must
/// also have a deadline already (`XX LT`, which one condition cannot say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpireOptions {
    pub condition: Option<ExpireCondition>,
    pub needs_deadline: bool,
}

/// `EXPIRE`'s flags, with Redis's errors for combinations it refuses.
pub fn expire_options(flags: &[Bytes]) -> Result<ExpireOptions, KeyspaceError> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for flag in flags {
        match flag.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                return Err(KeyspaceError::UnsupportedOption(
                    String::from_utf8_lossy(flag).into_owned(),
                ))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(KeyspaceError::Options(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(KeyspaceError::Options(
            "GT and LT options at the same time are not compatible",
        ));
    }
    // A key without a deadline counts as an infinite TTL: `GT` never raises it, so
    // `XX GT` is `GT`; `LT` always lowers it, so `XX LT` also needs a deadline.
    let condition = match (nx, xx, gt, lt) {
        (true, ..) => Some(ExpireCondition::Nx),
        (_, _, true, _) => Some(ExpireCondition::Gt),
        (_, _, _, true) => Some(ExpireCondition::Lt),
        (_, true, ..) => Some(ExpireCondition::Xx),
        _ => None,
    };
    Ok(ExpireOptions {
        condition,
        needs_deadline: xx && lt,
    })
}

/// An integer argument, or Redis's not-an-integer error.
pub fn integer(argument: &[u8]) -> Result<i64, KeyspaceError> {
    parse_integer(argument).ok_or(KeyspaceError::NotInteger)
}
