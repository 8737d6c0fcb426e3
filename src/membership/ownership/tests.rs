use super::*;

fn owner(node: &str, region: &str, status: Status) -> Owner {
    Owner {
        node: NodeId(node.into()),
        region: Region(region.into()),
        weight: 1,
        status,
        ready_for: 0,
        dead: false,
    }
}

fn config() -> RingConfig {
    RingConfig {
        partitions: 64,
        replicas_per_region: [(Region("a".into()), 2)].into(),
    }
}

fn three() -> Vec<Owner> {
    (1..=3)
        .map(|i| owner(&format!("a-{i}"), "a", Status::Member))
        .collect()
}

#[test]
fn a_stable_member_list_has_no_target() {
    let view = RingView::new(&three(), &config(), 1).unwrap();
    assert!(view.target.is_none());
    assert_eq!(view.generation, 0);
    assert!(view.gaining_nodes().is_empty());
    assert!(!view.ready_to_commit(&three()));
}

#[test]
fn a_joiner_gains_partitions_and_commits_when_ready() {
    let mut owners = three();
    owners.push(owner("a-4", "a", Status::Joining));
    let view = RingView::new(&owners, &config(), 1).unwrap();
    let joiner = NodeId("a-4".into());
    assert!(
        view.current.partitions_of(&joiner).is_empty(),
        "not an owner before it is ready"
    );
    let gained = view.gained_by(&joiner);
    assert!(!gained.is_empty());
    // The balanced placement may hand a capped node another partition in exchange for
    // one the joiner takes, so the joiner is one of the gaining nodes, not always alone.
    let gaining = view.gaining_nodes();
    assert!(gaining.contains(&joiner));
    let (voting, extra) = view.replicas_for(gained[0], &Region("a".into()));
    assert_eq!(voting.len(), 2);
    assert!(extra.iter().any(|r| r.node == joiner));
    assert!(!view.ready_to_commit(&owners));
    owners[3].ready_for = view.generation;
    assert_eq!(view.ready_to_commit(&owners), gaining.len() == 1);
    for owner in owners.iter_mut().filter(|o| gaining.contains(&o.node)) {
        owner.ready_for = view.generation;
    }
    assert!(view.ready_to_commit(&owners));
}

#[test]
fn refreshed_views_reuse_unchanged_rings() {
    let mut owners = three();
    owners.push(owner("a-4", "a", Status::Joining));
    let view = RingView::new(&owners, &config(), 1).unwrap();
    // A liveness change alone: both rings are the same allocations.
    owners[0].dead = true;
    let again = RingView::refreshed(&view, &owners, &config(), 1).unwrap();
    assert!(Arc::ptr_eq(&view.current, &again.current));
    assert!(Arc::ptr_eq(
        view.target.as_ref().unwrap(),
        again.target.as_ref().unwrap()
    ));
    // The join commits: the old target becomes the current ring (same members, epoch 2).
    owners[3].status = Status::Member;
    let committed = RingView::refreshed(&again, &owners, &config(), 2).unwrap();
    assert!(Arc::ptr_eq(
        again.target.as_ref().unwrap(),
        &committed.current
    ));
    // A different member list is built afresh and equals a fresh build.
    owners.push(owner("a-5", "a", Status::Joining));
    let grown = RingView::refreshed(&committed, &owners, &config(), 2).unwrap();
    let fresh = RingView::new(&owners, &config(), 2).unwrap();
    assert_eq!(grown.target.as_deref(), fresh.target.as_deref());
    assert!(RingView::check(&owners, &config()).is_ok());
    owners.truncate(1);
    assert!(RingView::check(&owners, &config()).is_err());
}

#[test]
fn a_leaver_keeps_its_partitions_until_the_gaining_nodes_are_ready() {
    let mut owners = three();
    owners.push(owner("a-4", "a", Status::Member));
    owners[0].status = Status::Leaving;
    let view = RingView::new(&owners, &config(), 2).unwrap();
    let leaver = NodeId("a-1".into());
    assert!(!view.current.partitions_of(&leaver).is_empty());
    assert!(view
        .target
        .as_ref()
        .unwrap()
        .partitions_of(&leaver)
        .is_empty());
    let gaining = view.gaining_nodes();
    assert!(!gaining.is_empty() && !gaining.contains(&leaver));
    for owner in owners.iter_mut().filter(|o| gaining.contains(&o.node)) {
        owner.ready_for = view.generation;
    }
    assert!(view.ready_to_commit(&owners));
}

#[test]
fn leaving_below_the_replica_count_is_refused_by_the_ring() {
    let mut owners = three();
    owners.truncate(2);
    owners[0].status = Status::Leaving;
    assert!(matches!(
        RingView::new(&owners, &config(), 1),
        Err(RingError::RegionTooSmall { .. })
    ));
}

#[test]
fn generations_differ_by_target_member_set_only() {
    let mut owners = three();
    owners.push(owner("a-4", "a", Status::Joining));
    let first = generation_of(&owners);
    owners[3].ready_for = 9;
    assert_eq!(generation_of(&owners), first);
    owners.push(owner("a-5", "a", Status::Joining));
    assert_ne!(generation_of(&owners), first);
}
