//! The feed invariant's judgement of one region.

use super::*;

#[test]
fn a_write_is_covered_by_a_later_report_of_its_key_or_a_later_behind() {
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    let mut heard = Heard::default();
    heard.last.insert("reported".into(), at(20));
    heard.last.insert("early".into(), at(5));
    let keys = [
        "reported".to_string(),
        "early".to_string(),
        "never".to_string(),
    ];
    let writes = || keys.iter().map(|key| (key, at(10)));
    let mut examples = Vec::new();
    let found = judge("east", &heard, writes(), &mut examples);
    assert_eq!(found.missed, 2, "reported before it was sent, and never");
    assert_eq!(examples.len(), 2);
    assert!(examples[0].contains("east"));

    heard.behind = Some(at(8));
    assert_eq!(
        judge("east", &heard, writes(), &mut Vec::new()).missed,
        2,
        "behind came before the writes"
    );
    heard.behind = Some(at(30));
    assert_eq!(
        judge("east", &heard, writes(), &mut Vec::new()).missed,
        0,
        "a later behind covers them"
    );
}
