use super::*;

#[test]
fn values_are_unique_per_write_and_sized() {
    let a = value_for("k", 1, 64);
    let b = value_for("k", 2, 64);
    assert_ne!(a, b);
    assert_eq!(a.len(), 64);
    assert!(value_for("a-long-key-name", 1, 4).starts_with(b"a-long-key-name#1#"));
}

#[test]
fn the_final_check_tells_lost_writes_and_resurrected_deletes_apart() {
    let (old, new) = (b"k#1#".to_vec(), b"k#2#".to_vec());
    assert_eq!(
        check_key(std::slice::from_ref(&old), &old, &[]),
        KeyCheck::Fine
    );
    assert_eq!(check_key(&[], &old, &[]), KeyCheck::Lost);
    assert_eq!(
        check_key(std::slice::from_ref(&new), &old, std::slice::from_ref(&new)),
        KeyCheck::Fine
    );
    // A later delete of unknown outcome may have removed it.
    assert_eq!(check_key(&[], &old, &[Vec::new()]), KeyCheck::Fine);
    // Deleted: nothing may come back but a later write of unknown outcome.
    assert_eq!(check_key(&[], &[], &[]), KeyCheck::Fine);
    assert_eq!(
        check_key(std::slice::from_ref(&old), &[], &[]),
        KeyCheck::Resurrected
    );
    assert_eq!(
        check_key(std::slice::from_ref(&new), &[], std::slice::from_ref(&new)),
        KeyCheck::Fine
    );
}
