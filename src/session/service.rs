//! Logins, changes and logout, over the coordinator; validation is in `validate`,
//! rotation and the answer to a reused token in `rotation`.

use super::guard::{FailureLimiter, NegativeCache};
use super::identities::IdentityCache;
use super::near_cache::NearCache;
use super::regions::{Fence, NoOtherRegion, RegionHealth};
use super::tokens::{from_hex, hex, Issued, TokenKeys};
use crate::config::{ClassPolicy, SessionSettings};
use crate::coordinator::quorum::Level;
use crate::coordinator::{Coordinator, CoordinatorError, WallClock};
use crate::crdt::{
    Doc, DocOp, OpId, TokenDoc, TokenIdentity, TokenLineage, TokenOp, TokenRecord, UserAuth,
    UserAuthOp, UserChange, UserDoc, UserOp,
};
use crate::limits;
use crate::object::{encode_object, Class, Object, ObjectKey};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Why a token was not accepted; each has its own error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    Malformed,
    Unknown,
    Expired,
    Revoked,
    Reused,
}

/// How a validation ended, as counted (`SessionStats::validation_outcomes`).
pub const VALIDATION_OUTCOMES: [&str; 8] = [
    "accepted",
    "missing",
    "malformed",
    "unknown",
    "expired",
    "revoked",
    "reused",
    "error",
];

/// The slot of `VALIDATION_OUTCOMES` a validation's result counts in.
pub fn validation_outcome<T>(result: &Result<T, SessionError>) -> usize {
    match result {
        Ok(_) => 0,
        Err(SessionError::Token(rejection)) => match rejection {
            Rejection::Missing => 1,
            Rejection::Malformed => 2,
            Rejection::Unknown => 3,
            Rejection::Expired => 4,
            Rejection::Revoked => 5,
            Rejection::Reused => 6,
        },
        Err(_) => 7,
    }
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::Missing => "token_missing",
            Rejection::Malformed => "token_malformed",
            Rejection::Unknown => "token_unknown",
            Rejection::Expired => "token_expired",
            Rejection::Revoked => "token_revoked",
            Rejection::Reused => "token_reused",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("token rejected: {}", .0.code())]
    Token(Rejection),
    /// A token rejected for a client address that was over its limit of failed
    /// validations when the request came (the HTTP edge answers it after a delay).
    #[error("token rejected: {}", .0.code())]
    Limited(Rejection),
    #[error("the token was already rotated; use the token its rotation returned")]
    RotationConflict,
    #[error("missing X-CSRF-Token header")]
    CsrfMissing,
    #[error("X-CSRF-Token does not belong to this session")]
    CsrfInvalid,
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    #[error("the stored record is not a session record")]
    Corrupt,
    /// This node may have missed revocations (cut off from a region, or catching up
    /// after it) and could not read a majority of the regions: it does not guess.
    #[error("this node cannot check revocations now ({mode}): {source}")]
    Fenced {
        mode: &'static str,
        source: CoordinatorError,
    },
    /// A revocation could not be made safe in time: a region stopped answering and was
    /// not held down for long enough, or too few regions answer. It may have reached
    /// some replicas; revoking again is harmless.
    #[error("the revocation is not confirmed: {why}")]
    RevocationUnconfirmed { why: String },
}

/// Counters shown in `/v1/status`.
#[derive(Debug, Default)]
pub struct SessionStats {
    /// The near-cache's counters (all 0 while it is off).
    pub near_cache: Arc<super::near_cache::NearCacheStats>,
    pub logins: AtomicU64,
    pub validations: AtomicU64,
    pub rejections: AtomicU64,
    /// Replica reads made by validations (local level: the token, its parent, the
    /// user's auth record); none for a missing, malformed or made-up token.
    pub validation_reads: AtomicU64,
    /// Cross-region reads made by validations: only for a genuine token missing locally
    /// and not in the negative cache.
    pub remote_validation_reads: AtomicU64,
    /// Tokens refused by arithmetic (well formed, but not issued by this cluster).
    pub forged: AtomicU64,
    /// Genuine tokens answered `token_unknown` from the negative cache.
    pub negative_cache_hits: AtomicU64,
    /// Validations whose checks were read with the token, in one round, because this
    /// node knew the token's identity from an earlier validation (`identities`).
    pub one_round_validations: AtomicU64,
    /// Genuine tokens missing locally answered `token_unknown` without the cross-region
    /// read, because their client address was over its limit of failed validations.
    pub rate_limited: AtomicU64,
    /// Rejections answered only after `OVER_LIMIT_REJECTION_DELAY`, their client address
    /// being over its limit of failed validations.
    pub delayed_rejections: AtomicU64,
    pub reuse_detected: AtomicU64,
    /// Token families revoked after a reuse.
    pub families_revoked: AtomicU64,
    /// Rotations refused because the token was already rotated.
    pub rotation_conflicts: AtomicU64,
    /// Rotations that answered a successor.
    pub rotations: AtomicU64,
    /// Validations by how they ended, in `VALIDATION_OUTCOMES` order.
    pub validation_outcomes: [AtomicU64; 8],
    /// Logouts (one device, or every device of a user) acknowledged.
    pub logouts: AtomicU64,
    pub refreshes: AtomicU64,
    pub refreshes_skipped: AtomicU64,
    pub swept: AtomicU64,
    /// Expiry index entries the sweeper read (each due by its horizon).
    pub sweep_entries_read: AtomicU64,
    /// Stale expiry index entries the sweeper dropped (record gone or refreshed).
    pub sweep_entries_stale: AtomicU64,
    /// Index entries the one-time backfill added (records written before the index).
    pub expiry_backfilled: AtomicU64,
    /// 1 once the expiry index covers every record (backfill done), else 0.
    pub expiry_backfill_done: AtomicU64,
    /// Validations made while fenced (cut off from some region): read from a majority
    /// of the regions.
    pub fenced_validations: AtomicU64,
    /// Validations made while catching up (back in touch, anti-entropy not done): read
    /// from a majority of the regions.
    pub catching_up_validations: AtomicU64,
    /// Validations refused with `auth_fenced`: fenced or catching up, and a majority of
    /// the regions did not answer.
    pub validations_failed_closed: AtomicU64,
    /// Revocations acknowledged without a region held down for the fence margin.
    pub revocations_without_a_region: AtomicU64,
    /// Revocations that waited for a region going down to be held down long enough.
    pub revocations_waited: AtomicU64,
    /// Revocations that failed with `revocation_unconfirmed`.
    pub revocations_unconfirmed: AtomicU64,
    /// The fence's mode when last asked (`regions::mode_name`).
    pub guard_mode: Arc<AtomicU64>,
}

/// A token that was let in, with its merged record.
#[derive(Clone)]
pub struct Authenticated {
    /// The token's lookup hash (as listed among the user's devices; not the token).
    pub hash: [u8; 32],
    pub record: TokenRecord,
    pub identity: TokenIdentity,
    /// The first token of its rotation chain.
    pub family: [u8; 32],
}

impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("user", &self.identity.user)
            .field("device", &self.identity.device)
            .finish_non_exhaustive()
    }
}

/// What a login or rotation hands to the client.
#[derive(Clone)]
pub struct Login {
    pub token: String,
    pub csrf_token: String,
    pub expires_at_ms: u64,
    pub idle_expires_at_ms: u64,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("idle_expires_at_ms", &self.idle_expires_at_ms)
            .finish_non_exhaustive()
    }
}

pub struct SessionService {
    pub(super) coordinator: Arc<Coordinator>,
    pub(super) settings: SessionSettings,
    pub(super) keys: TokenKeys,
    pub(super) clock: Arc<dyn WallClock>,
    pub(super) refreshes: Arc<Semaphore>,
    pub(super) negative: NegativeCache,
    /// Identities of tokens found valid here: their checks are read with the token.
    pub(super) identities: IdentityCache,
    pub(super) limiter: FailureLimiter,
    /// The origin of the monotonic milliseconds the limiter and the negative cache
    /// count in (the wall clock may be moved).
    pub(super) started: std::time::Instant,
    /// Whether validations may be answered from this region (`fence`).
    pub(super) fence: Fence,
    pub stats: Arc<SessionStats>,
    /// Session documents read here, kept until they change (`near_cache`); `None`:
    /// off (`--near-cache-bytes 0`, the default).
    pub(super) near_cache: Option<Arc<NearCache>>,
}

impl std::fmt::Debug for SessionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

pub(super) fn auth_key(hash: &[u8; 32]) -> ObjectKey {
    ObjectKey::new(Class::Auth, hash)
}

/// The key of a user's auth record (not-before, revoked families, audit): a hash of the
/// user id, so it has the length of a token's key and names no token.
pub(super) fn user_auth_key(user: &str) -> ObjectKey {
    let key = blake3::derive_key("cartwheel 2026 user auth record v1", user.as_bytes());
    ObjectKey::new(Class::Auth, &key)
}

pub(super) fn user_key(user: &str) -> ObjectKey {
    ObjectKey::new(Class::User, user.as_bytes())
}

pub(super) fn ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl SessionService {
    pub fn new(
        coordinator: Arc<Coordinator>,
        settings: SessionSettings,
        keys: TokenKeys,
        clock: Arc<dyn WallClock>,
    ) -> Self {
        let stats = Arc::new(SessionStats::default());
        let fence = Fence::new(
            Arc::new(NoOtherRegion::default()),
            stats.guard_mode.clone(),
            false,
        );
        SessionService {
            coordinator,
            keys,
            clock,
            refreshes: Arc::new(Semaphore::new(limits::REFRESHES_IN_FLIGHT_MAX)),
            negative: NegativeCache::default(),
            identities: IdentityCache::default(),
            limiter: FailureLimiter::new(
                limits::FAILURE_LIMITER_ADDRESSES_MAX,
                settings.failures_burst,
                settings.failures_per_s,
            ),
            started: std::time::Instant::now(),
            fence,
            stats,
            settings,
            near_cache: None,
        }
    }

    /// The service with a near-cache of session documents (see `near_cache`).
    pub fn with_near_cache(mut self, cache: Arc<NearCache>) -> Self {
        self.near_cache = Some(cache);
        self
    }

    /// The near-cache, when on.
    pub fn near_cache(&self) -> Option<&Arc<NearCache>> {
        self.near_cache.as_ref()
    }

    /// The service with the node's view of the other regions: revocations excuse
    /// regions by it and, when they may (`majority_quorum`), validations are fenced by
    /// it (without it, a service knows no other region and validates locally).
    pub fn with_region_health(mut self, health: Arc<dyn RegionHealth>) -> Self {
        let needed = self.settings.auth.write == Level::MajorityQuorum;
        self.fence = Fence::new(health, self.stats.guard_mode.clone(), needed);
        self
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Moves the auth fence on every `AUTH_CATCH_UP_CHECK_MS`, validations or none, so
    /// a node that starts catching up asks anti-entropy for it at once and `/v1/status`
    /// shows its mode now, not at its last validation.
    pub async fn watch_guard(self: Arc<Self>, mut stopped: tokio::sync::watch::Receiver<bool>) {
        loop {
            self.fence.mode();
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(limits::AUTH_CATCH_UP_CHECK_MS)) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    }

    pub(super) fn monotonic_ms(&self) -> u64 {
        ms(self.started.elapsed())
    }

    pub(super) async fn apply(
        &self,
        key: &ObjectKey,
        op: DocOp,
        class: &ClassPolicy,
    ) -> Result<Object, SessionError> {
        Ok(self
            .coordinator
            .apply(key, op, class.write, class.policy)
            .await?)
    }

    /// Writes a new token's record (or its refresh) at the creation level.
    pub(super) async fn create_write(
        &self,
        key: &ObjectKey,
        op: DocOp,
    ) -> Result<Object, SessionError> {
        let auth = &self.settings.auth;
        Ok(self
            .coordinator
            .apply(key, op, self.settings.auth_create, auth.policy)
            .await?)
    }

    pub(super) async fn user_op(
        &self,
        user: &str,
        deadline_ms: u64,
        change: UserChange,
    ) -> Result<UserDoc, SessionError> {
        self.user_op_once(user, deadline_ms, change, None).await
    }

    /// `user_op` for a client's change that carries its operation id: a retry of an id
    /// the document has applied changes nothing.
    pub(super) async fn user_op_once(
        &self,
        user: &str,
        deadline_ms: u64,
        change: UserChange,
        op_id: Option<OpId>,
    ) -> Result<UserDoc, SessionError> {
        let op = DocOp::User(UserOp {
            deadline_ms,
            change,
            limits: self.settings.limits,
            op_id,
        });
        let key = user_key(user);
        let applied = self.apply(&key, op, &self.settings.user).await;
        // Whether it was carried out or not, a read through this node from now on reads
        // (and no read begun before keeps what it found).
        if let Some(cache) = &self.near_cache {
            cache.invalidate(&key.storage_bytes());
        }
        match applied? {
            Object::Doc(Doc::User(doc)) => Ok(doc),
            _ => Err(SessionError::Corrupt),
        }
    }

    /// Writes the record of the new `token` for `user` on `device`, created at `now`,
    /// whose absolute deadline is `absolute_ms` (with its parent, for a rotation) and registers it
    /// among the user's devices.
    pub(super) async fn create(
        &self,
        user: &str,
        device: &str,
        (now, absolute_ms): (u64, u64),
        lineage: Option<TokenLineage>,
        (token, csrf): (Issued, Issued),
    ) -> Result<Login, SessionError> {
        let idle_deadline_ms = now.saturating_add(ms(self.settings.idle)).min(absolute_ms);
        let record = TokenRecord {
            identity: Some(TokenIdentity {
                user: user.to_string(),
                device: device.to_string(),
                csrf: csrf.hash,
                created_ms: now,
                absolute_ms,
                lineage: lineage.map(Box::new),
            }),
            last_seen_ms: now,
            idle_deadline_ms,
            revoked_ms: None,
            rotated: None,
        };
        // A validation of this token on this node must not find it in the negative
        // cache (it cannot be there: its hash is new; this keeps it so).
        self.negative.forget(&token.hash);
        let op = DocOp::Token(TokenOp::Create(record));
        let key = auth_key(&token.hash);
        let change = UserChange::DeviceAdd {
            token: hex(&token.hash),
        };
        // Both at once: a device entry whose record failed is harmless (it names no
        // valid token), and the login waits for one round of each class, not two.
        let (created, added) = tokio::join!(
            self.create_write(&key, op),
            self.user_op(user, idle_deadline_ms, change)
        );
        created?;
        added?;
        Ok(Login {
            token: token.text,
            csrf_token: csrf.text,
            expires_at_ms: absolute_ms,
            idle_expires_at_ms: idle_deadline_ms,
        })
    }

    /// A new session for `user` on `device`.
    pub async fn login(&self, user: &str, device: &str) -> Result<Login, SessionError> {
        self.stats.logins.fetch_add(1, Ordering::Relaxed);
        // One reading of the clock: the token's creation time is its absolute deadline
        // less the lifetime, exactly.
        let now = self.now_ms();
        let absolute_ms = now.saturating_add(ms(self.settings.lifetime));
        let issued = (self.keys.issue_token(), self.keys.issue_csrf());
        self.create(user, device, (now, absolute_ms), None, issued)
            .await
    }

    /// Checks the CSRF token a mutating request carries.
    pub fn check_csrf(
        &self,
        auth: &Authenticated,
        presented: Option<&str>,
    ) -> Result<(), SessionError> {
        let presented = presented.ok_or(SessionError::CsrfMissing)?;
        if self.keys.csrf_matches(presented, &auth.identity.csrf) {
            Ok(())
        } else {
            Err(SessionError::CsrfInvalid)
        }
    }

    /// The user's document as served: empty if there is none or it has expired.
    pub async fn document(&self, auth: &Authenticated) -> Result<UserDoc, SessionError> {
        self.document_of(&auth.identity.user).await
    }

    /// The live session document of `user`; empty if there is none. With the
    /// near-cache on, a live document kept there is served without a read.
    pub(super) async fn document_of(&self, user: &str) -> Result<UserDoc, SessionError> {
        let key = user_key(user);
        let cached = self.near_cache.as_ref().map(|cache| {
            let stored = key.storage_bytes();
            let hit = cache.get(&stored).filter(|doc| doc.is_live(self.now_ms()));
            (cache, stored, hit)
        });
        let ticket = match cached {
            Some((_, _, Some(doc))) => return Ok(doc),
            Some((cache, stored, None)) => Some((cache, cache.begin(&stored), stored)),
            None => None,
        };
        let class = &self.settings.user;
        let object = self
            .coordinator
            .get_with(&key, class.read, class.policy)
            .await?;
        let now = self.now_ms();
        if let (Some((cache, ticket, stored)), Some(object @ Object::Doc(Doc::User(doc)))) =
            (ticket, &object)
        {
            if doc.is_live(now) {
                // One encoding gives both what the cache counts and the digest it
                // tells the feed.
                let encoded = encode_object(object);
                let kept = (doc.clone(), object.digest_stored(&encoded));
                cache.keep(&stored, ticket, kept, encoded.len());
            }
        }
        match object {
            Some(Object::Doc(Doc::User(doc))) if doc.is_live(now) => Ok(doc),
            None | Some(Object::Doc(Doc::User(_))) => Ok(UserDoc::default()),
            Some(_) => Err(SessionError::Corrupt),
        }
    }

    /// The user's auth record (not-before, revoked families, audit entries) at the
    /// `auth` read level; empty if there is none.
    pub async fn user_auth(&self, user: &str) -> Result<UserAuth, SessionError> {
        self.user_auth_at(user, self.settings.auth.read).await
    }

    /// The user's auth record read at `level`.
    pub(super) async fn user_auth_at(
        &self,
        user: &str,
        level: Level,
    ) -> Result<UserAuth, SessionError> {
        let auth = &self.settings.auth;
        let object = self
            .coordinator
            .get_with(&user_auth_key(user), level, auth.policy)
            .await?;
        match object {
            None => Ok(UserAuth::default()),
            Some(Object::Doc(Doc::UserAuth(record))) => Ok(record),
            Some(_) => Err(SessionError::Corrupt),
        }
    }

    /// Applies a change to the user's document and returns it as stored; a change whose
    /// `op_id` the document has applied already is not applied again.
    pub async fn change(
        &self,
        auth: &Authenticated,
        change: UserChange,
        op_id: Option<OpId>,
    ) -> Result<UserDoc, SessionError> {
        let deadline_ms = auth.record.deadline_ms();
        self.user_op_once(&auth.identity.user, deadline_ms, change, op_id)
            .await
    }

    pub(super) async fn revoke(&self, user: &str, hash: &[u8; 32]) -> Result<(), SessionError> {
        let op = DocOp::Token(TokenOp::Revoke {
            at_ms: self.now_ms(),
        });
        let key = auth_key(hash);
        let change = UserChange::DeviceRemove { token: hex(hash) };
        let (revoked, removed) =
            tokio::join!(self.revoke_write(&key, op), self.user_op(user, 0, change));
        revoked?;
        removed?;
        Ok(())
    }

    /// Logs this device out.
    pub async fn logout(&self, auth: &Authenticated) -> Result<(), SessionError> {
        self.revoke(&auth.identity.user, &auth.hash).await?;
        self.stats.logouts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Logs every device of the user out; returns how many listed tokens were revoked.
    /// The user's not-before time, written at the `auth` write level and read by every
    /// validation, refuses every token created until now, also one created a moment
    /// ago in another region that the device list does not show yet.
    pub async fn logout_all(&self, auth: &Authenticated) -> Result<usize, SessionError> {
        let user = &auth.identity.user;
        let not_before = DocOp::UserAuth(UserAuthOp {
            not_before_ms: Some(self.now_ms()),
            ..UserAuthOp::default()
        });
        let key = user_auth_key(user);
        let (written, doc) = tokio::join!(self.revoke_write(&key, not_before), self.document(auth));
        written?;
        let mut hashes: Vec<[u8; 32]> = doc?
            .session
            .devices
            .elements()
            .filter_map(|text| from_hex(text))
            .collect();
        if !hashes.contains(&auth.hash) {
            hashes.push(auth.hash);
        }
        let revokes = hashes.iter().map(|hash| self.revoke(user, hash));
        for result in futures::future::join_all(revokes).await {
            result?;
        }
        self.stats.logouts.fetch_add(1, Ordering::Relaxed);
        Ok(hashes.len())
    }

    /// The token record a read returned, if it is one.
    pub(super) fn token_of(object: Option<Object>) -> Result<Option<TokenDoc>, SessionError> {
        match object {
            None => Ok(None),
            Some(Object::Doc(Doc::Token(token))) => Ok(Some(token)),
            Some(_) => Err(SessionError::Corrupt),
        }
    }
}
