use super::*;

#[test]
fn unit_interval_extremes_stay_inside_open_interval() {
    let lowest = 0.5 * UNIT_GRID_STEP;
    let highest = (((1u64 << 52) - 1) as f64 + 0.5) * UNIT_GRID_STEP;
    assert!(lowest > 0.0);
    assert!(highest < 1.0);
    assert!(score(1, lowest).is_finite() && score(1, lowest) > 0.0);
    assert!(score(1, highest).is_finite() && score(1, highest) > 0.0);
    assert!(score(1, highest) > score(1, lowest));
}

#[test]
fn unit_interval_depends_on_partition_and_node() {
    let mut buffer = Vec::new();
    let node = NodeId("a".to_string());
    let other = NodeId("b".to_string());
    let first = unit_interval(0, &node, &mut buffer);
    assert!(first > 0.0 && first < 1.0);
    assert_ne!(first, unit_interval(1, &node, &mut buffer));
    assert_ne!(first, unit_interval(0, &other, &mut buffer));
    assert_eq!(first, unit_interval(0, &node, &mut buffer));
}

#[test]
fn heavier_weight_scores_higher_for_the_same_draw() {
    assert!(score(2, 0.3) > score(1, 0.3));
    assert!((score(2, 0.3) - 2.0 * score(1, 0.3)).abs() < 1e-12);
}
