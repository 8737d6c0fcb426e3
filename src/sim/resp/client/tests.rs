use super::*;

#[test]
fn the_mix_covers_every_pick_and_sums_to_a_hundred() {
    assert_eq!(PICKS.iter().map(|(_, weight)| weight).sum::<u32>(), 100);
    let picked: std::collections::BTreeSet<_> =
        (0..100).map(|roll| format!("{:?}", pick(roll))).collect();
    assert_eq!(picked.len(), PICKS.len());
}
