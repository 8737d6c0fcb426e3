use super::*;
use crate::crdt::CrdtError;

#[test]
fn a_key_at_its_actor_limit_is_a_refusal_not_a_failed_replica() {
    let too_many = ReplicaError::Merge(MergeError::Version(VersionError::TooManyActors {
        count: limits::VV_ACTORS_MAX + 1,
        max: limits::VV_ACTORS_MAX,
    }));
    let PeerResponse::Error(PeerError::Refused { refusal, message }) = storage_error(too_many)
    else {
        panic!("not a refusal");
    };
    assert_eq!(refusal, Refusal::Limit);
    assert!(message.contains("actors"), "{message}");
    let refused = ReplicaError::Merge(MergeError::Doc(CrdtError::StillLive));
    let PeerResponse::Error(PeerError::Refused { refusal, message }) = storage_error(refused)
    else {
        panic!("not a refusal");
    };
    assert_eq!(refusal, Refusal::StillLive);
    assert_eq!(
        message,
        CrdtError::StillLive.to_string(),
        "the refusal's own words"
    );
    let too_large = ReplicaError::Merge(MergeError::TooLarge {
        bytes: limits::OBJECT_BYTES_MAX + 1,
        max: limits::OBJECT_BYTES_MAX,
    });
    let PeerResponse::Error(PeerError::Refused { refusal, .. }) = storage_error(too_large) else {
        panic!("not a refusal");
    };
    assert_eq!(refusal, Refusal::ObjectTooLarge);
    let corrupt = ReplicaError::Merge(MergeError::Mismatch);
    assert!(matches!(
        storage_error(corrupt),
        PeerResponse::Error(PeerError::Storage(_))
    ));
}
