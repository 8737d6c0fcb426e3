//! `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]` over every key of the cluster,
//! and `DBSIZE`, the count of its live keys.
//!
//! Both walk the partitions in order through `Coordinator::scan_page`, at the
//! connection's read level; a key is listed when it is live on the merge of the
//! replicas that answered (a key deleted or expired there is not). The cursor
//! (`cursor`) names a position in the key space, not a node, so any node resumes it
//! and the walk survives nodes joining, leaving or failing: a key present from the
//! start to the end of a full iteration is returned, and no key twice: a key's
//! position never changes and the cursor only moves past positions already listed
//! (a page is merged per key and never cut between keys of one position). `COUNT`
//! is a hint, as in Redis: a call visits at most `RESP_SCAN_PARTITIONS_PER_CALL_MAX`
//! partitions and may answer fewer keys, none, or a few more. It never writes.

use super::cursor::{reply_cursor, Cursor, InvalidCursor};
use super::glob::Glob;
use super::{Answer, KeyspaceError, Scope};
use crate::coordinator::scan::{PageAsk, ScanPage};
use crate::crdt::redis::RedisKind;
use crate::crdt::Doc;
use crate::ids::PartitionId;
use crate::limits;
use crate::object::{Class, Object};
use crate::resp::reply::Reply;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::time::Duration;

/// Keys a call aims at when the client names no `COUNT` (Redis's default).
const COUNT_DEFAULT: usize = 10;

/// What `SCAN`'s options ask for.
struct Filter {
    pattern: Option<Glob>,
    /// `None`: any type; `Some(None)`: a Redis type this store never holds.
    kind: Option<Option<&'static str>>,
    count: usize,
}

/// Runs `SCAN` or `DBSIZE`; `None` for another command.
pub(super) async fn run(scope: &Scope<'_>, name: &str, args: &[Bytes]) -> Option<Answer> {
    match name {
        "SCAN" => Some(scan(scope, args).await),
        "DBSIZE" => Some(match args.is_empty() {
            true => dbsize(scope).await,
            false => Err(KeyspaceError::Arity("dbsize".to_string())),
        }),
        _ => None,
    }
}

fn filter(options: &[Bytes]) -> Result<Filter, KeyspaceError> {
    let mut filter = Filter {
        pattern: None,
        kind: None,
        count: COUNT_DEFAULT,
    };
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let value = rest.next().ok_or(KeyspaceError::Syntax)?;
        if option.eq_ignore_ascii_case(b"MATCH") {
            let glob = Glob::new(value).map_err(|error| KeyspaceError::Other(error.to_string()))?;
            filter.pattern = Some(glob);
        } else if option.eq_ignore_ascii_case(b"COUNT") {
            let count = super::parse::integer(value)?;
            filter.count = usize::try_from(count)
                .ok()
                .filter(|count| *count >= 1)
                .ok_or(KeyspaceError::Syntax)?;
        } else if option.eq_ignore_ascii_case(b"TYPE") {
            filter.kind = Some(type_name(value)?);
        } else {
            return Err(KeyspaceError::Syntax);
        }
    }
    Ok(filter)
}

/// The type `TYPE` names: one this store holds, another of Redis's (nothing matches
/// it), or an error for a name Redis does not know.
fn type_name(name: &[u8]) -> Result<Option<&'static str>, KeyspaceError> {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    match name.as_str() {
        "string" => Ok(Some("string")),
        "hash" => Ok(Some("hash")),
        "list" | "set" | "zset" | "stream" => Ok(None),
        _ => Err(KeyspaceError::Other(format!(
            "unknown type name '{}'",
            name.chars().take(64).collect::<String>()
        ))),
    }
}

impl Filter {
    fn admits(&self, key: &[u8], kind: RedisKind) -> bool {
        let type_ok = match self.kind {
            None => true,
            Some(wanted) => wanted == Some(kind.type_name()),
        };
        type_ok && self.pattern.as_ref().is_none_or(|glob| glob.matches(key))
    }
}

/// The kind of a merged object when it is a live RESP key at `now_ms`.
fn live_kind(object: &Object, now_ms: u64) -> Option<RedisKind> {
    match object {
        Object::Doc(Doc::Redis(value)) if value.is_live(now_ms) => value.kind(now_ms),
        _ => None,
    }
}

impl Scope<'_> {
    fn partitions(&self) -> u32 {
        self.store.coordinator.partition_count()
    }

    /// The page of `partition` from `position`, at most `keys_max` keys.
    async fn page(
        &self,
        partition: u32,
        position: u32,
        keys_max: usize,
    ) -> Result<ScanPage, KeyspaceError> {
        let ask = PageAsk {
            partition: PartitionId(partition),
            class: Class::Resp,
            from: position,
            keys_max,
            level: self.read,
        };
        self.store
            .coordinator
            .scan_page(ask)
            .await
            .map_err(KeyspaceError::of)
    }
}

/// `SCAN`: the keys of the pages read from the cursor on, and the cursor after them.
async fn scan(scope: &Scope<'_>, args: &[Bytes]) -> Answer {
    let (cursor, options) = args
        .split_first()
        .ok_or_else(|| KeyspaceError::Arity("scan".to_string()))?;
    let partitions = scope.partitions();
    let start = Cursor::parse(cursor, partitions)
        .map_err(|error: InvalidCursor| KeyspaceError::Other(error.to_string()))?;
    let filter = filter(options)?;
    let wanted = filter.count.min(limits::RESP_SCAN_PAGE_KEYS_MAX);
    let last = start
        .partition
        .saturating_add(limits::RESP_SCAN_PARTITIONS_PER_CALL_MAX as u32)
        .min(partitions);
    let now_ms = scope.now_ms();
    let mut keys = Vec::new();
    let mut resume = Some(start);
    // Partitions are read in waves, each twice the last (up to the in-flight bound):
    // a dense cluster ends a call in its first partition without reading ahead, a
    // sparse one soon reads several at once.
    let (mut first, mut wave) = (start.partition, 1u32);
    'call: while first < last {
        let wave_end = first.saturating_add(wave).min(last);
        let cursors: Vec<Cursor> = (first..wave_end)
            .map(|partition| Cursor {
                partition,
                position: if partition == start.partition {
                    start.position
                } else {
                    0
                },
            })
            .collect();
        let pages = futures::future::join_all(
            cursors
                .iter()
                .map(|here| scope.page(here.partition, here.position, wanted)),
        )
        .await;
        for (here, page) in cursors.into_iter().zip(pages) {
            let page = page?;
            for (key, object) in &page.entries {
                if live_kind(object, now_ms).is_some_and(|kind| filter.admits(&key.key, kind)) {
                    keys.push(Reply::Bulk(Bytes::from(key.key.clone())));
                }
            }
            resume = here.after_page(page.next, partitions);
            // A partition left part-way, or enough keys: this call ends here.
            if page.next.is_some() || keys.len() >= wanted {
                break 'call;
            }
        }
        first = wave_end;
        wave = (wave * 2).min(limits::RESP_SCAN_PARTITIONS_IN_FLIGHT_MAX as u32);
    }
    Ok(Reply::Array(vec![
        Reply::bulk(reply_cursor(resume).to_string()),
        Reply::Array(keys),
    ]))
}

/// `DBSIZE`: the live keys of every partition, counted on a full scan within
/// `RESP_DBSIZE_MS` and up to `RESP_DBSIZE_KEYS_MAX` keys; past either it answers an
/// error, never a partial count.
async fn dbsize(scope: &Scope<'_>) -> Answer {
    let partitions = scope.partitions();
    let counting = futures::stream::iter(0..partitions)
        .map(|partition| count_partition(scope, partition))
        .buffered(limits::RESP_SCAN_PARTITIONS_IN_FLIGHT_MAX)
        .try_fold(0u64, |total, count| async move {
            let total = total.saturating_add(count);
            match total > limits::RESP_DBSIZE_KEYS_MAX {
                true => Err(KeyspaceError::Other(format!(
                    "DBSIZE stopped counting past {} keys: the cluster holds more than it \
                     counts",
                    limits::RESP_DBSIZE_KEYS_MAX
                ))),
                false => Ok(total),
            }
        });
    let limit = Duration::from_millis(limits::RESP_DBSIZE_MS);
    match tokio::time::timeout(limit, counting).await {
        Ok(total) => Ok(Reply::Integer(i64::try_from(total?).unwrap_or(i64::MAX))),
        Err(_) => Err(KeyspaceError::Other(format!(
            "DBSIZE did not finish counting within {} ms",
            limits::RESP_DBSIZE_MS
        ))),
    }
}

/// The live keys of one partition, page after page.
async fn count_partition(scope: &Scope<'_>, partition: u32) -> Result<u64, KeyspaceError> {
    let mut position = 0u32;
    let mut count = 0u64;
    loop {
        let page = scope
            .page(partition, position, limits::RESP_SCAN_PAGE_KEYS_MAX)
            .await?;
        let now_ms = scope.now_ms();
        let live = page
            .entries
            .iter()
            .filter(|(_, object)| live_kind(object, now_ms).is_some())
            .count();
        count += live as u64;
        match page.next {
            // Each page ends past the last position it holds, so the walk only moves on.
            Some(next) if next > position => position = next,
            Some(_) => return Err(KeyspaceError::Other("a scan page did not move on".into())),
            None => return Ok(count),
        }
    }
}
