//! The node's `notify-keyspace-events` setting (`CONFIG SET`/`CONFIG GET`), and the
//! keyspace notifications one change of the feed makes.
//!
//! Every flag Redis accepts is accepted (`K`, `E`, `A` and the classes
//! `g$lshzxetdmn`), so a client that sets `KEA` or `Egx` works unchanged; only two
//! events are ever published, because the change feed names a change's kind, not the
//! command that made it: `del` (class `g`) for a delete and `expired` (class `x`) for an
//! expiry. A write (`set`, `hset`, `expire`, ...) publishes nothing.

use crate::feed::ChangeKind;
use bytes::Bytes;

const KEYSPACE: u16 = 1 << 0;
const KEYEVENT: u16 = 1 << 1;
const GENERIC: u16 = 1 << 2;
const STRING: u16 = 1 << 3;
const LIST: u16 = 1 << 4;
const SET: u16 = 1 << 5;
const HASH: u16 = 1 << 6;
const ZSET: u16 = 1 << 7;
const EXPIRED: u16 = 1 << 8;
const EVICTED: u16 = 1 << 9;
const STREAM: u16 = 1 << 10;
const KEY_MISS: u16 = 1 << 11;
const MODULE: u16 = 1 << 12;
const NEW: u16 = 1 << 13;
/// `A`: every class but key misses and new keys, as in Redis.
const ALL: u16 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The classes in the order Redis writes them back (`CONFIG GET`).
const CLASSES: [(u16, char); 10] = [
    (GENERIC, 'g'),
    (STRING, '$'),
    (LIST, 'l'),
    (SET, 's'),
    (HASH, 'h'),
    (ZSET, 'z'),
    (EXPIRED, 'x'),
    (EVICTED, 'e'),
    (STREAM, 't'),
    (MODULE, 'd'),
];

/// The setting's name, as `CONFIG` spells it.
pub const SETTING: &str = "notify-keyspace-events";

/// A `notify-keyspace-events` value; empty (the default) publishes nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventFlags(u16);

/// Why a `notify-keyspace-events` value is refused: a character Redis does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid \
     event class character. Use 'Ag$lshzxeKEtmdn'."
)]
pub struct InvalidFlags;

impl EventFlags {
    pub fn parse(text: &[u8]) -> Result<EventFlags, InvalidFlags> {
        let mut flags = 0;
        for byte in text {
            flags |= match byte {
                b'A' => ALL,
                b'K' => KEYSPACE,
                b'E' => KEYEVENT,
                b'm' => KEY_MISS,
                b'n' => NEW,
                other => match CLASSES.iter().find(|(_, name)| *name as u8 == *other) {
                    Some((class, _)) => *class,
                    None => return Err(InvalidFlags),
                },
            };
        }
        Ok(EventFlags(flags))
    }

    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn from_bits(bits: u16) -> EventFlags {
        EventFlags(bits)
    }

    /// The value as Redis writes it back: `A` or the classes, then `K`, `E`, `m`, `n`.
    pub fn text(self) -> String {
        let mut text = String::new();
        if self.0 & ALL == ALL {
            text.push('A');
        } else {
            text.extend(
                CLASSES
                    .iter()
                    .filter(|(class, _)| self.0 & class != 0)
                    .map(|(_, name)| name),
            );
        }
        for (flag, name) in [
            (KEYSPACE, 'K'),
            (KEYEVENT, 'E'),
            (KEY_MISS, 'm'),
            (NEW, 'n'),
        ] {
            if self.0 & flag != 0 {
                text.push(name);
            }
        }
        text
    }

    /// Whether any change can be published: a channel kind (`K` or `E`) and one of the
    /// classes cartwheel publishes (`g`, `x`).
    pub fn publishes(self) -> bool {
        self.0 & (KEYSPACE | KEYEVENT) != 0 && self.0 & (GENERIC | EXPIRED) != 0
    }

    /// The notifications a change of the RESP key `key` makes: (channel, payload), the
    /// keyspace channel's first, as Redis sends them.
    pub fn messages(self, key: &[u8], kind: ChangeKind) -> Vec<(Bytes, Bytes)> {
        let (event, class) = match kind {
            ChangeKind::Deleted => ("del", GENERIC),
            ChangeKind::Expired => ("expired", EXPIRED),
            ChangeKind::Written => return Vec::new(),
        };
        if self.0 & class == 0 {
            return Vec::new();
        }
        let mut messages = Vec::with_capacity(2);
        if self.0 & KEYSPACE != 0 {
            let mut channel = b"__keyspace@0__:".to_vec();
            channel.extend_from_slice(key);
            messages.push((Bytes::from(channel), Bytes::from_static(event.as_bytes())));
        }
        if self.0 & KEYEVENT != 0 {
            let channel = format!("__keyevent@0__:{event}");
            messages.push((Bytes::from(channel), Bytes::copy_from_slice(key)));
        }
        messages
    }
}
