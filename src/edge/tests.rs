use super::*;

#[test]
fn caps_count_per_address_and_per_node_and_give_slots_back() {
    let caps = Caps::new(3, 2);
    let one: IpAddr = "127.0.0.1".parse().unwrap();
    let two: IpAddr = "127.0.0.2".parse().unwrap();
    let first = caps.admit(one).unwrap();
    let _second = caps.admit(one).unwrap();
    assert_eq!(caps.admit(one).err(), Some(Cap::Address));
    let _third = caps.admit(two).unwrap();
    assert_eq!(caps.admit(two).err(), Some(Cap::Node));
    drop(first);
    assert!(caps.admit(one).is_ok());
    drop(_third);
    assert!(!caps.per_address.lock().unwrap().contains_key(&two));
}
