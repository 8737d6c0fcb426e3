//! Validation: lets a presented token in, or says why not, reading as little as it can.
//!
//! - Missing, malformed and made-up tokens (a tag this cluster's keys do not make) are
//!   refused by arithmetic: no read at all.
//! - A genuine token is read at the local `auth` level, or, while this node's fence is
//!   up (`fence`: cut off from a region, or catching up after one), from a local
//!   majority in a majority of the regions, failing closed (`SessionError::Fenced`)
//!   when they do not answer. Revoked, expired or reused, it is answered from that read. Only a genuine token found nowhere locally is looked up
//!   in every region (a cross-region read), unless the negative cache says it was found
//!   nowhere a moment ago.
//! - A token found valid is then checked against its user's auth record (not-before,
//!   revoked families) and, if a rotation made it, its parent's record (it must still
//!   name it as its successor); both local reads at once, together with the user's
//!   document when the route needs it, so a session read still waits for two rounds.
//! - Each failure is charged to the client's address. An address over its limit keeps
//!   every local answer (a valid token still gets in: a shop backend that forwards one
//!   bot's flood among its users' requests must not lock its users out), but a genuine
//!   token missing locally is then answered `token_unknown` without the cross-region
//!   read: its floods stay local. Its rejections are `SessionError::Limited`, which the
//!   HTTP edge answers only after a delay (`api::session`), so a flood from it slows to
//!   the pace of its answers.
//!
//! Rejections no longer cost the same work: a made-up token costs none, a genuine one
//! a local read. The kind of rejection is what the answer says anyway.

use super::fence::GuardMode;
use super::identities::Known;
use super::service::{auth_key, ms, Authenticated, Rejection, SessionError};
use super::tokens::TokenFormat;
use super::SessionService;
use crate::coordinator::quorum::Level;
use crate::crdt::{is_successor_of, verdict, DocOp, TokenDoc, TokenOp, UserChange, UserDoc};
use crate::crdt::{OpId, UserAuth, UserOp, Verdict};
use std::net::IpAddr;
use std::sync::atomic::Ordering;

impl SessionService {
    /// Lets a presented token in, or says why not; `client` is the address failures
    /// are charged to (`None`: not limited).
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Authenticated, SessionError> {
        Ok(self.admitted(presented, client, false, None).await?.0)
    }

    /// `authenticate` for a rotation that carries the idempotency key `op_id`: a token
    /// already rotated to the very successor this key makes (`issue_successor`) is
    /// let in, not taken for a reuse: it is this rotation, retried.
    pub async fn authenticate_rotation(
        &self,
        presented: Option<&str>,
        client: Option<IpAddr>,
        op_id: Option<OpId>,
    ) -> Result<Authenticated, SessionError> {
        Ok(self.admitted(presented, client, false, op_id).await?.0)
    }

    /// `authenticate`, with the user's document read together with the checks.
    pub async fn authenticate_with_document(
        &self,
        presented: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<(Authenticated, UserDoc), SessionError> {
        let (auth, doc) = self.admitted(presented, client, true, None).await?;
        Ok((auth, doc.unwrap_or_default()))
    }

    async fn admitted(
        &self,
        presented: Option<&str>,
        client: Option<IpAddr>,
        with_document: bool,
        rotation: Option<OpId>,
    ) -> Result<(Authenticated, Option<UserDoc>), SessionError> {
        self.stats.validations.fetch_add(1, Ordering::Relaxed);
        let local_only =
            client.is_some_and(|address| !self.limiter.allowed(address, self.monotonic_ms()));
        let checks = Checks {
            with_document,
            local_only,
            rotation,
        };
        let result = self.validate(presented, checks).await;
        self.stats.validation_outcomes[super::service::validation_outcome(&result)]
            .fetch_add(1, Ordering::Relaxed);
        if let Err(SessionError::Token(rejection)) = result {
            self.stats.rejections.fetch_add(1, Ordering::Relaxed);
            if let Some(address) = client {
                self.limiter.charge(address, self.monotonic_ms());
            }
            if local_only {
                return Err(SessionError::Limited(rejection));
            }
        }
        result
    }

    async fn read_token(
        &self,
        hash: &[u8; 32],
        level: Level,
    ) -> Result<Option<TokenDoc>, SessionError> {
        let object = self
            .coordinator
            .get_with(&auth_key(hash), level, self.settings.auth.policy)
            .await?;
        SessionService::token_of(object)
    }

    /// The merged record of a genuine token: the read at `level` (the local level, or
    /// a majority of the regions while the fence is up), and when that finds nothing,
    /// the negative cache does not know it and the client's address is not over its
    /// failure limit (`local_only`), the read of every region (of a majority of them
    /// while a region is down).
    async fn find(
        &self,
        hash: &[u8; 32],
        level: Level,
        local_only: bool,
    ) -> Result<Option<TokenDoc>, SessionError> {
        self.stats.validation_reads.fetch_add(1, Ordering::Relaxed);
        let mut doc = self.read_token(hash, level).await?;
        if verdict(doc.as_ref(), 0, 0) != Verdict::Unknown {
            return Ok(doc);
        }
        if self.negative.contains(hash, self.monotonic_ms()) {
            self.stats
                .negative_cache_hits
                .fetch_add(1, Ordering::Relaxed);
            return Ok(doc);
        }
        if local_only {
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Ok(doc);
        }
        self.stats
            .remote_validation_reads
            .fetch_add(1, Ordering::Relaxed);
        // A failure (regions unreachable) keeps the first answer.
        let remote = match self.read_token(hash, Level::EachQuorum).await {
            Ok(remote) => Ok(remote),
            Err(_) => self.read_token(hash, Level::MajorityQuorum).await,
        };
        if let Ok(Some(remote)) = remote {
            match doc.as_mut() {
                Some(local) => local.merge(&remote),
                None => doc = Some(remote),
            }
        }
        if verdict(doc.as_ref(), 0, 0) == Verdict::Unknown {
            self.negative.insert(hash, self.monotonic_ms());
        }
        Ok(doc)
    }

    /// The level validations read at now, by the fence's mode (counting the guarded
    /// ones), and the mode.
    fn validation_level(&self) -> (Level, GuardMode) {
        let mode = self.fence.mode();
        let counter = match mode {
            GuardMode::Local => return (self.settings.auth.read, mode),
            GuardMode::Fenced => &self.stats.fenced_validations,
            GuardMode::CatchingUp => &self.stats.catching_up_validations,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        (Level::MajorityQuorum, mode)
    }

    /// A guarded read that failed fails closed: this node may have missed revocations.
    fn closed(&self, mode: GuardMode, error: SessionError) -> SessionError {
        match error {
            SessionError::Coordinator(source) if mode != GuardMode::Local => {
                self.stats
                    .validations_failed_closed
                    .fetch_add(1, Ordering::Relaxed);
                SessionError::Fenced {
                    mode: mode.name(),
                    source,
                }
            }
            other => other,
        }
    }

    async fn validate(
        &self,
        presented: Option<&str>,
        checks: Checks,
    ) -> Result<(Authenticated, Option<UserDoc>), SessionError> {
        let Checks {
            with_document,
            local_only,
            rotation,
        } = checks;
        let reject = |rejection| Err(SessionError::Token(rejection));
        let hash = match self.keys.token_hash(presented) {
            Ok(hash) => hash,
            Err(TokenFormat::Missing) => return reject(Rejection::Missing),
            Err(TokenFormat::Malformed) => return reject(Rejection::Malformed),
            Err(TokenFormat::Forged) => {
                self.stats.forged.fetch_add(1, Ordering::Relaxed);
                return reject(Rejection::Unknown);
            }
        };
        let (level, mode) = self.validation_level();
        // A token validated here before, or held here: its checks are read with it, in
        // one round.
        let (found, read_ahead) = match self.known_identity(&hash) {
            Some(known) => {
                let checks = self.check_reads(&known.user, known.parent, level, with_document);
                let (found, reads) = tokio::join!(self.find(&hash, level, local_only), checks);
                (found, Some((known, reads)))
            }
            None => (self.find(&hash, level, local_only).await, None),
        };
        let doc = found.map_err(|error| self.closed(mode, error))?;
        let grace = ms(self.settings.rotation_grace);
        match verdict(doc.as_ref(), self.now_ms(), grace) {
            Verdict::Valid => {}
            Verdict::Unknown => return reject(Rejection::Unknown),
            Verdict::Expired => return reject(Rejection::Expired),
            Verdict::Revoked => return reject(Rejection::Revoked),
            Verdict::Reused if self.is_retried_rotation(&hash, doc.as_ref(), rotation) => {}
            Verdict::Reused => {
                self.reused(&hash, doc.as_ref()).await;
                return reject(Rejection::Reused);
            }
        }
        let record = doc
            .as_ref()
            .and_then(TokenDoc::record)
            .cloned()
            .ok_or(SessionError::Corrupt)?;
        let identity = record.identity.clone().ok_or(SessionError::Corrupt)?;
        let family = identity.family(&hash);
        let auth = Authenticated {
            hash,
            record,
            identity,
            family,
        };
        let reads = match read_ahead {
            Some((known, reads)) if known.matches(&auth.identity) => {
                let counter = &self.stats.one_round_validations;
                counter.fetch_add(1, Ordering::Relaxed);
                reads
            }
            _ => {
                let (user, parent) = (&auth.identity.user, auth.identity.parent());
                self.check_reads(user, parent, level, with_document).await
            }
        };
        let document = checked(&auth, reads).map_err(|error| self.closed(mode, error))?;
        self.identities.insert(&auth.hash, &auth.identity);
        self.maybe_refresh(&auth);
        Ok((auth, document))
    }

    /// Whether the token hashing to `hash` (merged record `doc`) was rotated to the
    /// successor a rotation with the idempotency key `op_id` makes of it.
    fn is_retried_rotation(
        &self,
        hash: &[u8; 32],
        doc: Option<&TokenDoc>,
        op_id: Option<OpId>,
    ) -> bool {
        let rotated_to = doc
            .and_then(TokenDoc::record)
            .and_then(|record| record.rotated)
            .map(|rotation| rotation.to);
        match (rotated_to, op_id) {
            (Some(to), Some(op_id)) => {
                let (successor, _) = self.keys.issue_successor(hash, &op_id.0);
                blake3::Hash::from(successor.hash) == blake3::Hash::from(to)
            }
            _ => false,
        }
    }

    /// The identity of the token hashing to `hash` as this node knows it without a
    /// round trip: from the table of tokens found valid here, or else from this node's
    /// own copy of the token's record (a replica of it holds one). Either may be behind
    /// on everything but the identity, which never changes.
    fn known_identity(&self, hash: &[u8; 32]) -> Option<Known> {
        if let Some(known) = self.identities.get(hash) {
            return Some(known);
        }
        let object = self.coordinator.local_copy(&auth_key(hash));
        let doc = SessionService::token_of(object).ok()??;
        let identity = doc.record()?.identity.as_ref()?;
        Some(Known::of(identity))
    }

    /// The reads the checks need, at once: the user's auth record, the parent of a
    /// rotated-in token, and the user's document when asked for.
    async fn check_reads(
        &self,
        user: &str,
        parent: Option<[u8; 32]>,
        level: Level,
        with_document: bool,
    ) -> CheckReads {
        let parent = async {
            match parent {
                Some(parent) => {
                    self.stats.validation_reads.fetch_add(1, Ordering::Relaxed);
                    Some(self.read_token(&parent, level).await)
                }
                None => None,
            }
        };
        let guard = async {
            self.stats.validation_reads.fetch_add(1, Ordering::Relaxed);
            self.user_auth_at(user, level).await
        };
        let document = async {
            match with_document {
                true => Some(self.document_of(user).await),
                false => None,
            }
        };
        let (parent, guard, document) = tokio::join!(parent, guard, document);
        CheckReads {
            parent,
            guard,
            document,
        }
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
            let (auth, create) = (&settings.auth, settings.auth_create);
            let (token_key, doc_key) = (auth_key(&hash), super::service::user_key(&user));
            let token = coordinator.apply(&token_key, seen, create, auth.policy);
            let touch = DocOp::User(UserOp {
                deadline_ms: idle_deadline_ms,
                change: UserChange::Touch,
                limits: settings.limits,
                op_id: None,
            });
            let user_class = &settings.user;
            let doc = coordinator.apply(&doc_key, touch, user_class.write, user_class.policy);
            if let (Ok(_), Ok(_)) = tokio::join!(token, doc) {
                stats.refreshes.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// What the check reads of a token found: its parent's record (a rotated-in token),
/// its user's auth record and, when asked for, the user's document.
struct CheckReads {
    parent: Option<Result<Option<TokenDoc>, SessionError>>,
    guard: Result<UserAuth, SessionError>,
    document: Option<Result<UserDoc, SessionError>>,
}

/// Judges a token (`auth`) found valid by its check reads: refused if a concurrent
/// rotation of its parent won, or its user's auth record refuses it (not-before, a
/// revoked family); otherwise the user's document, when it was read.
fn checked(auth: &Authenticated, reads: CheckReads) -> Result<Option<UserDoc>, SessionError> {
    if let Some(parent) = reads.parent {
        if !is_successor_of(parent?.as_ref(), &auth.hash) {
            // The loser of two concurrent rotations of one token.
            return Err(SessionError::Token(Rejection::Revoked));
        }
    }
    if reads.guard?.refuses(auth.identity.created_ms, &auth.family) {
        return Err(SessionError::Token(Rejection::Revoked));
    }
    reads.document.transpose()
}

/// What a validation checks beyond the token itself.
struct Checks {
    /// Read the user's document with the checks.
    with_document: bool,
    /// The client is over its failure limit: no read beyond the local region.
    local_only: bool,
    /// A rotation's idempotency key: a token already rotated to its successor is let in.
    rotation: Option<OpId>,
}
