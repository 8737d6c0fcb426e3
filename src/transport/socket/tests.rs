use super::datagrams_in;

#[test]
fn a_buffer_cut_in_segments_counts_each_datagram() {
    assert_eq!(datagrams_in(1200, None), 1);
    assert_eq!(datagrams_in(1200, Some(1200)), 1);
    assert_eq!(datagrams_in(1201, Some(1200)), 2);
    assert_eq!(datagrams_in(3600, Some(1200)), 3);
    assert_eq!(datagrams_in(0, Some(0)), 1);
}
