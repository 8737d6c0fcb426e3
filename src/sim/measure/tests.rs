use super::*;

#[test]
fn median_of_even_and_odd_counts() {
    let ms = |v: &[u64]| {
        v.iter()
            .map(|m| Duration::from_millis(*m))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        median_and_max(&ms(&[3, 1, 2])),
        (Duration::from_millis(2), Duration::from_millis(3))
    );
    assert_eq!(
        median_and_max(&ms(&[4, 1, 2, 3])),
        (Duration::from_micros(2500), Duration::from_millis(4))
    );
    assert_eq!(median_and_max(&[]), (Duration::ZERO, Duration::ZERO));
}
