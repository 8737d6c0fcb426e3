//! What a feed request asks for: its filters (`class`, `key`, `prefix`, `user`), its
//! position and wait, parsed from the query and checked against their bounds; which
//! changes a filter lets through; and a change as the client sees it (JSON).

use super::position::{Position, PositionError};
use crate::feed::{Change, ChangeKind};
use crate::limits;
use crate::object::{Class, ObjectKey};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Which changes a reader is told of: those of `class` (any without), and of those
/// only the ones whose key is one of `keys` or starts with `prefix` when either is
/// given. `user` is the session document of that user alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub class: Option<Class>,
    /// Keys as the class names them (without the class tag).
    pub keys: Vec<Vec<u8>>,
    pub prefix: Option<Vec<u8>>,
    pub user: Option<String>,
}

/// Who may read a feed: anyone (the kv class, open as `/v1/kv` is), the session user
/// named (or an operator), or operators only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Open,
    User(String),
    Admin,
}

impl Filter {
    pub fn matches(&self, change: &Change) -> bool {
        let Some(key) = ObjectKey::from_storage_bytes(&change.key) else {
            return false;
        };
        if let Some(user) = &self.user {
            return key.class == Class::User && key.key == user.as_bytes();
        }
        if self.class.is_some_and(|class| class != key.class) {
            return false;
        }
        if self.keys.is_empty() && self.prefix.is_none() {
            return true;
        }
        self.keys.contains(&key.key)
            || self
                .prefix
                .as_ref()
                .is_some_and(|prefix| key.key.starts_with(prefix))
    }

    pub fn access(&self) -> Access {
        match (&self.user, self.class) {
            (Some(user), _) => Access::User(user.clone()),
            (None, Some(Class::Kv)) => Access::Open,
            (None, _) => Access::Admin,
        }
    }
}

/// Why a request's query was refused: a bad filter (400 `bad_filter`), a bad position
/// (400 `bad_position`) or anything else (400 `bad_request`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("{0}")]
    Filter(String),
    #[error(transparent)]
    Position(#[from] PositionError),
    #[error("{0}")]
    Other(String),
}

/// A feed request's query, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedQuery {
    pub filter: Filter,
    pub position: Option<Position>,
    pub wait_ms: Option<u64>,
}

fn class_named(name: &str) -> Option<Class> {
    Class::ALL.into_iter().find(|class| class.name() == name)
}

fn once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), QueryError> {
    if slot.replace(value).is_some() {
        return Err(QueryError::Other(format!("{name} is given twice")));
    }
    Ok(())
}

/// Parses a feed request's query pairs (`key` may repeat; nothing else may).
pub fn parse_query(pairs: &[(String, String)]) -> Result<FeedQuery, QueryError> {
    let bad = |message: String| QueryError::Filter(message);
    let (mut class, mut prefix, mut user, mut position, mut wait) = (None, None, None, None, None);
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for (name, value) in pairs {
        match name.as_str() {
            "class" => {
                let named = class_named(value)
                    .ok_or_else(|| bad(format!("class {value:?}: use kv, auth, user or resp")))?;
                once(&mut class, name, named)?;
            }
            "key" => {
                if keys.len() >= limits::FEED_FILTER_KEYS_MAX {
                    return Err(bad(format!(
                        "more than {} keys",
                        limits::FEED_FILTER_KEYS_MAX
                    )));
                }
                if value.is_empty() {
                    return Err(bad("a key is empty".to_string()));
                }
                keys.push(value.as_bytes().to_vec());
            }
            "prefix" => {
                if value.is_empty() {
                    return Err(bad("the prefix is empty".to_string()));
                }
                once(&mut prefix, name, value.as_bytes().to_vec())?;
            }
            "user" => {
                let valid = !value.is_empty()
                    && value.chars().count() <= limits::SESSION_NAME_CHARS_MAX
                    && !value.chars().any(char::is_control);
                if !valid {
                    return Err(bad(format!(
                        "user must be 1 to {} characters, none a control character",
                        limits::SESSION_NAME_CHARS_MAX
                    )));
                }
                once(&mut user, name, value.clone())?;
            }
            "position" => once(&mut position, name, Position::decode(value)?)?,
            "wait_ms" => {
                let ms = value.parse::<u64>().map_err(|_| {
                    QueryError::Other(format!("wait_ms must be a number of ms, got {value:?}"))
                })?;
                once(&mut wait, name, ms)?;
            }
            other => {
                return Err(QueryError::Other(format!(
                    "unknown parameter {other:?}: use class, key, prefix, user, position or wait_ms"
                )))
            }
        }
    }
    let filter = checked(Filter {
        class,
        keys,
        prefix,
        user,
    })?;
    Ok(FeedQuery {
        filter,
        position,
        wait_ms: wait,
    })
}

/// Checks a filter's bounds and that its parts go together.
fn checked(filter: Filter) -> Result<Filter, QueryError> {
    let bad = |message: String| QueryError::Filter(message);
    let named_bytes = filter.keys.iter().map(Vec::len).sum::<usize>()
        + filter.prefix.as_ref().map_or(0, Vec::len);
    if named_bytes > limits::FEED_FILTER_BYTES_MAX {
        return Err(bad(format!(
            "the keys and prefix are {named_bytes} bytes together, the limit is {}",
            limits::FEED_FILTER_BYTES_MAX
        )));
    }
    if filter
        .keys
        .iter()
        .any(|key| key.len() > limits::KEY_BYTES_MAX)
    {
        return Err(bad(format!(
            "a key is over {} bytes",
            limits::KEY_BYTES_MAX
        )));
    }
    if filter.user.is_some() && (!filter.keys.is_empty() || filter.prefix.is_some()) {
        return Err(bad(
            "user names one document: give no key or prefix with it".to_string(),
        ));
    }
    if filter.user.is_some() && filter.class.is_some_and(|class| class != Class::User) {
        return Err(bad("user is a document of the user class".to_string()));
    }
    Ok(filter)
}

/// A change as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeBody {
    /// `kv`, `auth`, `user` or `resp`.
    pub class: String,
    /// The key as its class names it: the text when it is UTF-8 (`encoding` `utf8`),
    /// else base64 with the standard alphabet (`encoding` `base64`).
    pub key: String,
    pub encoding: String,
    /// `written`, `deleted` or `expired`.
    pub kind: String,
    /// Hex of the digest of the object after the change: the same change reported by
    /// several replicas has the same digest.
    pub digest: String,
}

pub fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Written => "written",
        ChangeKind::Deleted => "deleted",
        ChangeKind::Expired => "expired",
    }
}

/// The change as the client sees it; `None` for a key of no known class (a bug of
/// another node's, skipped).
pub fn change_body(change: &Change) -> Option<ChangeBody> {
    let key = ObjectKey::from_storage_bytes(&change.key)?;
    let (text, encoding) = match std::str::from_utf8(&key.key) {
        Ok(text) => (text.to_string(), "utf8"),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(&key.key),
            "base64",
        ),
    };
    Some(ChangeBody {
        class: key.class.name().to_string(),
        key: text,
        encoding: encoding.to_string(),
        kind: kind_name(change.kind).to_string(),
        digest: change
            .digest
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect(),
    })
}

/// What a change is for telling repeats apart: its key, digest and kind, hashed.
pub fn identity(change: &Change) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(change.key.len() as u64).to_le_bytes());
    hasher.update(&change.key);
    hasher.update(&change.digest);
    hasher.update(kind_name(change.kind).as_bytes());
    let mut out = [0; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    out
}
