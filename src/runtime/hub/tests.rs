//! Which listeners a change reaches, once, and that nothing is dropped silently.

use super::*;
use crate::ids::PartitionId;

fn change(key: &[u8], kind: ChangeKind, digest: u8) -> Change {
    Change {
        global: 1,
        partition: PartitionId(0),
        seq: 1,
        key: key.to_vec(),
        kind,
        digest: [digest; 32],
    }
}

fn changed(key: &[u8], kind: ChangeKind) -> Event {
    Event::Changed {
        key: Arc::from(key),
        kind,
    }
}

fn tracking() -> Interest {
    Interest {
        tracked: true,
        ..Interest::default()
    }
}

#[test]
fn a_tracked_key_is_told_once_per_read_and_only_to_its_readers() {
    let hub = Hub::new();
    let reader = hub.listen(tracking()).expect("listen");
    let other = hub.listen(tracking()).expect("listen");
    reader.track(b"a");
    hub.deliver(&[
        change(b"a", ChangeKind::Written, 1),
        change(b"b", ChangeKind::Written, 2),
    ]);
    assert_eq!(reader.take(), vec![changed(b"a", ChangeKind::Written)]);
    assert!(other.take().is_empty(), "it read nothing");
    hub.deliver(&[change(b"a", ChangeKind::Deleted, 3)]);
    assert!(reader.take().is_empty(), "told once until it reads again");
    reader.track(b"a");
    hub.deliver(&[change(b"a", ChangeKind::Deleted, 3)]);
    assert_eq!(reader.take(), vec![changed(b"a", ChangeKind::Deleted)]);
}

#[test]
fn a_prefix_listener_hears_every_change_under_its_prefixes() {
    let hub = Hub::new();
    let listener = hub
        .listen(Interest {
            prefixes: vec![b"user:".to_vec()],
            ..Interest::default()
        })
        .expect("listen");
    hub.deliver(&[
        change(b"user:1", ChangeKind::Written, 1),
        change(b"cart:1", ChangeKind::Written, 2),
        change(b"user:1", ChangeKind::Written, 1),
    ]);
    assert_eq!(
        listener.take(),
        vec![
            changed(b"user:1", ChangeKind::Written),
            changed(b"user:1", ChangeKind::Written)
        ],
        "every report: a cache may have read between them"
    );
}

#[test]
fn a_listener_of_every_change_hears_a_change_once_though_several_replicas_report_it() {
    let hub = Hub::new();
    let listener = hub
        .listen(Interest {
            all: true,
            ..Interest::default()
        })
        .expect("listen");
    let expired = change(b"s", ChangeKind::Expired, 9);
    hub.deliver(std::slice::from_ref(&expired));
    hub.deliver(&[expired.clone(), change(b"s", ChangeKind::Written, 10)]);
    assert_eq!(
        listener.take(),
        vec![
            changed(b"s", ChangeKind::Expired),
            changed(b"s", ChangeKind::Written)
        ]
    );
}

#[test]
fn past_its_bound_a_listener_gets_one_lost_instead_of_its_events() {
    let hub = Hub::new();
    let listener = hub
        .listen(Interest {
            all: true,
            ..Interest::default()
        })
        .expect("listen");
    let key = vec![7u8; 1000];
    let many: Vec<Change> = (0..=limits::LISTENER_PENDING_BYTES_MAX / 1000)
        .map(|n| {
            let mut change = change(&key, ChangeKind::Written, 0);
            change.digest = *blake3::hash(&n.to_le_bytes()).as_bytes();
            change
        })
        .collect();
    hub.deliver(&many);
    let events = listener.take();
    assert_eq!(events[0], Event::Lost, "{} events", events.len());
    assert!(events.len() < many.len());
    hub.lost();
    hub.lost();
    assert_eq!(listener.take(), vec![Event::Lost], "two in a row are one");
}

#[test]
fn a_dropped_listener_leaves_nothing_behind() {
    let hub = Hub::new();
    let listener = hub.listen(tracking()).expect("listen");
    listener.track(b"a");
    listener.track(b"b");
    assert_eq!(hub.counts(), (1, 2));
    drop(listener);
    assert_eq!(hub.counts(), (0, 0));
    hub.deliver(&[change(b"a", ChangeKind::Written, 1)]);
}

#[test]
fn turning_tracking_off_forgets_the_keys_read() {
    let hub = Hub::new();
    let listener = hub.listen(tracking()).expect("listen");
    listener.track(b"a");
    listener.set_interest(Interest::default());
    assert_eq!(hub.counts(), (1, 0));
    hub.deliver(&[change(b"a", ChangeKind::Written, 1)]);
    assert!(listener.take().is_empty());
}

#[test]
fn no_more_listeners_than_the_bound() {
    let hub = Hub::new();
    let listeners: Vec<Listener> = (0..limits::LISTENERS_MAX)
        .map(|_| hub.listen(Interest::default()).expect("under the bound"))
        .collect();
    assert_eq!(
        hub.listen(Interest::default()).err(),
        Some(ListenError::TooMany(limits::LISTENERS_MAX))
    );
    drop(listeners);
    assert!(hub.listen(Interest::default()).is_ok());
}

#[tokio::test]
async fn a_waiting_listener_wakes_when_an_event_arrives() {
    let hub = Hub::new();
    let listener = hub.listen(tracking()).expect("listen");
    listener.track(b"k");
    let waiting = tokio::spawn(async move {
        listener.ready().await;
        listener.take()
    });
    tokio::task::yield_now().await;
    hub.deliver(&[change(b"k", ChangeKind::Deleted, 1)]);
    let events = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("woken")
        .expect("task");
    assert_eq!(events, vec![changed(b"k", ChangeKind::Deleted)]);
}

#[test]
fn a_listener_turned_to_prefixes_hears_them_and_turned_back_does_not() {
    let hub = Hub::new();
    let listener = hub.listen(tracking()).expect("listen");
    listener.set_interest(Interest {
        prefixes: vec![b"p".to_vec()],
        ..Interest::default()
    });
    hub.deliver(&[change(b"p1", ChangeKind::Written, 1)]);
    assert_eq!(listener.take(), vec![changed(b"p1", ChangeKind::Written)]);
    listener.set_interest(tracking());
    hub.deliver(&[change(b"p2", ChangeKind::Written, 2)]);
    assert!(listener.take().is_empty());
}

#[test]
fn a_confirmed_read_is_not_ended_by_other_replicas_reports_of_what_it_saw() {
    let hub = Hub::new();
    let listener = hub.listen(tracking()).expect("listen");
    listener.track(b"k");
    listener.confirm(b"k", [4; 32]);
    hub.deliver(&[
        change(b"k", ChangeKind::Written, 4),
        change(b"k", ChangeKind::Written, 4),
    ]);
    assert!(listener.take().is_empty(), "the state it read");
    hub.deliver(&[change(b"k", ChangeKind::Written, 5)]);
    assert_eq!(listener.take(), vec![changed(b"k", ChangeKind::Written)]);
}
