use super::*;
use crate::ids::Region;
use crate::membership::swim::MemberInfo;

fn member(name: &str, port: u16, incarnation: u64) -> MemberState {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    MemberState {
        info: MemberInfo {
            node: NodeId(name.into()),
            region: Region("a".into()),
            quic: addr,
            http: addr,
            weight: 1,
        },
        incarnation,
        liveness: Liveness::Alive,
        status: Status::Member,
        status_version: 0,
        ready_for: 0,
        proof: None,
    }
}

#[test]
fn a_new_member_changes_the_peers_version_whatever_the_incarnations() {
    // Two members at incarnation 0, then this node one above with a third member:
    // the old fingerprint (sum of incarnations XOR count) gave 2 for both.
    let before = [member("a-1", 1, 0), member("a-2", 2, 0)];
    let after = [
        member("a-1", 1, 1),
        member("a-2", 2, 0),
        member("a-3", 3, 0),
    ];
    assert_ne!(peers_version(&before), peers_version(&after));
    // A member at a new address is a change too.
    let moved = [member("a-1", 1, 0), member("a-2", 4, 0)];
    assert_ne!(peers_version(&before), peers_version(&moved));
    assert_eq!(peers_version(&before), peers_version(&before.clone()));
}
