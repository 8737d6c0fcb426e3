//! The driver of a write: carries out a `round::WriteRound`'s effects with tokio. A mint
//! on this node is made in place (`Dispatch::mint_here`), so the version travels while
//! this node flushes, and that flush's outcome comes back to the round as this
//! replica's reply; every other request goes out in a task of its own. It decides
//! nothing: who is asked, what counts and when to answer are the round's.

use super::round::{MintAnswer, WriteEffect, WritePlan, WriteRound};
use super::{instant_at, ms_since, whole_ms, Coordinator, CoordinatorError, Durable, Reply};
use super::{Planned, Policy};
use crate::clock::Hlc;
use crate::coordinator::quorum::Level;
use crate::object::{Object, ObjectKey};
use crate::wire::{PeerError, PeerRequest, PeerResponse};
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A new version: what the minter stored (the client's answer) and what goes to the
/// other replicas (the whole object, or a document's delta).
struct Minted {
    stored: Object,
    object: Object,
}

impl Coordinator {
    /// The write path shared by `put` and `apply`: one replica makes the new version
    /// (`first`, given this node's HLC time), then it travels to the other replicas and,
    /// for dead ones under a sloppy policy, to fallbacks as hints.
    pub(super) async fn write(
        &self,
        key: &ObjectKey,
        level: Level,
        policy: Policy,
        first: impl FnOnce(Hlc) -> PeerRequest,
    ) -> Result<Object, CoordinatorError> {
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + self.timeout;
        let Planned {
            nodes,
            tracker,
            here,
            dead,
        } = self.plan(key, level)?;
        let fallbacks = match policy.sloppy {
            true => {
                let voters = tracker.replicas();
                let dead_voters: Vec<usize> = (0..voters).filter(|index| dead[*index]).collect();
                self.fallbacks_for(key, &nodes, &dead_voters)
            }
            false => Vec::new(),
        };
        let plan = WritePlan {
            level,
            tracker,
            replicas: nodes.len(),
            here,
            dead,
            fallbacks: fallbacks
                .iter()
                .map(|(index, _, region)| (*index, region.clone()))
                .collect(),
        };
        let request = first(self.now());
        let mut round = WriteRound::new(plan, 0, whole_ms(self.timeout));
        let mut minted: Option<Minted> = None;
        // This node's flush of the version it minted, as a reply from the minter.
        let mut flushing: Option<(usize, Durable)> = None;
        let mut merge: Option<PeerRequest> = None;
        let (sender, mut replies) = mpsc::channel(nodes.len() + fallbacks.len());
        loop {
            while let Some(effect) = round.poll_effect() {
                match effect {
                    WriteEffect::Mint { index } => {
                        let answer = match self.dispatch.mint_here(&nodes[index], &request) {
                            Some((response, durable)) => {
                                flushing = Some((index, durable));
                                mint_answer(Ok(response), true, &mut minted)
                            }
                            None => {
                                let sent = self.dispatch.send(&nodes[index], request.clone());
                                match tokio::time::timeout_at(deadline, sent).await {
                                    Ok(response) => mint_answer(response, false, &mut minted),
                                    Err(_) => {
                                        round.on_time(ms_since(started));
                                        continue;
                                    }
                                }
                            }
                        };
                        round.on_minted(index, answer, ms_since(started));
                    }
                    WriteEffect::Replicate { index } => {
                        let Some(minted) = &minted else { continue };
                        let merge = merge.get_or_insert_with(|| PeerRequest::Merge {
                            key: key.clone(),
                            object: minted.object.clone(),
                        });
                        self.spawn_send(&sender, index, &nodes[index], merge.clone());
                    }
                    WriteEffect::Hint { index } => {
                        let (Some(minted), Some((_, fallback, _))) = (
                            &minted,
                            fallbacks.iter().find(|(hinted, _, _)| *hinted == index),
                        ) else {
                            continue;
                        };
                        let hint = PeerRequest::Hint {
                            owner: nodes[index].clone(),
                            key: key.clone(),
                            object: minted.object.clone(),
                        };
                        self.spawn_send(&sender, index, fallback, hint);
                    }
                    WriteEffect::Answer(answer) => {
                        let stored = answer.map(|()| {
                            let minted = minted.take();
                            minted
                                .expect("a write succeeds only after a replica minted")
                                .stored
                        });
                        if stored.is_err() {
                            self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        }
                        return stored;
                    }
                }
            }
            let wake = round.next_wake_ms().unwrap_or(0);
            let next = next_answer(&mut replies, &mut flushing);
            match tokio::time::timeout_at(instant_at(started, wake), next).await {
                Ok(reply) => {
                    let ok = matches!(
                        reply.response,
                        Ok(PeerResponse::Stored(_) | PeerResponse::Done)
                    );
                    round.on_reply(reply.index, ok, ms_since(started));
                }
                Err(_) => round.on_time(ms_since(started).max(wake)),
            }
        }
    }
}

/// What a replica's answer to a mint means to the round; a new version is kept in
/// `minted`. A replica's refusal is the client's answer, whether it came from this
/// node or through the transport.
fn mint_answer(
    response: Result<PeerResponse, super::DispatchError>,
    flushing: bool,
    minted: &mut Option<Minted>,
) -> MintAnswer {
    match response {
        Ok(PeerResponse::Stored(object)) => {
            *minted = Some(Minted {
                stored: object.clone(),
                object,
            });
            MintAnswer::Stored { flushing }
        }
        Ok(PeerResponse::Applied { stored, delta }) => {
            *minted = Some(Minted {
                stored: *stored,
                object: *delta,
            });
            MintAnswer::Stored { flushing }
        }
        Ok(PeerResponse::Error(PeerError::Refused { refusal, message }))
        | Err(super::DispatchError::Peer {
            error: PeerError::Refused { refusal, message },
            ..
        }) => MintAnswer::Refused { refusal, message },
        _ => MintAnswer::Failed,
    }
}

/// The next answer to a write: a replica's reply or, while it runs, this node's own
/// flush of the version it minted (as a reply from the minter). Waits for ever once
/// neither can come (the deadline ends that wait).
async fn next_answer(
    replies: &mut mpsc::Receiver<Reply>,
    flushing: &mut Option<(usize, Durable)>,
) -> Reply {
    let Some((minter, wait)) = flushing.as_mut() else {
        return match replies.recv().await {
            Some(reply) => reply,
            None => std::future::pending().await,
        };
    };
    let minter = *minter;
    let flushed = tokio::select! {
        outcome = wait => outcome,
        Some(reply) = replies.recv() => return reply,
    };
    *flushing = None;
    Reply {
        index: minter,
        response: flushed.map(|()| PeerResponse::Done),
    }
}
