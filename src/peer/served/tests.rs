use super::*;
use crate::object::{Class, ObjectKey};
use crate::wire::PeerError;

#[test]
fn requests_are_counted_by_kind_and_outcome() {
    let served = ServedLatencies::default();
    let key = ObjectKey {
        class: Class::Kv,
        key: b"k".to_vec(),
    };
    let get = Kind::of(&PeerRequest::Get { key: key.clone() });
    let digest = Kind::of(&PeerRequest::Digest { key });
    served.observe(get, &PeerResponse::Object(None), Duration::from_millis(1));
    served.observe(get, &PeerResponse::Object(None), Duration::from_millis(2));
    served.observe(
        digest,
        &PeerResponse::Error(PeerError::Overloaded),
        Duration::from_millis(1),
    );
    let seen: Vec<((&str, &str), u64)> = served
        .observed()
        .map(|(labels, snapshot)| (labels, snapshot.count()))
        .collect();
    assert_eq!(seen, vec![(("get", "ok"), 2), (("digest", "error"), 1)]);
}
