//! Rotation and the answer to a reused token.
//!
//! A rotation is single-use. One that carries the client's idempotency key makes its
//! successor from (parent, key) (`TokenKeys::issue_successor`): retried, it writes the
//! same successor, which the parent's record already names, so the retry succeeds with
//! the same token; within the parent's grace (`ROTATION_GRACE_MS`), since a rotated
//! token presented after it is a reuse.
//!
//! A rotation is conditional. The rotation is written to the old token's record as a
//! conditional operation: the replica that applies it refuses it when the record was
//! already rotated to another successor (`409 conflict` to the client), and the
//! successor's record names its parent. Two rotations minted on different replicas
//! (neither saw the other) both succeed there; their merged record names one winner
//! and a validation refuses the other successor (`crdt::token` has the argument). So
//! two concurrent rotations leave at most one successor that validates, in every state.
//!
//! A rotated token used after its grace is a sign it leaked: the whole rotation chain
//! it belongs to (its family: every token rotated from the same login, before and after
//! it) is revoked by one entry in the user's auth record, which every validation reads,
//! and an audit entry (user, device, time, region) is written beside it for operators
//! (`GET /v1/admin/audit/{user}`). A family already revoked costs no further write.

use super::service::{auth_key, user_auth_key};
use super::{Authenticated, Login, SessionError, SessionService};
use crate::coordinator::CoordinatorError;
use crate::crdt::{
    AuditEntry, DocOp, OpId, RevokedFamily, Rotation, TokenDoc, TokenOp, UserAuthOp, UserChange,
};
use crate::session::tokens::hex;
use crate::wire::Refusal;
use std::sync::atomic::Ordering;

/// The audit event of a rotated token used again.
pub const TOKEN_REUSED_EVENT: &str = "token_reused";

impl SessionService {
    /// Replaces the token: a new token (same user, device and absolute deadline) whose
    /// record names the old one, and the old one marked rotated to it, if no other
    /// rotation of it came first.
    pub async fn rotate(
        &self,
        auth: &Authenticated,
        op_id: Option<OpId>,
    ) -> Result<Login, SessionError> {
        let identity = &auth.identity;
        let issued = match op_id {
            Some(op_id) => self.keys.issue_successor(&auth.hash, &op_id.0),
            None => (self.keys.issue_token(), self.keys.issue_csrf()),
        };
        let new_hash = issued.0.hash;
        let now = self.now_ms();
        let rotation = Rotation {
            at_ms: now,
            to: new_hash,
        };
        let op = DocOp::Token(TokenOp::Rotate(rotation));
        let lineage = crate::crdt::TokenLineage {
            parent: auth.hash,
            family: auth.family,
        };
        let old = UserChange::DeviceRemove {
            token: hex(&auth.hash),
        };
        let old_key = auth_key(&auth.hash);
        // All at once, so a rotation costs one round of each class: a successor whose
        // rotation is refused exists but never validates (its parent names another).
        let (rotated, created, removed) = tokio::join!(
            self.revoke_write(&old_key, op),
            self.create(
                &identity.user,
                &identity.device,
                (now, identity.absolute_ms),
                Some(lineage),
                issued
            ),
            self.user_op(&identity.user, 0, old)
        );
        if let Err(SessionError::Coordinator(CoordinatorError::Refused {
            refusal: Refusal::AlreadyRotated,
            ..
        })) = rotated
        {
            self.stats
                .rotation_conflicts
                .fetch_add(1, Ordering::Relaxed);
            // Tidy the user's device list; the successor record is harmless.
            let stray = UserChange::DeviceRemove {
                token: hex(&new_hash),
            };
            let _ = self.user_op(&identity.user, 0, stray).await;
            return Err(SessionError::RotationConflict);
        }
        rotated?;
        removed?;
        let successor = created?;
        self.stats.rotations.fetch_add(1, Ordering::Relaxed);
        Ok(successor)
    }

    /// Answers the reuse of the rotated token hashing to `hash` (merged record `doc`):
    /// revokes its family and writes an audit entry, unless the family is already
    /// revoked. Failures are logged: the token is refused either way.
    pub(super) async fn reused(&self, hash: &[u8; 32], doc: Option<&TokenDoc>) {
        self.stats.reuse_detected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("a rotated session token was used again");
        let Some(identity) = doc
            .and_then(TokenDoc::record)
            .and_then(|record| record.identity.as_ref())
        else {
            return;
        };
        let family = identity.family(hash);
        self.stats.validation_reads.fetch_add(1, Ordering::Relaxed);
        match self.user_auth(&identity.user).await {
            Ok(record) if record.revoked.iter().any(|r| r.family == family) => return,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reading the user's auth record failed"),
        }
        let now = self.now_ms();
        let op = DocOp::UserAuth(UserAuthOp {
            not_before_ms: None,
            revoke: Some(RevokedFamily { at_ms: now, family }),
            audit: Some(AuditEntry {
                at_ms: now,
                event: TOKEN_REUSED_EVENT.to_string(),
                device: identity.device.clone(),
                region: self.coordinator.region().to_string(),
            }),
        });
        let key = user_auth_key(&identity.user);
        match self.revoke_write(&key, op).await {
            Ok(_) => {
                self.stats.families_revoked.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "revoking a reused token's family failed"),
        }
    }
}
