//! The pure decisions of tracking and notifications: Redis's errors for bad option
//! combinations, the flags' parse and spelling, and what a change publishes.

use super::events::EventFlags;
use super::pubsub::{SubscribeError, Subscriptions};
use super::tracking::{self, Request, Tracking};
use crate::feed::ChangeKind;
use crate::limits;
use crate::resp::reply::{Protocol, Reply};
use bytes::Bytes;

fn words(text: &str) -> Vec<Bytes> {
    text.split(' ')
        .map(|word| Bytes::copy_from_slice(word.as_bytes()))
        .collect()
}

fn error_text(reply: Reply) -> String {
    match reply {
        Reply::Error(text) => text,
        other => panic!("not an error: {other:?}"),
    }
}

/// `CLIENT TRACKING <args>` against the tracking `current`, with connection 7 open.
fn turn(current: Option<&Tracking>, args: &str) -> Result<Option<Tracking>, String> {
    match tracking::parse(&words(args), |id| id == 7) {
        Ok(Request::Off) => Ok(None),
        Ok(Request::On(asked)) => tracking::turn_on(current, asked)
            .map(Some)
            .map_err(error_text),
        Err(error) => Err(error_text(error)),
    }
}

#[test]
fn tracking_options_are_checked_as_redis_checks_them() {
    let refused = [
        (
            "ON PREFIX a",
            "ERR PREFIX option requires BCAST mode to be enabled",
        ),
        (
            "ON BCAST OPTIN",
            "ERR OPTIN and OPTOUT are not compatible with BCAST",
        ),
        (
            "ON OPTIN OPTOUT",
            "ERR You can't specify both OPTIN mode and OPTOUT mode",
        ),
        (
            "ON REDIRECT 8",
            "ERR The client ID you want redirect to does not exist",
        ),
        (
            "ON REDIRECT x",
            "ERR value is not an integer or out of range",
        ),
        (
            "ON REDIRECT 7 REDIRECT 7",
            "ERR A client can only redirect to a single other client",
        ),
        ("ON FOO", "ERR syntax error"),
        ("MAYBE", "ERR syntax error"),
        ("ON PREFIX", "ERR syntax error"),
        (
            "ON BCAST PREFIX a PREFIX ab",
            "ERR Prefix 'ab' overlaps with an existing prefix 'a'. Prefixes for a single \
             client must not overlap.",
        ),
    ];
    for (args, expected) in refused {
        assert_eq!(turn(None, args), Err(expected.to_string()), "{args}");
    }
    let on = turn(None, "on redirect 7 noloop").unwrap().unwrap();
    assert_eq!(on.redirect, Some(7));
    assert!(on.noloop && !on.bcast);
    assert_eq!(turn(Some(&on), "OFF"), Ok(None));
    // Switching modes while on is refused; prefixes add up.
    let bcast = turn(None, "ON BCAST PREFIX a").unwrap().unwrap();
    let switch = turn(Some(&bcast), "ON").unwrap_err();
    assert!(
        switch.starts_with("ERR You can't switch BCAST mode"),
        "{switch}"
    );
    let more = turn(Some(&bcast), "ON BCAST PREFIX b").unwrap().unwrap();
    assert_eq!(more.prefixes, words("a b"));
    let overlap = turn(Some(&more), "ON BCAST PREFIX bc").unwrap_err();
    assert!(
        overlap.contains("overlaps with an existing prefix 'b'"),
        "{overlap}"
    );
    let optin = turn(None, "ON OPTIN").unwrap().unwrap();
    let switch = turn(Some(&optin), "ON OPTOUT").unwrap_err();
    assert!(
        switch.starts_with("ERR You can't switch OPTIN/OPTOUT"),
        "{switch}"
    );
}

#[test]
fn too_many_prefixes_are_refused() {
    let prefixes: String = (0..=limits::TRACKING_PREFIXES_MAX)
        .map(|index| format!(" PREFIX p{index:04}"))
        .collect();
    let refused = turn(None, &format!("ON BCAST{prefixes}")).unwrap_err();
    assert!(refused.contains("prefixes at most"), "{refused}");
}

#[test]
fn caching_is_allowed_only_in_its_mode_and_decides_what_is_tracked() {
    let caching = |tracking: Option<&Tracking>, answer: &str| {
        tracking::caching(tracking, &words(answer)).map_err(error_text)
    };
    let refused = caching(None, "YES").unwrap_err();
    assert!(
        refused.starts_with("ERR CLIENT CACHING can be called only"),
        "{refused}"
    );
    let optin = Tracking {
        optin: true,
        ..Tracking::default()
    };
    let optout = Tracking {
        optout: true,
        ..Tracking::default()
    };
    assert_eq!(caching(Some(&optin), "yes"), Ok(true));
    assert_eq!(
        caching(Some(&optin), "NO"),
        Err("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.".into())
    );
    assert_eq!(caching(Some(&optout), "no"), Ok(false));
    assert!(!tracking::reads_tracked(&optin, None));
    assert!(tracking::reads_tracked(&optin, Some(true)));
    assert!(tracking::reads_tracked(&optout, None));
    assert!(!tracking::reads_tracked(&optout, Some(false)));
    assert!(tracking::reads_tracked(&Tracking::default(), None));
}

#[test]
fn trackinginfo_and_getredir_answer_as_redis() {
    assert_eq!(tracking::redirect_id(None), -1);
    assert_eq!(tracking::redirect_id(Some(&Tracking::default())), 0);
    let info = tracking::info(None, None, false).to_bytes(Protocol::Resp3);
    assert_eq!(
        &info[..],
        b"%3\r\n$5\r\nflags\r\n~1\r\n$3\r\noff\r\n$8\r\nredirect\r\n:-1\r\n$8\r\nprefixes\r\n*0\r\n"
    );
    let bcast = Tracking {
        bcast: true,
        prefixes: words("user:"),
        ..Tracking::default()
    };
    let info = tracking::info(Some(&bcast), None, true).to_bytes(Protocol::Resp3);
    let text = String::from_utf8_lossy(&info);
    assert!(
        text.contains("~3\r\n$2\r\non\r\n$5\r\nbcast\r\n$15\r\nbroken_redirect"),
        "{text}"
    );
    assert!(text.ends_with("*1\r\n$5\r\nuser:\r\n"), "{text}");
}

#[test]
fn bcast_prefixes_become_storage_prefixes_of_resp_keys() {
    let tag = crate::object::Class::Resp.tag();
    let all = Tracking {
        bcast: true,
        ..Tracking::default()
    };
    assert_eq!(tracking::storage_prefixes(&all), vec![vec![tag]]);
    let some = Tracking {
        bcast: true,
        prefixes: words("a: b"),
        ..Tracking::default()
    };
    assert_eq!(
        tracking::storage_prefixes(&some),
        vec![vec![tag, b'a', b':'], vec![tag, b'b']]
    );
    assert!(tracking::storage_prefixes(&Tracking::default()).is_empty());
}

#[test]
fn event_flags_parse_every_redis_class_and_are_written_back_as_redis_does() {
    for (given, shown) in [
        ("", ""),
        ("Egx", "gxE"),
        ("KEA", "AKE"),
        ("xKg$h", "g$hxK"),
        ("Kmn", "Kmn"),
    ] {
        let flags = EventFlags::parse(given.as_bytes()).unwrap();
        assert_eq!(flags.text(), shown, "{given}");
    }
    let refused = EventFlags::parse(b"Eq").unwrap_err().to_string();
    assert!(
        refused.contains("Invalid event class character"),
        "{refused}"
    );
    assert!(!EventFlags::parse(b"gx").unwrap().publishes());
    assert!(!EventFlags::parse(b"KE$").unwrap().publishes());
    assert!(EventFlags::parse(b"Ex").unwrap().publishes());
}

#[test]
fn deletes_and_expiries_publish_on_the_channels_their_flags_name() {
    let flags = |text: &str| EventFlags::parse(text.as_bytes()).unwrap();
    let pairs = |flags: EventFlags, kind| -> Vec<(String, String)> {
        flags
            .messages(b"user:1", kind)
            .into_iter()
            .map(|(channel, payload)| {
                (
                    String::from_utf8_lossy(&channel).into_owned(),
                    String::from_utf8_lossy(&payload).into_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        pairs(flags("KEA"), ChangeKind::Expired),
        vec![
            ("__keyspace@0__:user:1".into(), "expired".into()),
            ("__keyevent@0__:expired".into(), "user:1".into())
        ]
    );
    assert_eq!(
        pairs(flags("Eg"), ChangeKind::Deleted),
        vec![("__keyevent@0__:del".into(), "user:1".into())]
    );
    assert!(pairs(flags("Eg"), ChangeKind::Expired).is_empty());
    assert!(pairs(flags("KEA"), ChangeKind::Written).is_empty());
    assert!(pairs(flags(""), ChangeKind::Deleted).is_empty());
}

#[test]
fn subscriptions_deliver_messages_and_pattern_messages_within_bounds() {
    let mut subscriptions = Subscriptions::default();
    subscriptions.subscribe(&Bytes::from("__keyevent@0__:expired"));
    subscriptions.subscribe(&Bytes::from("__keyevent@0__:expired"));
    subscriptions
        .psubscribe(&Bytes::from("__keyspace@0__:*"))
        .unwrap();
    assert_eq!(subscriptions.count(), 2);
    assert!(subscriptions.wants_notifications());
    let mut out = Vec::new();
    let payload = Reply::bulk("k");
    subscriptions.deliver(&Bytes::from("__keyevent@0__:expired"), &payload, &mut out);
    subscriptions.deliver(
        &Bytes::from("__keyspace@0__:k"),
        &Reply::bulk("del"),
        &mut out,
    );
    subscriptions.deliver(&Bytes::from("__keyevent@0__:del"), &payload, &mut out);
    let encoded: Vec<_> = out
        .iter()
        .map(|reply| reply.to_bytes(Protocol::Resp3))
        .collect();
    assert_eq!(
        encoded,
        vec![
            Bytes::from_static(b">3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:expired\r\n$1\r\nk\r\n"),
            Bytes::from_static(
                b">4\r\n$8\r\npmessage\r\n$16\r\n__keyspace@0__:*\r\n$16\r\n__keyspace@0__:k\r\n$3\r\ndel\r\n"
            ),
        ]
    );
    assert!(subscriptions.unsubscribe(b"__keyevent@0__:expired"));
    assert!(!subscriptions.unsubscribe(b"__keyevent@0__:expired"));
    assert!(subscriptions.punsubscribe(b"__keyspace@0__:*"));
    assert!(subscriptions.is_empty());
    subscriptions.subscribe(&Bytes::from(super::pubsub::INVALIDATE_CHANNEL));
    assert!(!subscriptions.wants_notifications());
    let long = Bytes::from(vec![b'c'; limits::RESP_CHANNEL_BYTES_MAX + 1]);
    assert_eq!(
        subscriptions.check(&[long], false),
        Err(SubscribeError::TooLong)
    );
    let many: Vec<Bytes> = (0..limits::RESP_SUBSCRIPTIONS_MAX)
        .map(|index| Bytes::from(format!("c{index}")))
        .collect();
    assert_eq!(
        subscriptions.check(&many, false),
        Err(SubscribeError::TooMany)
    );
    assert_eq!(subscriptions.check(&many[1..], false), Ok(()));
}
