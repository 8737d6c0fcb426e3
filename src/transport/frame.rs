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
pub const WIRE_VERSION: u8 = 2;

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
    let mut frame = vec![0u8; LENGTH_PREFIX_BYTES];
    frame.push(WIRE_VERSION);
    rmp_serde::encode::write(&mut frame, message)
        .map_err(|error| FrameError::Unencodable(error.to_string()))?;
    let length = frame.len() - LENGTH_PREFIX_BYTES;
    if length > FRAME_BYTES_MAX {
        return Err(FrameError::Oversized {
            length: length as u64,
            max: FRAME_BYTES_MAX,
        });
    }
    // Fits in u32 because FRAME_BYTES_MAX does.
    let prefix = (length as u32).to_be_bytes();
    frame[..LENGTH_PREFIX_BYTES].copy_from_slice(&prefix);
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

/// Reads one frame from `recv`: the prefix first, so an oversized declared length is
/// refused before the body is read or any buffer is allocated for it.
pub(crate) async fn read_frame<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
) -> Result<T, ReadFrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    read_exact(recv, &mut prefix).await?;
    let length = check_length(prefix).map_err(ReadFrameError::Frame)?;
    let mut body = vec![0u8; length];
    read_exact(recv, &mut body).await?;
    decode_body(&body).map_err(ReadFrameError::Frame)
}

async fn read_exact(recv: &mut quinn::RecvStream, buffer: &mut [u8]) -> Result<(), ReadFrameError> {
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Sample {
        Text(String),
        Numbers(Vec<u64>),
        Nothing,
    }

    #[test]
    fn round_trip_and_layout() {
        let message = Sample::Text("hello".into());
        let frame = encode(&message).unwrap();
        let length = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(length, frame.len() - 4);
        assert_eq!(frame[4], WIRE_VERSION);
        assert_eq!(decode_frame::<Sample>(&frame).unwrap(), message);
    }

    #[test]
    fn envelope_ref_decodes_as_envelope() {
        let from = crate::ids::NodeId::new("a-1").unwrap();
        let region = crate::ids::Region::new("us-east").unwrap();
        let body = Sample::Numbers(vec![1, 2, 3]);
        let frame = encode(&EnvelopeRef {
            from: &from,
            from_region: &region,
            body: &body,
        })
        .unwrap();
        let envelope: Envelope<Sample> = decode_frame(&frame).unwrap();
        assert_eq!(envelope.from, from);
        assert_eq!(envelope.from_region, region);
        assert_eq!(envelope.body, body);
    }

    #[test]
    fn oversized_length_is_refused_from_the_prefix_alone() {
        let bytes = [0xff, 0xff, 0xff, 0xff, WIRE_VERSION];
        assert_eq!(
            decode_frame::<Sample>(&bytes),
            Err(FrameError::Oversized {
                length: u64::from(u32::MAX),
                max: FRAME_BYTES_MAX
            })
        );
        let just_over = (FRAME_BYTES_MAX as u32 + 1).to_be_bytes();
        assert!(matches!(
            check_length(just_over),
            Err(FrameError::Oversized { .. })
        ));
        assert_eq!(
            check_length((FRAME_BYTES_MAX as u32).to_be_bytes()),
            Ok(FRAME_BYTES_MAX)
        );
    }

    #[test]
    fn encode_refuses_oversized_messages() {
        let huge = vec![7u8; FRAME_BYTES_MAX];
        assert!(matches!(encode(&huge), Err(FrameError::Oversized { .. })));
    }

    #[test]
    fn malformed_frames_give_typed_errors() {
        let mut frame = encode(&Sample::Nothing).unwrap();
        assert_eq!(
            decode_frame::<Sample>(&[0, 0, 0, 0]),
            Err(FrameError::Empty)
        );
        assert_eq!(
            decode_frame::<Sample>(&[0, 0]),
            Err(FrameError::Truncated {
                expected: 4,
                got: 2
            })
        );
        let mut trailing = frame.clone();
        trailing.push(0);
        assert_eq!(
            decode_frame::<Sample>(&trailing),
            Err(FrameError::TrailingBytes { extra: 1 })
        );
        frame[4] = WIRE_VERSION + 1;
        assert_eq!(
            decode_frame::<Sample>(&frame),
            Err(FrameError::BadVersion {
                found: WIRE_VERSION + 1,
                expected: WIRE_VERSION
            })
        );
        let junk = [0, 0, 0, 2, WIRE_VERSION, 0xc1]; // 0xc1 is never used by MessagePack
        assert!(matches!(
            decode_frame::<Sample>(&junk),
            Err(FrameError::Undecodable(_))
        ));
    }

    #[test]
    fn payload_with_unread_tail_is_refused() {
        // Declared length covers two MessagePack values; only one is the message.
        let bytes = [0, 0, 0, 3, WIRE_VERSION, 0x01, 0x02];
        assert_eq!(
            decode_frame::<u8>(&bytes),
            Err(FrameError::TrailingBytes { extra: 1 })
        );
    }

    fn sample_strategy() -> impl Strategy<Value = Sample> {
        prop_oneof![
            ".{0,40}".prop_map(Sample::Text),
            proptest::collection::vec(any::<u64>(), 0..20).prop_map(Sample::Numbers),
            Just(Sample::Nothing),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            // Any outcome but a panic is fine, yet success needs an exact length prefix.
            if decode_frame::<Sample>(&bytes).is_ok() {
                let declared = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
                prop_assert_eq!(declared, bytes.len() - 4);
            }
        }

        #[test]
        fn random_body_after_valid_prefix_never_panics(
            body in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let mut bytes = (body.len() as u32 + 1).to_be_bytes().to_vec();
            bytes.push(WIRE_VERSION);
            bytes.extend_from_slice(&body);
            let _ = decode_frame::<Sample>(&bytes);
            let _ = decode_frame::<Envelope<Sample>>(&bytes);
        }

        #[test]
        fn arbitrary_bytes_as_peer_messages_are_typed_errors(
            version in any::<u8>(),
            declared in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            // The real wire types, with any version byte and any length prefix (true
            // or not): every outcome is a value or a `FrameError`, never a panic.
            use crate::wire::{PeerRequest, PeerResponse};
            let mut bytes = declared.to_be_bytes().to_vec();
            bytes.push(version);
            bytes.extend_from_slice(&payload);
            let request = decode_frame::<Envelope<PeerRequest>>(&bytes);
            let response = decode_frame::<PeerResponse>(&bytes);
            if declared as usize != payload.len() + 1 {
                prop_assert!(request.is_err() && response.is_err());
            }
            if version != WIRE_VERSION && declared as usize == payload.len() + 1 {
                let bad_version = matches!(request, Err(FrameError::BadVersion { .. }));
                prop_assert!(bad_version, "{:?}", request);
            }
            let mut true_length = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
            true_length.push(WIRE_VERSION);
            true_length.extend_from_slice(&payload);
            let _ = decode_frame::<Envelope<PeerRequest>>(&true_length);
            let _ = decode_frame::<PeerResponse>(&true_length);
        }

        #[test]
        fn corrupted_peer_frames_are_typed_errors(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            // A genuine request frame with some bytes overwritten, so the decoder gets
            // deep into a real message before it meets the damage.
            use crate::object::{Blob, ObjectKey};
            use crate::wire::PeerRequest;
            let from = crate::ids::NodeId::new("a-1").unwrap();
            let region = crate::ids::Region::new("us-east").unwrap();
            let body = PeerRequest::Batch(vec![
                PeerRequest::Get { key: ObjectKey::kv(b"cart") },
                PeerRequest::Mint {
                    key: ObjectKey::kv(b"user"),
                    context: crate::clock::VersionVector::new(),
                    value: Some(Blob(vec![1, 2, 3])),
                    timestamp: crate::clock::Hlc::new(5, 1),
                },
            ]);
            let mut frame = encode(&EnvelopeRef { from: &from, from_region: &region, body: &body })
                .unwrap();
            for (at, byte) in flips {
                let index = at.index(frame.len());
                frame[index] = byte;
            }
            let _ = decode_frame::<Envelope<PeerRequest>>(&frame);
        }

        #[test]
        fn every_truncation_of_a_valid_frame_is_an_error(
            message in sample_strategy(),
            cut in any::<prop::sample::Index>(),
        ) {
            let frame = encode(&message).unwrap();
            prop_assert_eq!(decode_frame::<Sample>(&frame).unwrap(), message);
            let keep = cut.index(frame.len());
            let result = decode_frame::<Sample>(&frame[..keep]);
            prop_assert!(
                matches!(result, Err(FrameError::Truncated { .. })),
                "truncation to {} bytes gave {:?}", keep, result
            );
        }
    }
}
