//! Writing a revocation so that no region can let the revoked token in again, also
//! while a region is down or cut off (`fence::revocation_plan` says how; this carries
//! it out).
//!
//! Each attempt reads this node's view of the other regions, writes at the level the
//! plan gives (a local quorum in every region but those held dead for the fence
//! margin); one that left a region out is acknowledged only if the member list did not
//! move meanwhile (the regions left out are then exactly those the coordinator found
//! dead). A region that is going, or replicas that fail (a region just gone is not
//! even suspected yet: its replicas refuse connections), make it wait and try again,
//! every `AUTH_REVOCATION_POLL_MS`, until `AUTH_REVOCATION_WAIT_MS` has passed: then
//! it fails with
//! `SessionError::RevocationUnconfirmed` (it may have reached some replicas; revoking
//! again is harmless). A refusal by the record itself (a rotation that lost) is
//! answered at once.

use super::fence::{revocation_plan, RevokePlan};
use super::service::SessionError;
use super::SessionService;
use crate::coordinator::CoordinatorError;
use crate::crdt::DocOp;
use crate::limits;
use crate::object::{Object, ObjectKey};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl SessionService {
    /// Applies the revoking `op` to `key` under the revocation rules.
    pub(super) async fn revoke_write(
        &self,
        key: &ObjectKey,
        op: DocOp,
    ) -> Result<Object, SessionError> {
        let auth = &self.settings.auth;
        let deadline_ms = self
            .monotonic_ms()
            .saturating_add(limits::AUTH_REVOCATION_WAIT_MS);
        let health = self.fence.health.clone();
        let mut waited = false;
        loop {
            let view = health.view();
            let plan = revocation_plan(
                auth.write,
                &view,
                health.now_monotonic_ms(),
                limits::AUTH_FENCE_MARGIN_MS,
            );
            let last_error = match plan {
                RevokePlan::Unavailable => {
                    return Err(
                        self.unconfirmed("fewer than a majority of the regions answer".to_string())
                    )
                }
                RevokePlan::Wait => {
                    waited = true;
                    None
                }
                RevokePlan::Write { level, excused } => {
                    let written = self
                        .coordinator
                        .apply(key, op.clone(), level, auth.policy)
                        .await;
                    match written {
                        // Every region acknowledged, or the regions left out are the
                        // ones the coordinator found dead (nothing moved meanwhile).
                        Ok(object) if excused == 0 || health.view().version == view.version => {
                            self.count_revocation(excused, waited);
                            return Ok(object);
                        }
                        Ok(_) => None,
                        Err(error @ CoordinatorError::Refused { .. }) => return Err(error.into()),
                        Err(error) => Some(error),
                    }
                }
            };
            if self.monotonic_ms() >= deadline_ms {
                return Err(match last_error {
                    Some(error) => self.unconfirmed(error.to_string()),
                    None => self.unconfirmed(
                        "a region stopped answering and is not held down for long enough yet"
                            .to_string(),
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(limits::AUTH_REVOCATION_POLL_MS)).await;
        }
    }

    fn count_revocation(&self, excused: usize, waited: bool) {
        if excused > 0 {
            self.stats
                .revocations_without_a_region
                .fetch_add(1, Ordering::Relaxed);
        }
        if waited {
            self.stats
                .revocations_waited
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn unconfirmed(&self, why: String) -> SessionError {
        self.stats
            .revocations_unconfirmed
            .fetch_add(1, Ordering::Relaxed);
        SessionError::RevocationUnconfirmed { why }
    }
}
