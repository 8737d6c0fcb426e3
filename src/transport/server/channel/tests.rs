use super::*;
use crate::limits::FRAME_BYTES_MAX;

fn request_record(id: u64, body: &[u8]) -> Vec<u8> {
    let mut record = id.to_be_bytes().to_vec();
    record.extend_from_slice(&(body.len() as u32).to_be_bytes());
    record.extend_from_slice(body);
    record
}

#[test]
fn records_are_taken_whole_and_in_order() {
    let mut bytes = request_record(7, b"abc");
    bytes.extend_from_slice(&request_record(9, b"defg"));
    bytes.extend_from_slice(&cancel_record_bytes(7));
    let mut buffer = BytesMut::new();
    // Byte by byte: nothing is taken before it is complete.
    let mut taken = Vec::new();
    for byte in bytes {
        buffer.extend_from_slice(&[byte]);
        while let Some(record) = next_record(&mut buffer).unwrap() {
            taken.push(match record {
                Record::Request { id, body } => (id, body.to_vec()),
                Record::Cancel { id } => (id, Vec::new()),
            });
        }
    }
    assert_eq!(
        taken,
        vec![(7, b"abc".to_vec()), (9, b"defg".to_vec()), (7, Vec::new())]
    );
    assert!(buffer.is_empty());
}

fn cancel_record_bytes(id: u64) -> Vec<u8> {
    super::super::super::channel::cancel_record(id).to_vec()
}

#[test]
fn a_length_above_the_channel_limit_is_refused_before_its_body() {
    let mut buffer = BytesMut::new();
    buffer.extend_from_slice(&1u64.to_be_bytes());
    buffer.extend_from_slice(&((CHANNEL_FRAME_BYTES_MAX + 1) as u32).to_be_bytes());
    let refused = next_record(&mut buffer);
    assert!(
        matches!(refused, Err(FrameError::Oversized { max, .. }) if max == CHANNEL_FRAME_BYTES_MAX),
        "{:?}",
        refused.err()
    );
}

#[test]
fn an_answer_too_large_for_a_frame_is_refused_by_its_status() {
    let huge = vec![7u8; FRAME_BYTES_MAX + 1];
    let (record, error) = answer_record(3, &serde_bytes::ByteBuf::from(huge));
    assert!(matches!(error, Some(FrameError::Oversized { .. })));
    assert_eq!(record.len(), ANSWER_HEADER_BYTES);
    assert_eq!(&record[..ID_BYTES], &3u64.to_be_bytes());
    assert_eq!(record[ID_BYTES], status_of(Refusal::ResponseTooLarge));
}

#[test]
fn an_answer_record_carries_its_id_and_a_frame() {
    let (record, error) = answer_record(5, &"hello".to_string());
    assert!(error.is_none());
    assert_eq!(&record[..ID_BYTES], &5u64.to_be_bytes());
    assert_eq!(record[ID_BYTES], STATUS_OK);
    let decoded: String = frame::decode_frame(&record[ANSWER_HEADER_BYTES..]).unwrap();
    assert_eq!(decoded, "hello");
}
