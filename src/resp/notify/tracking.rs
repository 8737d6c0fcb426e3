//! `CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT]
//! [NOLOOP]`: its options, the checks Redis makes of them (with Redis's errors, in
//! Redis's order), `CLIENT CACHING`'s checks, and `CLIENT TRACKINGINFO`'s answer.

use crate::limits;
use crate::object::{Class, ObjectKey};
use crate::resp::codec::parse_integer;
use crate::resp::reply::Reply;
use bytes::Bytes;

/// A connection's tracking while it is on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracking {
    /// The connection to send invalidations to instead of this one.
    pub redirect: Option<u64>,
    pub bcast: bool,
    /// `BCAST` prefixes (RESP keys); none with `BCAST` means every key.
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    /// Accepted; cartwheel cannot tell a connection's own writes from others' at the
    /// replicas, so their invalidations are sent anyway (a superset).
    pub noloop: bool,
}

/// What a `CLIENT TRACKING` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Off,
    On(Tracking),
}

fn error(text: &str) -> Reply {
    Reply::err(text)
}

/// Parses `CLIENT TRACKING`'s arguments (after `TRACKING`); `exists` says whether a
/// connection id is open (for `REDIRECT`).
pub fn parse(args: &[Bytes], exists: impl Fn(u64) -> bool) -> Result<Request, Reply> {
    let Some((mode, options)) = args.split_first() else {
        return Err(Reply::wrong_arity("client|tracking"));
    };
    let mut tracking = Tracking::default();
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let is = |name: &str| option.eq_ignore_ascii_case(name.as_bytes());
        if is("REDIRECT") && rest.len() > 0 {
            let id = rest.next().map(|id| parse_integer(id));
            if tracking.redirect.is_some() {
                return Err(error("A client can only redirect to a single other client"));
            }
            let Some(Some(id)) = id else {
                return Err(error("value is not an integer or out of range"));
            };
            match u64::try_from(id).ok().filter(|id| exists(*id)) {
                Some(id) => tracking.redirect = Some(id),
                None => return Err(error("The client ID you want redirect to does not exist")),
            }
        } else if is("BCAST") {
            tracking.bcast = true;
        } else if is("OPTIN") {
            tracking.optin = true;
        } else if is("OPTOUT") {
            tracking.optout = true;
        } else if is("NOLOOP") {
            tracking.noloop = true;
        } else if is("PREFIX") && rest.len() > 0 {
            if let Some(prefix) = rest.next() {
                tracking.prefixes.push(prefix.clone());
            }
        } else {
            return Err(error("syntax error"));
        }
    }
    if mode.eq_ignore_ascii_case(b"OFF") {
        return Ok(Request::Off);
    }
    if !mode.eq_ignore_ascii_case(b"ON") {
        return Err(error("syntax error"));
    }
    Ok(Request::On(tracking))
}

/// Redis's checks of `CLIENT TRACKING ON` against itself and the tracking on now, and
/// the tracking that results (prefixes add to those held, as in Redis).
pub fn turn_on(current: Option<&Tracking>, mut asked: Tracking) -> Result<Tracking, Reply> {
    if !asked.bcast && !asked.prefixes.is_empty() {
        return Err(error("PREFIX option requires BCAST mode to be enabled"));
    }
    if current.is_some_and(|current| current.bcast != asked.bcast) {
        return Err(error(
            "You can't switch BCAST mode on/off before disabling tracking for this client, \
             and then re-enabling it with a different mode.",
        ));
    }
    if asked.bcast && (asked.optin || asked.optout) {
        return Err(error("OPTIN and OPTOUT are not compatible with BCAST"));
    }
    if asked.optin && asked.optout {
        return Err(error("You can't specify both OPTIN mode and OPTOUT mode"));
    }
    if current
        .is_some_and(|current| (asked.optin && current.optout) || (asked.optout && current.optin))
    {
        return Err(error(
            "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, \
             and then re-enabling it with a different mode.",
        ));
    }
    let held = current
        .map(|current| current.prefixes.clone())
        .unwrap_or_default();
    let mut prefixes = held.clone();
    for prefix in &asked.prefixes {
        if prefixes.contains(prefix) {
            continue;
        }
        if let Some(other) = prefixes
            .iter()
            .find(|other| other.starts_with(prefix) || prefix.starts_with(other))
        {
            return Err(error(&format!(
                "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single \
                 client must not overlap.",
                String::from_utf8_lossy(prefix),
                String::from_utf8_lossy(other)
            )));
        }
        prefixes.push(prefix.clone());
    }
    if prefixes.len() > limits::TRACKING_PREFIXES_MAX {
        return Err(error(&format!(
            "a connection may track {} prefixes at most",
            limits::TRACKING_PREFIXES_MAX
        )));
    }
    if prefixes
        .iter()
        .any(|prefix| prefix.len() > limits::KEY_BYTES_MAX)
    {
        return Err(error(&format!(
            "a prefix is longer than {} bytes",
            limits::KEY_BYTES_MAX
        )));
    }
    asked.prefixes = prefixes;
    Ok(asked)
}

/// The hub's prefixes (storage bytes: class tag, then prefix) of a `BCAST` tracking:
/// every RESP key when it names none.
pub fn storage_prefixes(tracking: &Tracking) -> Vec<Vec<u8>> {
    if !tracking.bcast {
        return Vec::new();
    }
    if tracking.prefixes.is_empty() {
        return vec![vec![Class::Resp.tag()]];
    }
    tracking
        .prefixes
        .iter()
        .map(|prefix| ObjectKey::new(Class::Resp, prefix).storage_bytes())
        .collect()
}

/// `CLIENT CACHING YES|NO`: the flag for the next command, or Redis's error.
pub fn caching(tracking: Option<&Tracking>, args: &[Bytes]) -> Result<bool, Reply> {
    let [answer] = args else {
        return Err(Reply::wrong_arity("client|caching"));
    };
    let Some(tracking) = tracking.filter(|tracking| tracking.optin || tracking.optout) else {
        return Err(error(
            "CLIENT CACHING can be called only when the client is in tracking mode with \
             OPTIN or OPTOUT mode enabled",
        ));
    };
    if answer.eq_ignore_ascii_case(b"YES") {
        match tracking.optin {
            true => Ok(true),
            false => Err(error(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            )),
        }
    } else if answer.eq_ignore_ascii_case(b"NO") {
        match tracking.optout {
            true => Ok(false),
            false => Err(error(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            )),
        }
    } else {
        Err(error("syntax error"))
    }
}

/// Whether a read now registers its keys: always in the default mode, only after
/// `CLIENT CACHING YES` with `OPTIN`, unless after `CLIENT CACHING NO` with `OPTOUT`.
pub fn reads_tracked(tracking: &Tracking, caching: Option<bool>) -> bool {
    if tracking.bcast {
        return false;
    }
    if tracking.optin {
        return caching == Some(true);
    }
    if tracking.optout {
        return caching != Some(false);
    }
    true
}

/// `CLIENT GETREDIR`: -1 with tracking off, 0 without a redirect, else its id.
pub fn redirect_id(tracking: Option<&Tracking>) -> i64 {
    match tracking {
        None => -1,
        Some(tracking) => tracking
            .redirect
            .map_or(0, |id| i64::try_from(id).unwrap_or(i64::MAX)),
    }
}

/// `CLIENT TRACKINGINFO`: flags, redirect, prefixes, as Redis answers.
pub fn info(tracking: Option<&Tracking>, caching: Option<bool>, broken_redirect: bool) -> Reply {
    let mut flags = Vec::new();
    let prefixes = match tracking {
        None => {
            flags.push("off");
            Vec::new()
        }
        Some(tracking) => {
            flags.push("on");
            for (on, name) in [
                (tracking.bcast, "bcast"),
                (tracking.optin, "optin"),
                (tracking.optout, "optout"),
                (tracking.optin && caching == Some(true), "caching-yes"),
                (tracking.optout && caching == Some(false), "caching-no"),
                (tracking.noloop, "noloop"),
                (broken_redirect, "broken_redirect"),
            ] {
                if on {
                    flags.push(name);
                }
            }
            tracking.prefixes.clone()
        }
    };
    Reply::Map(vec![
        (
            Reply::bulk("flags"),
            Reply::Set(flags.into_iter().map(Reply::bulk).collect()),
        ),
        (
            Reply::bulk("redirect"),
            Reply::Integer(redirect_id(tracking)),
        ),
        (
            Reply::bulk("prefixes"),
            Reply::Array(prefixes.into_iter().map(Reply::Bulk).collect()),
        ),
    ])
}
