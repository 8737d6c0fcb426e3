//! The key commands: `DEL`, `UNLINK`, `EXISTS`, `TYPE`,
//! `EXPIRE|PEXPIRE|EXPIREAT|PEXPIREAT` (with `NX|XX|GT|LT`), `PERSIST`, `TTL`, `PTTL`
//! and `RENAME` (`SCAN` is `scan`'s).

use super::parse::{self, TimeUnit};
use super::{at_least, exactly, integer, unexpected, Answer, KeyspaceError, Scope};
use crate::crdt::redis::{RedisOp, RedisOutcome};
use crate::resp::reply::Reply;
use bytes::Bytes;

/// Runs a key command; `None` if `name` is not one.
pub(super) async fn run(scope: &Scope<'_>, name: &str, args: &[Bytes]) -> Option<Answer> {
    let answer = match name {
        "DEL" | "UNLINK" => del(scope, name, args).await,
        "EXISTS" => exists(scope, args).await,
        "TYPE" => kind(scope, args).await,
        "EXPIRE" => expire(scope, name, args, TimeUnit::Seconds).await,
        "PEXPIRE" => expire(scope, name, args, TimeUnit::Millis).await,
        "EXPIREAT" => expire(scope, name, args, TimeUnit::SecondsAt).await,
        "PEXPIREAT" => expire(scope, name, args, TimeUnit::MillisAt).await,
        "PERSIST" => persist(scope, args).await,
        "TTL" => ttl(scope, args, 1000).await,
        "PTTL" => ttl(scope, args, 1).await,
        "RENAME" => rename(scope, args).await,
        _ => return None,
    };
    Some(answer)
}

/// `DEL key...`, `UNLINK key...`: how many of the keys existed.
async fn del(scope: &Scope<'_>, name: &str, args: &[Bytes]) -> Answer {
    at_least(&name.to_ascii_lowercase(), args, 1)?;
    let ops = args.iter().map(|key| (key.clone(), RedisOp::Del)).collect();
    let mut removed = 0i64;
    for outcome in scope.apply_each(ops).await {
        match outcome? {
            RedisOutcome::Integer(count) => removed = removed.saturating_add(count),
            other => return Err(unexpected(other)),
        }
    }
    Ok(Reply::Integer(removed))
}

/// `EXISTS key...`: how many of the keys exist (a key named twice counts twice).
async fn exists(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    at_least("exists", args, 1)?;
    let now_ms = scope.now_ms();
    let mut count = 0i64;
    for value in scope.values(args).await {
        count += i64::from(value?.is_live(now_ms));
    }
    Ok(Reply::Integer(count))
}

/// `TYPE key`: `string` (a counter too), `hash`, or `none`.
async fn kind(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    exactly("type", args, 1)?;
    let value = scope.value(&args[0]).await?;
    let name = value
        .kind(scope.now_ms())
        .map_or("none", |kind| kind.type_name());
    Ok(Reply::Simple(name.into()))
}

/// `EXPIRE key time [NX|XX|GT|LT]` and its variants: 1 if the deadline was set, else 0.
/// A time in the past sets a deadline already passed: the key is gone at once.
async fn expire(scope: &Scope<'_>, name: &str, args: &[Bytes], unit: TimeUnit) -> Answer {
    let command = name.to_ascii_lowercase();
    at_least(&command, args, 2)?;
    let amount = parse::integer(&args[1])?;
    let options = parse::expire_options(&args[2..])?;
    let deadline_ms = parse::deadline_ms(amount, unit, scope.now_ms())
        .ok_or(KeyspaceError::InvalidExpire(command))?;
    let op = RedisOp::Expire {
        deadline_ms,
        condition: options.condition,
    };
    if options.condition.is_some() {
        let current = scope.value_with(&args[0], true).await?;
        let now_ms = scope.now_ms();
        let has_deadline = current.deadline_ms().is_some();
        if !current.is_live(now_ms) || (options.needs_deadline && !has_deadline) {
            return Ok(Reply::Integer(0));
        }
        return integer(scope.apply_after(&args[0], current, op).await);
    }
    integer(scope.apply(&args[0], op).await)
}

/// `PERSIST key`: 1 if a deadline was removed. Decided, like `EXPIRE`'s conditions, on
/// a repairing read at the read level first (the replica that applies it may not have
/// seen a `PERSIST` another node made: it would answer 1 again), then on the applying
/// replica's state.
async fn persist(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    exactly("persist", args, 1)?;
    let current = scope.value_with(&args[0], true).await?;
    if !current.is_live(scope.now_ms()) || current.deadline_ms().is_none() {
        return Ok(Reply::Integer(0));
    }
    integer(scope.apply_after(&args[0], current, RedisOp::Persist).await)
}

/// `TTL key` (`per_unit_ms` 1000, rounded as Redis rounds) and `PTTL key` (1): -2 if
/// the key does not exist, -1 if it has no deadline.
async fn ttl(scope: &Scope<'_>, args: &[Bytes], per_unit_ms: i64) -> Answer {
    exactly(if per_unit_ms == 1 { "pttl" } else { "ttl" }, args, 1)?;
    let value = scope.value(&args[0]).await?;
    let left_ms = value.pttl(scope.now_ms());
    if left_ms < 0 {
        return Ok(Reply::Integer(left_ms));
    }
    Ok(Reply::Integer(
        left_ms.saturating_add(per_unit_ms / 2) / per_unit_ms,
    ))
}

/// `RENAME key newkey`: writes the content and deadline read from `key` to `newkey`,
/// then deletes `key`. Two writes, not one atomic step: a reader between them sees
/// both keys, and a write to `key` made meanwhile is deleted with it.
async fn rename(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    exactly("rename", args, 2)?;
    let value = scope.value(&args[0]).await?;
    let Some(content) = value.content(scope.now_ms()) else {
        return Err(KeyspaceError::Other("no such key".to_string()));
    };
    if args[0] == args[1] {
        return Ok(Reply::ok());
    }
    let replace = RedisOp::Replace {
        content,
        deadline_ms: value.deadline_ms(),
    };
    scope.apply(&args[1], replace).await?;
    scope.apply(&args[0], RedisOp::Del).await?;
    Ok(Reply::ok())
}
