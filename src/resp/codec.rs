//! The request decoder: RESP arrays of bulk strings (what every client library sends)
//! and inline commands (`PING\r\n`, what telnet sends), taken incrementally out of a
//! connection's byte buffer that may hold part of a request or several pipelined ones.
//!
//! It owns the request grammar and its bounds, and never panics, recurses or allocates
//! by a length the client announced: a request is a flat list of arguments (a nested
//! array is a protocol error, as in Redis), a bulk string is taken out of the buffer
//! only once all of it has arrived, and the buffer grows only as bytes arrive (the
//! server reads in chunks). The arguments of an unfinished request are kept between
//! calls, so a large request arriving slowly is not parsed again from its start.
//! A typical request costs no allocation: its arguments are slices of the
//! connection's buffer (an inline command's too, unless it unescapes), held in a list
//! kept inline up to [`ARGUMENTS_INLINE`].
//!
//! Why not the `redis-protocol` crate: its decoders (nom) parse a frame from its first
//! byte on every call, recurse once per nesting level with no depth bound (`*1\r\n`
//! repeated overflows the stack), and bound no length; they decode replies, of which a
//! server needs none. What we need is the narrow request grammar above, bounded, so it
//! is written here; the reply encoder ([`super::reply`]) is a few lines per type.

use crate::limits;
use bytes::{Buf, Bytes, BytesMut};
use smallvec::SmallVec;

/// Arguments (the command name included) a request holds without an allocation:
/// `SET k v EX 60 NX` and `HSET k f1 v1 f2 v2`, what session middleware sends. A
/// request of more spills to the heap, growing as its arguments arrive.
pub const ARGUMENTS_INLINE: usize = 6;

/// A request's arguments, the command name first; each owns its bytes (a slice of the
/// connection's buffer), so a request can run beside others of its pipeline.
pub type Args = SmallVec<[Bytes; ARGUMENTS_INLINE]>;

/// A malformed request. The server answers `-ERR Protocol error: <this>` and closes
/// the connection, as Redis does; the wording is Redis's where Redis has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// `*<count>` that is not a number, below -1, or above `RESP_ARGUMENTS_MAX`.
    #[error("invalid multibulk length")]
    ArrayLength,
    /// `$<length>` that is not a number, negative, or above `RESP_BULK_BYTES_MAX`.
    #[error("invalid bulk length")]
    BulkLength,
    /// An element of a request that is not a bulk string (a nested array included).
    #[error("expected '$', got '{}'", .0.escape_ascii())]
    ExpectedBulk(u8),
    /// A count line without its CRLF within `RESP_COUNT_LINE_BYTES_MAX`.
    #[error("too big count string")]
    CountLineTooLong,
    /// An inline command without its newline within `RESP_INLINE_BYTES_MAX`.
    #[error("too big inline request")]
    InlineTooLong,
    /// A bulk string not followed by CRLF.
    #[error("expected CRLF after bulk data")]
    MissingCrlf,
    /// An inline command with a quote left open.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// The connection holds more unanswered request bytes than `RESP_BUFFERED_BYTES_MAX`.
    #[error("request exceeds the connection's input budget of {0} bytes")]
    BudgetExceeded(usize),
}

/// A request whose arguments are arriving.
#[derive(Debug, Default)]
struct Partial {
    /// Arguments the array announced.
    expected: usize,
    args: Args,
    /// The length of the bulk string whose header was read, its bytes still awaited.
    bulk: Option<usize>,
    /// Bytes (and overhead) of `args`.
    held_bytes: usize,
}

/// Takes requests out of a connection's buffer; keeps an unfinished request between
/// calls.
#[derive(Debug, Default)]
pub struct Decoder {
    partial: Option<Partial>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// The next complete request in `buffer` (its bytes are consumed), `None` when
    /// more bytes are needed. Empty requests (`*0`, `*-1`, blank inline lines) are
    /// skipped, as Redis does. After an error the connection must be closed: the
    /// decoder's state is unspecified.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Args>, ProtocolError> {
        loop {
            if self.partial.is_none() {
                let Some(&first) = buffer.first() else {
                    return Ok(None);
                };
                let started = if first == b'*' {
                    self.start_array(buffer)?
                } else {
                    match inline(buffer)? {
                        Inline::Incomplete => return Ok(None),
                        Inline::Empty => continue,
                        Inline::Request(args) => return Ok(Some(args)),
                    }
                };
                if !started {
                    return Ok(None);
                }
                continue;
            }
            return self.continue_array(buffer);
        }
    }

    /// Request bytes held outside the buffer: the arguments of the unfinished request.
    pub fn held_bytes(&self) -> usize {
        self.partial
            .as_ref()
            .map_or(0, |partial| partial.held_bytes)
    }

    /// Whether a request has begun and is not complete yet.
    pub fn in_request(&self) -> bool {
        self.partial.is_some()
    }

    /// Reads `*<count>\r\n`; false if it has not all arrived. An empty array is
    /// consumed and leaves no partial request.
    fn start_array(&mut self, buffer: &mut BytesMut) -> Result<bool, ProtocolError> {
        let Some(count) = count_line(buffer, ProtocolError::ArrayLength)? else {
            return Ok(false);
        };
        if count <= 0 {
            // `*0` and `*-1` are no request at all; below -1 is malformed.
            return if count < -1 {
                Err(ProtocolError::ArrayLength)
            } else {
                Ok(true)
            };
        }
        let expected = usize::try_from(count).map_err(|_| ProtocolError::ArrayLength)?;
        if expected > limits::RESP_ARGUMENTS_MAX {
            return Err(ProtocolError::ArrayLength);
        }
        self.partial = Some(Partial {
            expected,
            // Inline, then grown as arguments arrive, never by the announced count.
            args: Args::new(),
            bulk: None,
            held_bytes: 0,
        });
        Ok(true)
    }

    /// Takes the arguments that have arrived; the request once all have.
    fn continue_array(&mut self, buffer: &mut BytesMut) -> Result<Option<Args>, ProtocolError> {
        let Some(partial) = self.partial.as_mut() else {
            return Ok(None);
        };
        while partial.args.len() < partial.expected {
            let length = match partial.bulk {
                Some(length) => length,
                None => {
                    let Some(&first) = buffer.first() else {
                        return Ok(None);
                    };
                    if first != b'$' {
                        return Err(ProtocolError::ExpectedBulk(first));
                    }
                    let Some(length) = count_line(buffer, ProtocolError::BulkLength)? else {
                        return Ok(None);
                    };
                    let length = usize::try_from(length).map_err(|_| ProtocolError::BulkLength)?;
                    if length > limits::RESP_BULK_BYTES_MAX {
                        return Err(ProtocolError::BulkLength);
                    }
                    partial.bulk = Some(length);
                    length
                }
            };
            if buffer.len() < length + 2 {
                return Ok(None);
            }
            if &buffer[length..length + 2] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            let argument = buffer.split_to(length).freeze();
            buffer.advance(2);
            partial.held_bytes += argument.len() + limits::RESP_ARGUMENT_OVERHEAD_BYTES;
            partial.args.push(argument);
            partial.bulk = None;
        }
        Ok(self.partial.take().map(|partial| partial.args))
    }
}

/// Reads `<type><number>\r\n` at the start of `buffer` and consumes it; `None` if the
/// line has not all arrived. `malformed` is the error for a line that is no number.
fn count_line(
    buffer: &mut BytesMut,
    malformed: ProtocolError,
) -> Result<Option<i64>, ProtocolError> {
    let window = &buffer[..buffer.len().min(limits::RESP_COUNT_LINE_BYTES_MAX)];
    let Some(end) = window.windows(2).position(|pair| pair == b"\r\n") else {
        if buffer.len() >= limits::RESP_COUNT_LINE_BYTES_MAX {
            return Err(ProtocolError::CountLineTooLong);
        }
        return Ok(None);
    };
    let number = parse_integer(&buffer[1..end]).ok_or(malformed)?;
    buffer.advance(end + 2);
    Ok(Some(number))
}

/// A strict decimal integer: an optional `-` and digits, nothing else.
pub fn parse_integer(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: i64 = 0;
    for digit in digits {
        let digit = i64::from(digit - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// What an inline line gave.
enum Inline {
    Incomplete,
    Empty,
    Request(Args),
}

/// An inline command: one line up to `\n` (a `\r` before it is dropped), split into
/// arguments at spaces and tabs, with `"..."` and `'...'` quoting as redis-cli does.
fn inline(buffer: &mut BytesMut) -> Result<Inline, ProtocolError> {
    let window = &buffer[..buffer.len().min(limits::RESP_INLINE_BYTES_MAX)];
    let Some(end) = window.iter().position(|&byte| byte == b'\n') else {
        if buffer.len() >= limits::RESP_INLINE_BYTES_MAX {
            return Err(ProtocolError::InlineTooLong);
        }
        return Ok(Inline::Incomplete);
    };
    let line = buffer.split_to(end + 1).freeze();
    let length = match line[..end].ends_with(b"\r") {
        true => end - 1,
        false => end,
    };
    let args = split_inline(&line.slice(..length))?;
    if args.is_empty() {
        return Ok(Inline::Empty);
    }
    Ok(Inline::Request(args))
}

/// Splits an inline line into arguments; bounded by the line, which is bounded. An
/// argument is a slice of `line` unless it unescapes (`"a\\nb"`): then it is a copy.
pub fn split_inline(line: &Bytes) -> Result<Args, ProtocolError> {
    let mut args = Args::new();
    let mut index = 0;
    while index < line.len() {
        if line[index] == b' ' || line[index] == b'\t' {
            index += 1;
            continue;
        }
        let quote = match line[index] {
            quote @ (b'"' | b'\'') => {
                index += 1;
                Some(quote)
            }
            _ => None,
        };
        // The argument is `line[start..end]`, until an escape makes it a copy.
        let (start, mut end) = (index, index);
        let mut copy: Option<Vec<u8>> = None;
        let mut closed = quote.is_none();
        while index < line.len() {
            let byte = line[index];
            index += 1;
            match quote {
                None if byte == b' ' || byte == b'\t' => break,
                Some(quote) if byte == quote => {
                    closed = true;
                    break;
                }
                Some(b'"') if byte == b'\\' && index < line.len() => {
                    let copy = copy.get_or_insert_with(|| line[start..end].to_vec());
                    copy.push(unescape(line[index]));
                    index += 1;
                }
                _ => match &mut copy {
                    Some(copy) => copy.push(byte),
                    None => end = index,
                },
            }
        }
        // A closing quote must end the argument.
        let followed = line
            .get(index)
            .is_none_or(|&next| next == b' ' || next == b'\t');
        if !closed || (quote.is_some() && !followed) {
            return Err(ProtocolError::UnbalancedQuotes);
        }
        args.push(copy.map_or_else(|| line.slice(start..end), Bytes::from));
    }
    Ok(args)
}

fn unescape(byte: u8) -> u8 {
    match byte {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

#[cfg(test)]
mod tests;
