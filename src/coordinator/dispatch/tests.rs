use super::*;

fn peer() -> NodeId {
    NodeId::new("a-2").expect("a valid id")
}

#[test]
fn transport_failures_keep_their_kind() {
    let timeout = TransportError::Timeout {
        peer: peer(),
        after_ms: 7,
    };
    assert_eq!(
        DispatchError::of_transport(&peer(), &timeout),
        DispatchError::Timeout {
            peer: peer(),
            after_ms: 7
        }
    );
    let refused = TransportError::Refused {
        peer: peer(),
        reason: Refusal::FrameRejected,
    };
    assert_eq!(
        DispatchError::of_transport(&peer(), &refused),
        DispatchError::Refused {
            peer: peer(),
            reason: Refusal::FrameRejected
        }
    );
    let closed = DispatchError::of_transport(&peer(), &TransportError::Closed);
    assert!(
        matches!(closed, DispatchError::Unreachable { ref peer, .. } if peer.as_str() == "a-2"),
        "{closed:?}"
    );
}
