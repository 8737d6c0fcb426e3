//! Answers to RESP clients and their encoding in RESP2 and RESP3.
//!
//! It owns the reply types and how each degrades for a RESP2 connection, as Redis
//! degrades them (a map becomes a flat array, a null `$-1` or `*-1`, a boolean an
//! integer, a double a bulk string, a set an array, a verbatim string a bulk string, a
//! push an array).
//! It never writes a CR or LF inside a simple string or an error line: either would
//! let text a client chose (a command name in an error) forge a reply, so both are
//! written as spaces. Encoding recurses over nested replies; replies are built by the
//! node, never decoded from a client, and nest a few levels at most.

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;
use std::fmt::Write;

/// The protocol a connection speaks: RESP2 until `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    pub fn number(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`: mostly a fixed word, borrowed.
    Simple(Cow<'static, str>),
    /// `-ERR ...`: the text starts with the error's code (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// A missing array: `*-1` in RESP2, `_` in RESP3.
    NullArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    Boolean(bool),
    /// Text with a three-letter format (`txt`, `mkd`), as `INFO` answers in RESP3.
    Verbatim {
        format: [u8; 3],
        text: Bytes,
    },
    /// Out-of-band data the server sends between answers (`>` in RESP3: invalidations,
    /// pub/sub messages); an array in RESP2, as Redis writes pub/sub messages there.
    Push(Vec<Reply>),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple(Cow::Borrowed("OK"))
    }

    /// An error with Redis's generic code: `-ERR <message>`.
    pub fn err(message: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {message}"))
    }

    pub fn bulk(text: impl Into<Bytes>) -> Reply {
        Reply::Bulk(text.into())
    }

    /// Redis's answer to a command it does not know, in its wording: the name and up to
    /// the first arguments, each quoted and cut short.
    pub fn unknown_command(args: &[Bytes]) -> Reply {
        let name = args.first().map(|name| shown(name)).unwrap_or_default();
        let rest: String = args
            .iter()
            .skip(1)
            .take(ARGUMENTS_SHOWN)
            .map(|arg| format!("'{}' ", shown(arg)))
            .collect();
        Reply::err(format!(
            "unknown command '{name}', with args beginning with: {rest}"
        ))
    }

    /// The answer to a command given the wrong number of arguments, in Redis's wording.
    pub fn wrong_arity(name: &str) -> Reply {
        Reply::err(format!(
            "wrong number of arguments for '{}' command",
            name.to_ascii_lowercase()
        ))
    }

    /// Appends the reply's encoding for `protocol` to `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Reply::Simple(text) => line(out, b'+', text),
            Reply::Error(text) => line(out, b'-', text),
            Reply::Integer(value) => header(out, b':', *value),
            Reply::Bulk(bytes) => bulk(out, b'$', bytes),
            Reply::Null | Reply::NullArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::Null => out.put_slice(b"$-1\r\n"),
            Reply::NullArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => aggregate(out, b'*', items, protocol),
            Reply::Push(items) => aggregate(out, if resp3 { b'>' } else { b'*' }, items, protocol),
            Reply::Set(items) => aggregate(out, if resp3 { b'~' } else { b'*' }, items, protocol),
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', length(pairs.len()));
                } else {
                    header(out, b'*', length(pairs.len() * 2));
                }
                for (key, value) in pairs {
                    key.encode(protocol, out);
                    value.encode(protocol, out);
                }
            }
            Reply::Double(value) if resp3 => line(out, b',', &format_double(*value)),
            Reply::Double(value) => bulk(out, b'$', format_double(*value).as_bytes()),
            Reply::Boolean(value) if resp3 => {
                out.put_slice(if *value { b"#t\r\n" } else { b"#f\r\n" })
            }
            Reply::Boolean(value) => header(out, b':', i64::from(*value)),
            Reply::Verbatim { format, text } if resp3 => {
                header(out, b'=', length(text.len() + 4));
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim { text, .. } => bulk(out, b'$', text),
        }
    }

    /// The reply's encoding as bytes (tests, one-off answers).
    pub fn to_bytes(&self, protocol: Protocol) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(protocol, &mut out);
        out.freeze()
    }
}

/// Arguments an unknown-command error quotes, and the characters of each.
const ARGUMENTS_SHOWN: usize = 3;
const ARGUMENT_CHARS_SHOWN: usize = 128;

/// An argument as error text: lossy UTF-8, cut short.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(ARGUMENT_CHARS_SHOWN)
        .collect()
}

fn length(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn header(out: &mut BytesMut, kind: u8, value: i64) {
    out.put_u8(kind);
    // Formatted straight into the buffer, not into a `String` first.
    write!(out, "{value}\r\n").expect("a BytesMut grows to take what is written");
}

/// A one-line reply; CR and LF become spaces (see the module doc).
fn line(out: &mut BytesMut, kind: u8, text: &str) {
    out.put_u8(kind);
    out.extend(text.bytes().map(|byte| {
        if byte == b'\r' || byte == b'\n' {
            b' '
        } else {
            byte
        }
    }));
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, kind: u8, bytes: &[u8]) {
    header(out, kind, length(bytes.len()));
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

fn aggregate(out: &mut BytesMut, kind: u8, items: &[Reply], protocol: Protocol) {
    header(out, kind, length(items.len()));
    for item in items {
        item.encode(protocol, out);
    }
}

/// A double as Redis writes it: `inf`, `-inf`, `nan`, or the shortest decimal that
/// reads back to the same value.
fn format_double(value: f64) -> String {
    if value.is_nan() {
        "nan".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        value.to_string()
    }
}
