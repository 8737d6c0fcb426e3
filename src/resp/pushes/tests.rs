//! One connection's tracking and subscriptions against a real hub fed by hand: what a
//! read registers, what a change pushes in each protocol, redirects, subscribed mode
//! and the notification setting.

use super::*;
use crate::feed::{Change, ChangeKind};
use crate::ids::PartitionId;

fn args(text: &str) -> Args {
    text.split(' ')
        .map(|word| Bytes::copy_from_slice(word.as_bytes()))
        .collect()
}

fn state(protocol: Protocol) -> ConnectionState {
    let mut state = ConnectionState::new(1, "127.0.0.1:5000".parse().unwrap(), true);
    state.protocol = protocol;
    state
}

fn change(key: &str, kind: ChangeKind, digest: u8) -> Change {
    Change {
        global: 1,
        partition: PartitionId(0),
        seq: 1,
        key: ObjectKey::new(Class::Resp, key.as_bytes()).storage_bytes(),
        kind,
        digest: [digest; 32],
    }
}

/// Runs one command as the server does (before it, then the command); its replies
/// encoded, or `None` when this module does not own it.
fn run(pushes: &mut Pushes, state: &ConnectionState, text: &str) -> Option<String> {
    let request = args(text);
    if let Some(refusal) = pushes.before_command(state, &request) {
        return Some(encode(&[refusal], state.protocol));
    }
    pushes
        .command(state, &request)
        .map(|replies| encode(&replies, state.protocol))
}

fn encode(replies: &[Reply], protocol: Protocol) -> String {
    replies
        .iter()
        .map(|reply| String::from_utf8_lossy(&reply.to_bytes(protocol)).into_owned())
        .collect()
}

fn taken(pushes: &mut Pushes, protocol: Protocol) -> String {
    encode(&pushes.take(protocol), protocol)
}

fn setup() -> (Hub, Arc<Notifications>) {
    (Hub::new(), Arc::new(Notifications::default()))
}

#[test]
fn a_read_key_is_invalidated_once_after_it_changes_and_lost_flushes_everything() {
    let (hub, notifications) = setup();
    let resp3 = state(Protocol::Resp3);
    let mut pushes = Pushes::new(1, notifications, Some(hub.clone()));
    assert_eq!(
        run(&mut pushes, &resp3, "CLIENT TRACKING ON").as_deref(),
        Some("+OK\r\n")
    );
    assert_eq!(run(&mut pushes, &resp3, "GET a"), None);
    assert_eq!(run(&mut pushes, &resp3, "MGET b c"), None);
    // A write registers nothing.
    assert_eq!(run(&mut pushes, &resp3, "SET d 1"), None);
    hub.deliver(&[
        change("a", ChangeKind::Written, 1),
        change("d", ChangeKind::Written, 2),
        change("c", ChangeKind::Deleted, 3),
    ]);
    assert_eq!(
        taken(&mut pushes, Protocol::Resp3),
        ">2\r\n$10\r\ninvalidate\r\n*2\r\n$1\r\na\r\n$1\r\nc\r\n"
    );
    // Told once per read.
    hub.deliver(&[change("a", ChangeKind::Written, 4)]);
    assert_eq!(taken(&mut pushes, Protocol::Resp3), "");
    hub.lost();
    assert_eq!(
        taken(&mut pushes, Protocol::Resp3),
        ">2\r\n$10\r\ninvalidate\r\n_\r\n"
    );
    // Off: the listener is gone.
    assert_eq!(hub.counts().0, 1);
    assert_eq!(
        run(&mut pushes, &resp3, "CLIENT TRACKING OFF").as_deref(),
        Some("+OK\r\n")
    );
    assert_eq!(hub.counts().0, 0);
    assert_eq!(
        run(&mut pushes, &resp3, "CLIENT GETREDIR").as_deref(),
        Some(":-1\r\n")
    );
}

#[test]
fn optin_tracks_only_the_read_after_caching_yes_and_bcast_follows_prefixes() {
    let (hub, notifications) = setup();
    let resp3 = state(Protocol::Resp3);
    let mut optin = Pushes::new(1, notifications.clone(), Some(hub.clone()));
    run(&mut optin, &resp3, "CLIENT TRACKING ON OPTIN");
    run(&mut optin, &resp3, "GET a");
    assert_eq!(
        run(&mut optin, &resp3, "CLIENT CACHING YES").as_deref(),
        Some("+OK\r\n")
    );
    run(&mut optin, &resp3, "GET b");
    run(&mut optin, &resp3, "GET c");
    let mut bcast = Pushes::new(2, notifications, Some(hub.clone()));
    run(&mut bcast, &resp3, "CLIENT TRACKING ON BCAST PREFIX user:");
    hub.deliver(&[
        change("a", ChangeKind::Written, 1),
        change("b", ChangeKind::Written, 2),
        change("c", ChangeKind::Written, 3),
        change("user:1", ChangeKind::Expired, 4),
    ]);
    assert_eq!(
        taken(&mut optin, Protocol::Resp3),
        ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nb\r\n"
    );
    assert_eq!(
        taken(&mut bcast, Protocol::Resp3),
        ">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\nuser:1\r\n"
    );
}

#[test]
fn resp2_gets_invalidations_only_through_a_redirect_to_a_subscribed_connection() {
    let (hub, notifications) = setup();
    let resp2 = state(Protocol::Resp2);
    let mut alone = Pushes::new(1, notifications.clone(), Some(hub.clone()));
    let mut target = Pushes::new(2, notifications.clone(), Some(hub.clone()));
    let mut reader = Pushes::new(3, notifications.clone(), Some(hub.clone()));
    assert_eq!(
        run(&mut target, &resp2, "SUBSCRIBE __redis__:invalidate").as_deref(),
        Some("*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n")
    );
    // The invalidation channel alone needs no listener of every change.
    assert_eq!(hub.counts().0, 0);
    run(&mut alone, &resp2, "CLIENT TRACKING ON");
    assert_eq!(
        run(&mut reader, &resp2, "CLIENT TRACKING ON REDIRECT 2").as_deref(),
        Some("+OK\r\n")
    );
    assert_eq!(
        run(&mut reader, &resp2, "CLIENT GETREDIR").as_deref(),
        Some(":2\r\n")
    );
    run(&mut alone, &resp2, "GET k");
    run(&mut reader, &resp2, "GET k");
    hub.deliver(&[change("k", ChangeKind::Written, 1)]);
    assert_eq!(taken(&mut alone, Protocol::Resp2), "");
    assert_eq!(taken(&mut reader, Protocol::Resp2), "");
    assert_eq!(
        taken(&mut target, Protocol::Resp2),
        "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n"
    );
    // Subscribed mode refuses other commands, answers PING as a message.
    assert_eq!(
        run(&mut target, &resp2, "GET k").as_deref(),
        Some(
            "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
             RESET are allowed in this context\r\n"
        )
    );
    assert_eq!(
        run(&mut target, &resp2, "PING").as_deref(),
        Some("*2\r\n$4\r\npong\r\n$0\r\n\r\n")
    );
    // The target gone, the redirect is broken (told in RESP3 only).
    drop(target);
    run(&mut reader, &resp2, "GET k");
    hub.deliver(&[change("k", ChangeKind::Written, 2)]);
    assert_eq!(
        taken(&mut reader, Protocol::Resp3),
        ">2\r\n$21\r\ntracking-redir-broken\r\n:2\r\n"
    );
    let info = run(&mut reader, &resp2, "CLIENT TRACKINGINFO").unwrap();
    assert!(info.contains("broken_redirect"), "{info}");
    assert_eq!(
        run(&mut reader, &resp2, "CLIENT TRACKING ON REDIRECT 2").as_deref(),
        Some("-ERR The client ID you want redirect to does not exist\r\n")
    );
}

#[test]
fn keyspace_notifications_follow_the_node_setting_and_the_subscriptions() {
    let (hub, notifications) = setup();
    let resp3 = state(Protocol::Resp3);
    let mut subscriber = Pushes::new(1, notifications.clone(), Some(hub.clone()));
    let mut admin = Pushes::new(2, notifications.clone(), Some(hub.clone()));
    assert_eq!(
        run(&mut admin, &resp3, "CONFIG GET notify-keyspace-events").as_deref(),
        Some("%1\r\n$22\r\nnotify-keyspace-events\r\n$0\r\n\r\n")
    );
    assert_eq!(
        run(
            &mut subscriber,
            &resp3,
            "SUBSCRIBE __keyevent@0__:expired __keyevent@0__:del"
        )
        .as_deref(),
        Some(
            ">3\r\n$9\r\nsubscribe\r\n$22\r\n__keyevent@0__:expired\r\n:1\r\n\
             >3\r\n$9\r\nsubscribe\r\n$18\r\n__keyevent@0__:del\r\n:2\r\n"
        )
    );
    run(&mut subscriber, &resp3, "PSUBSCRIBE __keyspace@0__:user:*");
    // Off by default: nothing published.
    hub.deliver(&[change("user:1", ChangeKind::Expired, 1)]);
    assert_eq!(taken(&mut subscriber, Protocol::Resp3), "");
    assert_eq!(
        run(&mut admin, &resp3, "CONFIG SET notify-keyspace-events KEx").as_deref(),
        Some("+OK\r\n")
    );
    assert_eq!(
        run(&mut admin, &resp3, "CONFIG GET notify-*").as_deref(),
        Some("%1\r\n$22\r\nnotify-keyspace-events\r\n$3\r\nxKE\r\n")
    );
    let refused = run(&mut admin, &resp3, "CONFIG SET notify-keyspace-events Q").unwrap();
    assert!(
        refused.contains("Invalid event class character"),
        "{refused}"
    );
    let refused = run(&mut admin, &resp3, "CONFIG SET maxmemory 1").unwrap();
    assert!(refused.starts_with("-ERR Unknown option"), "{refused}");
    hub.deliver(&[
        change("user:2", ChangeKind::Expired, 2),
        // Reported again by another replica: published once.
        change("user:2", ChangeKind::Expired, 2),
        change("user:3", ChangeKind::Deleted, 3),
        change("user:4", ChangeKind::Written, 4),
    ]);
    assert_eq!(
        taken(&mut subscriber, Protocol::Resp3),
        ">4\r\n$8\r\npmessage\r\n$21\r\n__keyspace@0__:user:*\r\n$21\r\n__keyspace@0__:user:2\r\n$7\r\nexpired\r\n\
         >3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:expired\r\n$6\r\nuser:2\r\n"
    );
    assert_eq!(hub.counts().0, 1);
    assert_eq!(
        run(&mut subscriber, &resp3, "UNSUBSCRIBE").as_deref(),
        Some(
            ">3\r\n$11\r\nunsubscribe\r\n$22\r\n__keyevent@0__:expired\r\n:2\r\n\
             >3\r\n$11\r\nunsubscribe\r\n$18\r\n__keyevent@0__:del\r\n:1\r\n"
        )
    );
    run(&mut subscriber, &resp3, "PUNSUBSCRIBE");
    assert_eq!(hub.counts().0, 0);
    assert_eq!(
        run(&mut subscriber, &resp3, "UNSUBSCRIBE").as_deref(),
        Some(">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n")
    );
}

#[test]
fn reset_and_close_drop_every_listener_and_the_inbox() {
    let (hub, notifications) = setup();
    let resp3 = state(Protocol::Resp3);
    let mut pushes = Pushes::new(5, notifications.clone(), Some(hub.clone()));
    run(&mut pushes, &resp3, "CLIENT TRACKING ON");
    run(&mut pushes, &resp3, "PSUBSCRIBE *");
    assert_eq!(hub.counts().0, 2);
    pushes.reset();
    assert_eq!(hub.counts().0, 0);
    assert!(notifications.exists(5));
    drop(pushes);
    assert!(!notifications.exists(5));
}

#[test]
fn a_full_redirect_inbox_becomes_one_flush() {
    let inbox = Inbox::default();
    let key = Bytes::from(vec![b'k'; 1000]);
    for _ in 0..=limits::RESP_REDIRECT_PENDING_BYTES_MAX / 1000 {
        inbox.post(Some(vec![key.clone()]));
    }
    assert_eq!(inbox.take(), vec![None]);
    assert!(inbox.take().is_empty());
}

#[test]
fn many_invalidated_keys_are_cut_into_bounded_pushes() {
    let events: Vec<Event> = (0..limits::RESP_INVALIDATE_KEYS_PER_PUSH_MAX + 1)
        .map(|index| Event::Changed {
            key: Arc::from(
                ObjectKey::new(Class::Resp, format!("k{index}").as_bytes()).storage_bytes(),
            ),
            kind: crate::feed::ChangeKind::Written,
        })
        .collect();
    let pushes = invalidations(events);
    assert_eq!(pushes.len(), 2);
    assert_eq!(
        pushes[0].as_ref().map(Vec::len),
        Some(limits::RESP_INVALIDATE_KEYS_PER_PUSH_MAX)
    );
}
