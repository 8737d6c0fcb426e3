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
