use super::*;

#[test]
fn every_refusal_survives_its_status_byte() {
    for refusal in [
        Refusal::FrameRejected,
        Refusal::IdentityRejected,
        Refusal::ResponseUnencodable,
        Refusal::ResponseTooLarge,
    ] {
        let status = status_of(refusal);
        assert_ne!(status, STATUS_OK, "{refusal:?} must not read as an answer");
        assert_eq!(refusal_of(status), refusal);
    }
}

#[test]
fn a_cancel_record_is_an_id_and_a_zero_length() {
    let record = cancel_record(0x0102_0304_0506_0708);
    assert_eq!(record.len(), REQUEST_HEADER_BYTES);
    assert_eq!(&record[..ID_BYTES], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&record[ID_BYTES..], &[0, 0, 0, 0]);
}

#[test]
fn the_preamble_is_no_frame_a_node_would_accept() {
    let refused = frame::check_length(MAGIC);
    assert!(
        matches!(refused, Err(frame::FrameError::Oversized { .. })),
        "{refused:?}"
    );
}
