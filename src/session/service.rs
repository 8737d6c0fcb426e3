//! Logins, validation, changes, rotation and logout, over the coordinator.

use super::tokens::{from_hex, hex, TokenFormat, TokenKeys};
use crate::config::{ClassPolicy, SessionSettings};
use crate::coordinator::quorum::Level;
use crate::coordinator::{Coordinator, CoordinatorError, WallClock};
use crate::crdt::{
    verdict, Doc, DocOp, Rotation, TokenDoc, TokenIdentity, TokenOp, TokenRecord, UserChange,
    UserDoc, UserOp, Verdict,
};
use crate::limits;
use crate::object::{Class, Object, ObjectKey};
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
    #[error("missing X-CSRF-Token header")]
    CsrfMissing,
    #[error("X-CSRF-Token does not belong to this session")]
    CsrfInvalid,
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    #[error("the stored record is not a session record")]
    Corrupt,
}

/// Counters shown in `/v1/status`.
#[derive(Debug, Default)]
pub struct SessionStats {
    pub logins: AtomicU64,
    pub validations: AtomicU64,
    pub rejections: AtomicU64,
    /// Replica reads made by validations (the same count for every kind of rejection).
    pub validation_reads: AtomicU64,
    pub reuse_detected: AtomicU64,
    pub refreshes: AtomicU64,
    pub refreshes_skipped: AtomicU64,
    pub swept: AtomicU64,
}

/// A token that was let in, with its merged record.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub hash: [u8; 32],
    pub record: TokenRecord,
    pub identity: TokenIdentity,
}

/// What a login or rotation hands to the client.
#[derive(Clone, Debug)]
pub struct Login {
    pub token: String,
    pub csrf_token: String,
    pub expires_at_ms: u64,
    pub idle_expires_at_ms: u64,
}

pub struct SessionService {
    coordinator: Arc<Coordinator>,
    settings: SessionSettings,
    keys: TokenKeys,
    clock: Arc<dyn WallClock>,
    refreshes: Arc<Semaphore>,
    pub stats: Arc<SessionStats>,
}

fn auth_key(hash: &[u8; 32]) -> ObjectKey {
    ObjectKey::new(Class::Auth, hash)
}

fn user_key(user: &str) -> ObjectKey {
    ObjectKey::new(Class::User, user.as_bytes())
}

fn ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl SessionService {
    pub fn new(
        coordinator: Arc<Coordinator>,
        settings: SessionSettings,
        keys: TokenKeys,
        clock: Arc<dyn WallClock>,
    ) -> Self {
        SessionService {
            coordinator,
            settings,
            keys,
            clock,
            refreshes: Arc::new(Semaphore::new(limits::REFRESHES_IN_FLIGHT_MAX)),
            stats: Arc::default(),
        }
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    async fn apply(
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

    async fn user_op(
        &self,
        user: &str,
        deadline_ms: u64,
        change: UserChange,
    ) -> Result<UserDoc, SessionError> {
        let op = DocOp::User(UserOp {
            deadline_ms,
            change,
            limits: self.settings.limits,
        });
        match self.apply(&user_key(user), op, &self.settings.user).await? {
            Object::Doc(Doc::User(doc)) => Ok(doc),
            _ => Err(SessionError::Corrupt),
        }
    }

    /// Writes a new token record for `user` on `device` whose absolute deadline is
    /// `absolute_ms` and registers it among the user's devices.
    async fn issue(
        &self,
        user: &str,
        device: &str,
        absolute_ms: u64,
    ) -> Result<(Login, [u8; 32]), SessionError> {
        let now = self.now_ms();
        let token = self.keys.issue_token();
        let csrf = self.keys.issue_csrf();
        let idle_deadline_ms = now.saturating_add(ms(self.settings.idle)).min(absolute_ms);
        let record = TokenRecord {
            identity: Some(TokenIdentity {
                user: user.to_string(),
                device: device.to_string(),
                csrf: csrf.hash,
                created_ms: now,
                absolute_ms,
            }),
            last_seen_ms: now,
            idle_deadline_ms,
            revoked_ms: None,
            rotated: None,
        };
        let op = DocOp::Token(TokenOp::Create(record));
        let key = auth_key(&token.hash);
        let change = UserChange::DeviceAdd {
            token: hex(&token.hash),
        };
        // Both at once: a device entry whose record failed is harmless (it names no
        // valid token), and the login waits for one round of each class, not two.
        let (created, added) = tokio::join!(
            self.apply(&key, op, &self.settings.auth),
            self.user_op(user, idle_deadline_ms, change)
        );
        created?;
        added?;
        let login = Login {
            token: token.text,
            csrf_token: csrf.text,
            expires_at_ms: absolute_ms,
            idle_expires_at_ms: idle_deadline_ms,
        };
        Ok((login, token.hash))
    }

    /// A new session for `user` on `device`.
    pub async fn login(&self, user: &str, device: &str) -> Result<Login, SessionError> {
        self.stats.logins.fetch_add(1, Ordering::Relaxed);
        let absolute_ms = self.now_ms().saturating_add(ms(self.settings.lifetime));
        Ok(self.issue(user, device, absolute_ms).await?.0)
    }

    async fn read_token(
        &self,
        hash: &[u8; 32],
        level: Level,
    ) -> Result<Option<TokenDoc>, SessionError> {
        self.stats.validation_reads.fetch_add(1, Ordering::Relaxed);
        let object = self
            .coordinator
            .get_with(&auth_key(hash), level, self.settings.auth.policy)
            .await?;
        match object {
            None => Ok(None),
            Some(Object::Doc(Doc::Token(token))) => Ok(Some(token)),
            Some(_) => Err(SessionError::Corrupt),
        }
    }

    /// Lets a presented token in, or says why not. A token not valid at the local read
    /// level is looked up in every region before the answer is no, so a token created
    /// a moment ago elsewhere is found; every rejection, a missing or malformed token
    /// included, costs the same two reads, so rejections do not differ in time by kind.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
    ) -> Result<Authenticated, SessionError> {
        self.stats.validations.fetch_add(1, Ordering::Relaxed);
        let (hash, format) = match self.keys.token_hash(presented) {
            Ok(hash) => (hash, None),
            Err((hash, why)) => (hash, Some(why)),
        };
        let grace = ms(self.settings.rotation_grace);
        let mut doc = self.read_token(&hash, self.settings.auth.read).await?;
        let mut found = verdict(doc.as_ref(), self.now_ms(), grace);
        if found != Verdict::Valid || format.is_some() {
            // Each region: a failure (a region unreachable) keeps the local answer.
            if let Ok(Some(remote)) = self.read_token(&hash, Level::EachQuorum).await {
                match doc.as_mut() {
                    Some(local) => local.merge(&remote),
                    None => doc = Some(remote),
                }
                found = verdict(doc.as_ref(), self.now_ms(), grace);
            }
        }
        let rejection = match (format, found) {
            (Some(TokenFormat::Missing), _) => Some(Rejection::Missing),
            (Some(TokenFormat::Malformed), _) => Some(Rejection::Malformed),
            (None, Verdict::Valid) => None,
            (None, Verdict::Unknown) => Some(Rejection::Unknown),
            (None, Verdict::Expired) => Some(Rejection::Expired),
            (None, Verdict::Revoked) => Some(Rejection::Revoked),
            (None, Verdict::Reused) => Some(Rejection::Reused),
        };
        if let Some(rejection) = rejection {
            self.stats.rejections.fetch_add(1, Ordering::Relaxed);
            if rejection == Rejection::Reused {
                self.stats.reuse_detected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("a rotated session token was used again");
            }
            return Err(SessionError::Token(rejection));
        }
        let record = doc
            .as_ref()
            .and_then(TokenDoc::record)
            .cloned()
            .ok_or(SessionError::Corrupt)?;
        let identity = record.identity.clone().ok_or(SessionError::Corrupt)?;
        let authenticated = Authenticated {
            hash,
            record,
            identity,
        };
        self.maybe_refresh(&authenticated);
        Ok(authenticated)
    }

    /// Slides the idle deadline of a token used now, at most once per refresh interval,
    /// in the background: a read does not wait for a write.
    fn maybe_refresh(&self, auth: &Authenticated) {
        let now = self.now_ms();
        if now.saturating_sub(auth.record.last_seen_ms) < ms(self.settings.refresh) {
            return;
        }
        let Ok(permit) = self.refreshes.clone().try_acquire_owned() else {
            self.stats.refreshes_skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let idle_deadline_ms = now
            .saturating_add(ms(self.settings.idle))
            .min(auth.identity.absolute_ms);
        let coordinator = self.coordinator.clone();
        let settings = self.settings.clone();
        let stats = self.stats.clone();
        let (hash, user) = (auth.hash, auth.identity.user.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let seen = DocOp::Token(TokenOp::Seen {
                at_ms: now,
                idle_deadline_ms,
            });
            let auth = &settings.auth;
            let (token_key, doc_key) = (auth_key(&hash), user_key(&user));
            let token = coordinator.apply(&token_key, seen, auth.write, auth.policy);
            let touch = DocOp::User(UserOp {
                deadline_ms: idle_deadline_ms,
                change: UserChange::Touch,
                limits: settings.limits,
            });
            let user_class = &settings.user;
            let doc = coordinator.apply(&doc_key, touch, user_class.write, user_class.policy);
            if let (Ok(_), Ok(_)) = tokio::join!(token, doc) {
                stats.refreshes.fetch_add(1, Ordering::Relaxed);
            }
        });
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
        let user = &self.settings.user;
        let object = self
            .coordinator
            .get_with(&user_key(&auth.identity.user), user.read, user.policy)
            .await?;
        match object {
            Some(Object::Doc(Doc::User(doc))) if doc.is_live(self.now_ms()) => Ok(doc),
            None | Some(Object::Doc(Doc::User(_))) => Ok(UserDoc::default()),
            Some(_) => Err(SessionError::Corrupt),
        }
    }

    /// Applies a change to the user's document and returns it as stored.
    pub async fn change(
        &self,
        auth: &Authenticated,
        change: UserChange,
    ) -> Result<UserDoc, SessionError> {
        self.user_op(&auth.identity.user, auth.record.deadline_ms(), change)
            .await
    }

    /// Replaces the token: a new token (same user, device and absolute deadline), the
    /// old one marked rotated to it.
    pub async fn rotate(&self, auth: &Authenticated) -> Result<Login, SessionError> {
        let identity = &auth.identity;
        let (login, new_hash) = self
            .issue(&identity.user, &identity.device, identity.absolute_ms)
            .await?;
        let rotation = Rotation {
            at_ms: self.now_ms(),
            to: new_hash,
        };
        let op = DocOp::Token(TokenOp::Rotate(rotation));
        let key = auth_key(&auth.hash);
        let old = UserChange::DeviceRemove {
            token: hex(&auth.hash),
        };
        let (rotated, removed) = tokio::join!(
            self.apply(&key, op, &self.settings.auth),
            self.user_op(&identity.user, 0, old)
        );
        rotated?;
        removed?;
        Ok(login)
    }

    async fn revoke(&self, user: &str, hash: &[u8; 32]) -> Result<(), SessionError> {
        let op = DocOp::Token(TokenOp::Revoke {
            at_ms: self.now_ms(),
        });
        let key = auth_key(hash);
        let change = UserChange::DeviceRemove { token: hex(hash) };
        let (revoked, removed) = tokio::join!(
            self.apply(&key, op, &self.settings.auth),
            self.user_op(user, 0, change)
        );
        revoked?;
        removed?;
        Ok(())
    }

    /// Logs this device out.
    pub async fn logout(&self, auth: &Authenticated) -> Result<(), SessionError> {
        self.revoke(&auth.identity.user, &auth.hash).await
    }

    /// Logs every device of the user out; returns how many tokens were revoked.
    pub async fn logout_all(&self, auth: &Authenticated) -> Result<usize, SessionError> {
        let doc = self.document(auth).await?;
        let mut hashes: Vec<[u8; 32]> = doc
            .session
            .devices
            .elements()
            .filter_map(|text| from_hex(text))
            .collect();
        if !hashes.contains(&auth.hash) {
            hashes.push(auth.hash);
        }
        let user = &auth.identity.user;
        let revokes = hashes.iter().map(|hash| self.revoke(user, hash));
        for result in futures::future::join_all(revokes).await {
            result?;
        }
        Ok(hashes.len())
    }
}
