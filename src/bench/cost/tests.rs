use super::*;

#[test]
fn cpu_ticks_are_user_plus_system_after_a_name_with_spaces() {
    let stat = "1234 (tokio worker 1) S 1 2 3 4 5 6 7 8 9 10 250 40 0 0 20 0 3 0";
    assert_eq!(parse_cpu_ticks(stat), Some(290));
    assert_eq!(parse_cpu_ticks("1234 (cut"), None);
    assert_eq!(parse_cpu_ticks("1234 (short) S 1 2"), None);
}

#[test]
fn a_counter_is_read_by_its_exact_name() {
    let metrics = "# TYPE cartwheel_transport_send_calls counter\n\
        cartwheel_transport_send_calls_total_extra 9\n\
        cartwheel_transport_send_calls_total 1234\n\
        cartwheel_transport_datagrams_sent_total 5.0e3\n";
    assert_eq!(
        counter(metrics, "cartwheel_transport_send_calls_total"),
        1234.0
    );
    assert_eq!(
        counter(metrics, "cartwheel_transport_datagrams_sent_total"),
        5000.0
    );
    assert_eq!(counter(metrics, "cartwheel_absent_total"), 0.0);
}
