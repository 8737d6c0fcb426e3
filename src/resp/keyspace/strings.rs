//! The string commands: `GET`, `SET` (with `EX|PX|EXAT|PXAT|NX|XX|KEEPTTL|GET`),
//! `SETEX`, `PSETEX`, `SETNX`, `GETDEL`, `GETEX`, `MGET`, `MSET` and
//! `INCR|INCRBY|DECR|DECRBY`. Argument checks come first, in Redis's order, so a
//! malformed command never reaches the store.

use super::parse::{self, SetOptions, TimeUnit};
use super::{at_least, bulk_or_null, exactly, integer, unexpected, Answer, KeyspaceError, Scope};
use crate::crdt::redis::{RedisOp, RedisOutcome, RedisValue, SetCondition, SetExpiry};
use crate::limits;
use crate::resp::reply::Reply;
use bytes::Bytes;

/// Runs a string command; `None` if `name` is not one.
pub(super) async fn run(scope: &Scope<'_>, name: &str, args: &[Bytes]) -> Option<Answer> {
    let answer = match name {
        "GET" => get(scope, args).await,
        "SET" => set_command(scope, args).await,
        "SETEX" => set_for(scope, name, args, TimeUnit::Seconds).await,
        "PSETEX" => set_for(scope, name, args, TimeUnit::Millis).await,
        "SETNX" => setnx(scope, args).await,
        "GETDEL" => getdel(scope, args).await,
        "GETEX" => getex(scope, args).await,
        "MGET" => mget(scope, args).await,
        "MSET" => mset(scope, args).await,
        "INCR" | "DECR" | "INCRBY" | "DECRBY" => incr(scope, name, args).await,
        _ => return None,
    };
    Some(answer)
}

/// The string a value shows at `now_ms` as a reply: nil if missing, `WRONGTYPE` for
/// a hash.
fn string_reply(value: &RedisValue, now_ms: u64) -> Answer {
    match value.get(now_ms) {
        Ok(shown) => Ok(bulk_or_null(shown.map(|bytes| bytes.into_owned()))),
        Err(error) => Err(KeyspaceError::Refused(error.to_string())),
    }
}

async fn get(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    exactly("get", args, 1)?;
    let value = scope.value(&args[0]).await?;
    string_reply(&value, scope.now_ms())
}

async fn set_command(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    at_least("set", args, 2)?;
    let options = parse::set_options(&args[2..], scope.now_ms())?;
    set(scope, &args[0], &args[1], options).await
}

/// `SET` once its options are parsed. A condition is checked first on a repairing
/// read at the read level (see the module doc of `keyspace`).
async fn set(scope: &Scope<'_>, key: &[u8], value: &[u8], options: SetOptions) -> Answer {
    let mut base = None;
    if let Some(condition) = options.condition {
        let current = scope.value_with(key, true).await?;
        let now_ms = scope.now_ms();
        let live = current.is_live(now_ms);
        let met = match condition {
            SetCondition::Nx => !live,
            SetCondition::Xx => live,
        };
        if !met {
            return match options.get {
                true => string_reply(&current, now_ms),
                false => Ok(Reply::Null),
            };
        }
        base = Some(current);
    }
    let op = RedisOp::Set {
        value: value.to_vec(),
        expiry: options.expiry,
        condition: options.condition,
        get: options.get,
    };
    let applied = match base {
        // The applying replica decides the condition again, on at least what was read.
        Some(base) => scope.apply_after(key, base, op).await?,
        None => scope.apply(key, op).await?,
    };
    match applied {
        RedisOutcome::Set { old, .. } if options.get => Ok(bulk_or_null(old)),
        RedisOutcome::Set { written: true, .. } => Ok(Reply::ok()),
        RedisOutcome::Set { written: false, .. } => Ok(Reply::Null),
        other => Err(unexpected(other)),
    }
}

/// `SETEX key seconds value`, `PSETEX key milliseconds value`.
async fn set_for(scope: &Scope<'_>, name: &str, args: &[Bytes], unit: TimeUnit) -> Answer {
    let command = name.to_ascii_lowercase();
    exactly(&command, args, 3)?;
    let at = parse::positive_deadline(&args[1], unit, scope.now_ms(), &command)?;
    let options = SetOptions {
        expiry: SetExpiry::AtMs(at),
        condition: None,
        get: false,
    };
    set(scope, &args[0], &args[2], options).await
}

/// `SETNX key value`: 1 if it set, else 0.
async fn setnx(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    exactly("setnx", args, 2)?;
    let options = SetOptions {
        expiry: SetExpiry::Clear,
        condition: Some(SetCondition::Nx),
        get: false,
    };
    let reply = set(scope, &args[0], &args[1], options).await?;
    Ok(Reply::Integer(i64::from(reply == Reply::ok())))
}

async fn getdel(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    exactly("getdel", args, 1)?;
    value_outcome(scope.apply(&args[0], RedisOp::GetDel).await)
}

/// `GETEX key [EX|PX|EXAT|PXAT time|PERSIST]`: without an option, a plain read.
async fn getex(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    at_least("getex", args, 1)?;
    match parse::getex_option(&args[1..], scope.now_ms())? {
        None => {
            let value = scope.value(&args[0]).await?;
            string_reply(&value, scope.now_ms())
        }
        Some(expiry) => value_outcome(scope.apply(&args[0], RedisOp::GetEx(expiry)).await),
    }
}

fn value_outcome(outcome: Result<RedisOutcome, KeyspaceError>) -> Answer {
    match outcome? {
        RedisOutcome::Value(value) => Ok(bulk_or_null(value)),
        other => Err(unexpected(other)),
    }
}

/// `MGET key...`: nil for a key missing or not a string; fails whole when a read fails
/// or the values pass `RESP_MULTI_REPLY_BYTES_MAX`.
async fn mget(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    at_least("mget", args, 1)?;
    let values = scope.values(args).await;
    let now_ms = scope.now_ms();
    let mut replies = Vec::with_capacity(values.len());
    let mut bytes = 0usize;
    for value in values {
        let value = value?;
        let shown = value.get(now_ms).ok().flatten();
        bytes = bytes.saturating_add(shown.as_ref().map_or(0, |shown| shown.len()));
        if bytes > limits::RESP_MULTI_REPLY_BYTES_MAX {
            return Err(KeyspaceError::ReplyTooLarge);
        }
        replies.push(bulk_or_null(shown.map(|shown| shown.into_owned())));
    }
    Ok(Reply::Array(replies))
}

/// `MSET key value [key value ...]`: one write per key (not atomic across keys: each
/// key is its own replicated object); the first failure is the answer.
async fn mset(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    if args.is_empty() || !args.len().is_multiple_of(2) {
        return Err(KeyspaceError::Arity("mset".to_string()));
    }
    let ops = args
        .chunks_exact(2)
        .map(|pair| {
            let op = RedisOp::Set {
                value: pair[1].to_vec(),
                expiry: SetExpiry::Clear,
                condition: None,
                get: false,
            };
            (pair[0].clone(), op)
        })
        .collect();
    for outcome in scope.apply_each(ops).await {
        outcome?;
    }
    Ok(Reply::ok())
}

/// `INCR`, `DECR`, `INCRBY`, `DECRBY`: the new value.
async fn incr(scope: &Scope<'_>, name: &str, args: &[Bytes]) -> Answer {
    let by = match name {
        "INCR" | "DECR" => {
            exactly(&name.to_ascii_lowercase(), args, 1)?;
            1
        }
        _ => {
            exactly(&name.to_ascii_lowercase(), args, 2)?;
            parse::integer(&args[1])?
        }
    };
    let by = match name {
        "DECR" | "DECRBY" => by
            .checked_neg()
            .ok_or(KeyspaceError::Options("decrement would overflow"))?,
        _ => by,
    };
    // The answer is the new total, added to at least what a repairing read found
    // (`Scope::apply`).
    integer(scope.apply(&args[0], RedisOp::IncrBy(by)).await)
}
