use super::*;
use crate::clock::VersionVector;
use proptest::prelude::*;

fn sample() -> Object {
    sample_kv(b"x")
}

#[test]
fn a_documents_digest_is_the_hash_of_its_encoding_fed_piece_by_piece() {
    // The definition every replica and earlier version uses: MessagePack written
    // into the hasher as the encoder produces it.
    let doc = crate::crdt::Doc::User(crate::crdt::UserDoc::default());
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"cartwheel.doc.v1");
    rmp_serde::encode::write(&mut hasher, &doc).unwrap();
    assert_eq!(Object::Doc(doc).digest(), *hasher.finalize().as_bytes());
}

#[test]
fn a_digest_from_stored_bytes_is_the_digest() {
    let doc = Object::Doc(crate::crdt::Doc::User(crate::crdt::UserDoc::default()));
    let stored = encode_object(&doc);
    assert_eq!(doc.digest_stored(&stored), doc.digest());
    // Bytes without a document's header: the object is encoded again.
    assert_eq!(doc.digest_stored(b"garbage"), doc.digest());
    assert_eq!(doc.digest_stored(&[]), doc.digest());
    let kv = sample();
    assert_eq!(kv.digest_stored(&encode_object(&kv)), kv.digest());
    assert_eq!(kv.digest_stored(&stored), kv.digest());
    // Without decoding: a stored document's bytes give its digest, a kv object's none.
    assert_eq!(Object::digest_of_stored_doc(&stored), Some(doc.digest()));
    let redis = Object::Doc(crate::crdt::Doc::Redis(Default::default()));
    let redis_stored = encode_object(&redis);
    assert_eq!(
        Object::digest_of_stored_doc(&redis_stored),
        Some(redis.digest())
    );
    assert_eq!(Object::digest_of_stored_doc(&encode_object(&kv)), None);
    assert_eq!(Object::digest_of_stored_doc(b"garbage"), None);
}

#[test]
fn objects_round_trip() {
    let object = sample();
    assert_eq!(decode_object(&encode_object(&object)).unwrap(), object);
    let Object::Kv(kv) = &object else {
        unreachable!()
    };
    let mut version_1 = vec![1];
    rmp_serde::encode::write(&mut version_1, kv).unwrap();
    assert_eq!(decode_object(&version_1).unwrap(), object);
}

#[test]
fn encoding_through_the_scratch_buffer_writes_what_a_fresh_buffer_would() {
    // A large object leaves the scratch past its bound (so it is given back), a small
    // one after it must not carry anything over, and each is its plain encoding.
    let large = sample_kv(&vec![1; 2 * limits::ENCODE_SCRATCH_BYTES_MAX]);
    let small = sample();
    for object in [&small, &large, &small, &small] {
        let mut fresh = vec![OBJECT_FORMAT_VERSION];
        rmp_serde::encode::write(&mut fresh, object).unwrap();
        let encoded = encode_object(object);
        assert_eq!(encoded, fresh);
        assert_eq!(encoded.capacity(), encoded.len(), "copied out at its size");
    }
    assert!(encode_object(&large).len() > limits::ENCODE_SCRATCH_BYTES_MAX);
}

#[test]
fn unknown_versions_and_garbage_are_errors() {
    let mut bytes = encode_object(&sample());
    bytes[0] = 9;
    assert_eq!(
        decode_object(&bytes),
        Err(DecodeError::Version {
            found: 9,
            supported: 2
        })
    );
    assert_eq!(decode_object(&[]), Err(DecodeError::Empty));
}

/// The largest kv object a replica may hold: a version vector naming every actor it
/// may, and blind writes of the largest value until the next one would not fit.
fn largest_kv() -> KvObject {
    let mut object = KvObject::new();
    for actor in 0..limits::VV_ACTORS_MAX as u64 {
        let context = object.context().clone();
        let at = crate::clock::Hlc::new(u64::MAX / 2 + actor, u32::MAX);
        object
            .mint(crate::clock::Actor(u64::MAX - actor), &context, None, at, 1)
            .unwrap();
    }
    let value = Blob(vec![7; limits::VALUE_BYTES_MAX]);
    let mut actor = 0u64;
    while kv_bytes(&object) + sibling_bytes_of(&value) <= limits::SIBLINGS_BYTES_MAX {
        let at = crate::clock::Hlc::new(u64::MAX, u32::MAX);
        let writer = crate::clock::Actor(u64::MAX - actor % limits::VV_ACTORS_MAX as u64);
        object
            .mint(
                writer,
                &VersionVector::new(),
                Some(value.clone()),
                at,
                limits::SIBLINGS_CAP_MAX,
            )
            .unwrap();
        actor += 1;
    }
    // Fill what is left with one smaller value, so the object is at its limit.
    let rest = limits::SIBLINGS_BYTES_MAX - kv_bytes(&object) - limits::SIBLING_OVERHEAD_BYTES;
    let at = crate::clock::Hlc::new(u64::MAX, u32::MAX);
    object
        .mint(
            crate::clock::Actor(u64::MAX),
            &VersionVector::new(),
            Some(Blob(vec![9; rest])),
            at,
            limits::SIBLINGS_CAP_MAX,
        )
        .unwrap();
    assert_eq!(kv_bytes(&object), limits::SIBLINGS_BYTES_MAX);
    object
}

fn sibling_bytes_of(value: &Blob) -> usize {
    value.0.len() + limits::SIBLING_OVERHEAD_BYTES
}

#[test]
fn an_object_at_its_byte_limit_travels_in_one_frame() {
    use crate::transport::frame::{encode, EnvelopeRef};
    use crate::wire::{PartitionEntry, PeerRequest, PeerResponse};
    let object = Object::Kv(largest_kv());
    assert!(encode_object(&object).len() <= limits::OBJECT_BYTES_MAX);
    let key = ObjectKey::kv(&vec![b'k'; limits::KEY_BYTES_MAX]);
    let from = crate::ids::NodeId::new(&"n".repeat(63)).unwrap();
    let region = crate::ids::Region::new(&"r".repeat(63)).unwrap();
    let requests = [
        PeerRequest::Merge {
            key: key.clone(),
            object: object.clone(),
        },
        PeerRequest::Hint {
            owner: from.clone(),
            key: key.clone(),
            object: object.clone(),
        },
    ];
    for body in &requests {
        let frame = encode(&EnvelopeRef {
            from: &from,
            from_region: &region,
            body,
        });
        assert!(frame.is_ok(), "{:?}", frame.err());
    }
    let answers = [
        PeerResponse::Object(Some(object.clone())),
        PeerResponse::Stored(object.clone()),
        PeerResponse::Entries {
            entries: vec![PartitionEntry {
                key: key.storage_bytes(),
                object: object.clone(),
            }],
            more: true,
        },
    ];
    for answer in &answers {
        assert!(encode(answer).is_ok());
    }
}

#[test]
fn a_kv_merge_keeps_the_newest_siblings_within_the_byte_limit() {
    // Two replicas each took blind writes that fit alone; together they would not.
    let half = limits::SIBLINGS_BYTES_MAX / 2 - limits::SIBLING_OVERHEAD_BYTES;
    let write = |node: &str, wall_ms: u64, byte: u8| {
        let mut object = KvObject::new();
        let actor = crate::clock::Actor::of_incarnation(&crate::ids::NodeId(node.into()), 0);
        let at = crate::clock::Hlc::new(wall_ms, 0);
        object
            .mint(
                actor,
                &VersionVector::new(),
                Some(Blob(vec![byte; half])),
                at,
                limits::SIBLINGS_MAX,
            )
            .unwrap();
        object
    };
    let (older, newer, newest) = (
        write("a-1", 1, b'o'),
        write("a-2", 2, b'n'),
        write("a-3", 3, b'x'),
    );
    let mut left = older.clone();
    merge_kv(&mut left, &newer, limits::SIBLINGS_MAX).unwrap();
    assert_eq!(left.len(), 2, "two halves fit");
    merge_kv(&mut left, &newest, limits::SIBLINGS_MAX).unwrap();
    let mut right = newest.clone();
    merge_kv(&mut right, &older, limits::SIBLINGS_MAX).unwrap();
    merge_kv(&mut right, &newer, limits::SIBLINGS_MAX).unwrap();
    assert_eq!(left, right, "the same two whatever the order");
    assert!(kv_bytes(&left) <= limits::SIBLINGS_BYTES_MAX);
    let kept: Vec<u8> = live_values(&left).iter().map(|blob| blob.0[0]).collect();
    assert_eq!(kept, vec![b'n', b'x']);
    // The dropped write stays covered: merging it again changes nothing.
    let before = left.clone();
    merge_kv(&mut left, &older, limits::SIBLINGS_MAX).unwrap();
    assert_eq!(left, before);
    // Through `Object::merge`, as replicas merge.
    let mut object = Object::Kv(older);
    object
        .merge(&Object::Kv(newer), limits::SIBLINGS_MAX)
        .unwrap();
    object
        .merge(&Object::Kv(newest), limits::SIBLINGS_MAX)
        .unwrap();
    assert_eq!(object, Object::Kv(before));
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_object(&bytes);
    }
}
