//! The hash commands: `HSET`, `HMSET`, `HGET`, `HMGET`, `HGETALL`, `HDEL`, `HEXISTS`,
//! `HLEN`, `HKEYS`, `HVALS`, `HINCRBY`. Reads answer from the merged value at the read
//! level; a hash's size is bounded by `RESP_HASH_FIELDS_MAX` and the object limit, so
//! its replies are too.

use super::{at_least, bulk_or_null, exactly, integer, Answer, KeyspaceError, Scope};
use crate::crdt::redis::{RedisError, RedisOp, RedisValue};
use crate::resp::reply::Reply;
use bytes::Bytes;
use serde_bytes::ByteBuf;

/// Runs a hash command; `None` if `name` is not one.
pub(super) async fn run(scope: &Scope<'_>, name: &str, args: &[Bytes]) -> Option<Answer> {
    let answer = match name {
        "HSET" | "HMSET" => hset(scope, name, args).await,
        "HGET" => hget(scope, args).await,
        "HMGET" => hmget(scope, args).await,
        "HGETALL" | "HKEYS" | "HVALS" => whole(scope, name, args).await,
        "HDEL" => hdel(scope, args).await,
        "HEXISTS" => hexists(scope, args).await,
        "HLEN" => hlen(scope, args).await,
        "HINCRBY" => hincrby(scope, args).await,
        _ => return None,
    };
    Some(answer)
}

fn refused(error: RedisError) -> KeyspaceError {
    KeyspaceError::Refused(error.to_string())
}

/// `HSET key field value [field value ...]`: fields added; `HMSET`: `+OK`.
async fn hset(scope: &Scope<'_>, name: &str, args: &[Bytes]) -> Answer {
    if args.len() < 3 || args.len().is_multiple_of(2) {
        return Err(KeyspaceError::Arity(name.to_ascii_lowercase()));
    }
    let pairs = args[1..]
        .chunks_exact(2)
        .map(|pair| {
            (
                ByteBuf::from(pair[0].to_vec()),
                ByteBuf::from(pair[1].to_vec()),
            )
        })
        .collect();
    let added = integer(scope.apply(&args[0], RedisOp::HSet(pairs)).await)?;
    match name {
        "HMSET" => Ok(Reply::ok()),
        _ => Ok(added),
    }
}

/// The key's value read at the read level, and the time it is judged at.
async fn read(scope: &Scope<'_>, key: &[u8]) -> Result<(RedisValue, u64), KeyspaceError> {
    let value = scope.value(key).await?;
    Ok((value, scope.now_ms()))
}

async fn hget(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    exactly("hget", args, 2)?;
    let (value, now_ms) = read(scope, &args[0]).await?;
    let field = value.hash_get(&args[1], now_ms).map_err(refused)?;
    Ok(bulk_or_null(field.map(<[u8]>::to_vec)))
}

async fn hmget(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    at_least("hmget", args, 2)?;
    let (value, now_ms) = read(scope, &args[0]).await?;
    let mut replies = Vec::with_capacity(args.len() - 1);
    for field in &args[1..] {
        let shown = value.hash_get(field, now_ms).map_err(refused)?;
        replies.push(bulk_or_null(shown.map(<[u8]>::to_vec)));
    }
    Ok(Reply::Array(replies))
}

/// `HGETALL` (a map: a flat array in RESP2), `HKEYS`, `HVALS`, in field order.
async fn whole(scope: &Scope<'_>, name: &str, args: &[Bytes]) -> Answer {
    exactly(&name.to_ascii_lowercase(), args, 1)?;
    let (value, now_ms) = read(scope, &args[0]).await?;
    let fields = value.hash_fields(now_ms).map_err(refused)?;
    let bulk = |bytes: &[u8]| Reply::Bulk(Bytes::copy_from_slice(bytes));
    Ok(match name {
        "HGETALL" => Reply::Map(
            fields
                .into_iter()
                .map(|(field, value)| (bulk(field), bulk(value)))
                .collect(),
        ),
        "HKEYS" => Reply::Array(fields.into_iter().map(|(field, _)| bulk(field)).collect()),
        _ => Reply::Array(fields.into_iter().map(|(_, value)| bulk(value)).collect()),
    })
}

/// `HDEL key field...`: fields removed.
async fn hdel(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    at_least("hdel", args, 2)?;
    let fields = args[1..]
        .iter()
        .map(|field| ByteBuf::from(field.to_vec()))
        .collect();
    integer(scope.apply(&args[0], RedisOp::HDel(fields)).await)
}

async fn hexists(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    exactly("hexists", args, 2)?;
    let (value, now_ms) = read(scope, &args[0]).await?;
    let found = value.hash_get(&args[1], now_ms).map_err(refused)?;
    Ok(Reply::Integer(i64::from(found.is_some())))
}

async fn hlen(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    exactly("hlen", args, 1)?;
    let (value, now_ms) = read(scope, &args[0]).await?;
    let count = value.hash_len(now_ms).map_err(refused)?;
    Ok(Reply::Integer(i64::try_from(count).unwrap_or(i64::MAX)))
}

/// `HINCRBY key field increment`: the field's new value. The field is a register, so
/// the applying replica adds to what a repairing read found (`Scope::apply`): an
/// increment acknowledged through another node is never computed over.
async fn hincrby(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    exactly("hincrby", args, 3)?;
    let by = super::parse::integer(&args[2])?;
    let op = RedisOp::HIncrBy {
        field: args[1].to_vec(),
        by,
    };
    integer(scope.apply(&args[0], op).await)
}
