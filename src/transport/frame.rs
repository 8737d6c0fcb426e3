//! Wire frames: `[u32 big-endian length][u8 WIRE_VERSION][rmp-serde payload]`, where the
//! length counts the version byte and the payload.
//!
//! Payloads use rmp-serde's compact encoding (`rmp_serde::to_vec`: structs as arrays, no
//! field names), so both ends must agree on field order; a change of layout bumps
//! [`WIRE_VERSION`]. Decoders check the declared length against [`FRAME_BYTES_MAX`]
//! before allocating and turn every malformed input into a [`FrameError`]: this module
//! must never panic on bytes from the network.

use crate::limits::FRAME_BYTES_MAX;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// Version byte carried by every frame; bumped whenever a wire struct changes layout.
/// 2: member states carry the proof of a final status (`MemberState::proof`); a node
/// of version 1 and one of version 2 refuse each other's frames (no conversion: a
/// version-1 member would spread final statuses nobody can check).
/// 3: the ring's placement changed (issue 25: capped greedy of rendezvous scores drawn
/// from SplitMix64); no frame layout changed, but nodes computing different placements
/// would disagree on every partition's owners, so versions 2 and 3 refuse each other
/// and an upgrade restarts the whole cluster.
pub const WIRE_VERSION: u8 = 3;

/// Bytes of the length prefix.
pub(crate) const LENGTH_PREFIX_BYTES: usize = 4;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame declares {length} bytes, more than the limit of {max} bytes")]
    Oversized { length: u64, max: usize },
    #[error("frame declares zero length; it must hold at least the version byte")]
    Empty,
    #[error("frame has wire version {found}, this node speaks version {expected}")]
    BadVersion { found: u8, expected: u8 },
    #[error("frame truncated: expected {expected} bytes, got {got}")]
    Truncated { expected: usize, got: usize },
    #[error("frame is followed by {extra} unexpected bytes")]
    TrailingBytes { extra: usize },
    #[error("frame payload could not be decoded: {0}")]
    Undecodable(String),
    #[error("message could not be encoded: {0}")]
    Unencodable(String),
}

/// Encodes `message` as one complete frame, length prefix included.
pub fn encode<T: Serialize + ?Sized>(message: &T) -> Result<Vec<u8>, FrameError> {
    encode_after(0, message)
}

/// Encodes `message` as one complete frame after `header` zero bytes that the caller
/// fills in (a channel record's id), so the record is built in one buffer.
pub(crate) fn encode_after<T: Serialize + ?Sized>(
    header: usize,
    message: &T,
) -> Result<Vec<u8>, FrameError> {
    let start = header + LENGTH_PREFIX_BYTES;
    let mut frame = Vec::with_capacity(start + 128);
    frame.resize(start, 0);
    frame.push(WIRE_VERSION);
    rmp_serde::encode::write(&mut frame, message)
        .map_err(|error| FrameError::Unencodable(error.to_string()))?;
    let length = frame.len() - start;
    if length > FRAME_BYTES_MAX {
        return Err(FrameError::Oversized {
            length: length as u64,
            max: FRAME_BYTES_MAX,
        });
    }
    // Fits in u32 because FRAME_BYTES_MAX does.
    let prefix = (length as u32).to_be_bytes();
    frame[header..start].copy_from_slice(&prefix);
    Ok(frame)
}

/// Checks a length prefix; returns the number of bytes that follow it.
pub(crate) fn check_length(prefix: [u8; LENGTH_PREFIX_BYTES]) -> Result<usize, FrameError> {
    let length = u32::from_be_bytes(prefix);
    if length == 0 {
        return Err(FrameError::Empty);
    }
    let length = usize::try_from(length).unwrap_or(usize::MAX);
    if length > FRAME_BYTES_MAX {
        return Err(FrameError::Oversized {
            length: length as u64,
            max: FRAME_BYTES_MAX,
        });
    }
    Ok(length)
}

/// Decodes the body of a frame (version byte and payload, without the length prefix).
pub(crate) fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let Some((&version, payload)) = body.split_first() else {
        return Err(FrameError::Empty);
    };
    if version != WIRE_VERSION {
        return Err(FrameError::BadVersion {
            found: version,
            expected: WIRE_VERSION,
        });
    }
    let mut deserializer = rmp_serde::Deserializer::new(Cursor::new(payload));
    let message = T::deserialize(&mut deserializer)
        .map_err(|error| FrameError::Undecodable(error.to_string()))?;
    let consumed = usize::try_from(deserializer.position()).unwrap_or(usize::MAX);
    if consumed < payload.len() {
        // The length prefix and the payload disagree: treat it as corruption.
        return Err(FrameError::TrailingBytes {
            extra: payload.len() - consumed,
        });
    }
    Ok(message)
}

/// Decodes exactly one complete frame from `bytes`.
pub fn decode_frame<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    let Some((prefix, rest)) = bytes.split_first_chunk::<LENGTH_PREFIX_BYTES>() else {
        return Err(FrameError::Truncated {
            expected: LENGTH_PREFIX_BYTES,
            got: bytes.len(),
        });
    };
    let length = check_length(*prefix)?;
    if rest.len() < length {
        return Err(FrameError::Truncated {
            expected: length,
            got: rest.len(),
        });
    }
    if rest.len() > length {
        return Err(FrameError::TrailingBytes {
            extra: rest.len() - length,
        });
    }
    decode_body(rest)
}

/// Why reading a frame from a QUIC stream failed.
#[derive(Debug)]
pub(crate) enum ReadFrameError {
    /// The bytes arrived but do not form a valid frame.
    Frame(FrameError),
    /// The stream or its connection failed before a frame arrived.
    Stream(quinn::ReadError),
}

/// Reads one frame from `recv`, and its size in bytes (its length prefix included): the
/// prefix first, so an oversized declared length is refused before the body is read or
/// any buffer is allocated for it.
pub(crate) async fn read_frame_sized<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
) -> Result<(T, usize), ReadFrameError> {
    let prefix = read_prefix(recv).await?;
    read_frame_after(recv, prefix).await
}

/// The first bytes of a stream: a frame's length prefix, or a channel's preamble.
pub(crate) async fn read_prefix(
    recv: &mut quinn::RecvStream,
) -> Result<[u8; LENGTH_PREFIX_BYTES], ReadFrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    read_exact(recv, &mut prefix).await?;
    Ok(prefix)
}

/// The rest of a frame whose length `prefix` was read already, and its whole size.
pub(crate) async fn read_frame_after<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    prefix: [u8; LENGTH_PREFIX_BYTES],
) -> Result<(T, usize), ReadFrameError> {
    let length = check_length(prefix).map_err(ReadFrameError::Frame)?;
    let mut body = vec![0u8; length];
    read_exact(recv, &mut body).await?;
    let decoded = decode_body(&body).map_err(ReadFrameError::Frame)?;
    Ok((decoded, LENGTH_PREFIX_BYTES + length))
}

pub(crate) async fn read_exact(
    recv: &mut quinn::RecvStream,
    buffer: &mut [u8],
) -> Result<(), ReadFrameError> {
    match recv.read_exact(buffer).await {
        Ok(()) => Ok(()),
        Err(quinn::ReadExactError::FinishedEarly(got)) => {
            Err(ReadFrameError::Frame(FrameError::Truncated {
                expected: buffer.len(),
                got,
            }))
        }
        Err(quinn::ReadExactError::ReadError(error)) => Err(ReadFrameError::Stream(error)),
    }
}

/// The header every request carries so the server knows who asks without trusting the
/// socket address; the server checks `from` against the peer's certificate.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<B> {
    pub from: crate::ids::NodeId,
    pub from_region: crate::ids::Region,
    pub body: B,
}

/// Borrowing twin of [`Envelope`] for encoding without cloning the body; field order
/// must match `Envelope` (compact encoding is positional).
#[derive(Debug, Serialize)]
pub(crate) struct EnvelopeRef<'a, B> {
    pub from: &'a crate::ids::NodeId,
    pub from_region: &'a crate::ids::Region,
    pub body: &'a B,
}

#[cfg(test)]
mod tests;
