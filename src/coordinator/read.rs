//! The read path: a quorum read with one object and digests, the full read it falls
//! back to when they differ, and read repair.

use super::quorum::{Level, Progress, QuorumTracker};
use super::{Coordinator, CoordinatorError, Policy, Reply};
use crate::ids::NodeId;
use crate::limits;
use crate::object::{Object, ObjectKey};
use crate::wire::{PeerRequest, PeerResponse};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One round of a read: replicas are asked nearest first, only as many as the level
/// needs; more when one fails or the speculation delay passes.
struct ReadRound {
    nodes: Vec<NodeId>,
    order: Vec<usize>,
    asked: Vec<bool>,
    /// The request for the first replica asked (a digest read's `Get`), and which
    /// replica that was.
    data: Option<PeerRequest>,
    data_at: Option<usize>,
    /// The request for every other replica.
    request: PeerRequest,
    sender: mpsc::Sender<Reply>,
    replies: mpsc::Receiver<Reply>,
    tracker: QuorumTracker,
    progress: Progress,
    received: usize,
    started: Instant,
    deadline: Instant,
    /// When every replica left is asked, unless the level is met by then.
    speculate: Option<Instant>,
}

impl ReadRound {
    /// Requests sent whose replies have not come.
    fn outstanding(&self) -> usize {
        self.asked.iter().filter(|asked| **asked).count() - self.received
    }

    /// What a repair needs once the read answered: the nodes, and the replies still due
    /// (they end when every request sent has answered, or at the deadline).
    fn into_late(self) -> (Vec<NodeId>, LateReplies) {
        let late = LateReplies {
            replies: self.replies,
            deadline: self.deadline,
        };
        (self.nodes, late)
    }
}

/// How a digest read ended.
enum DigestRead {
    /// Every digest matched the object the data replica sent (`None`: nothing stored).
    Agreed(Option<Object>),
    /// A digest differed: the read is done again in full.
    Disagreed,
    /// The digests cannot settle the read: the level was met but the object did not
    /// come (its replica failed, or is late past the speculation delay), or a replica
    /// refused the digest request (a build before digests) and the level was not met
    /// without it. The read is done again in full.
    Incomplete,
    /// The level cannot be met, or the request timed out.
    Failed(CoordinatorError),
}

/// The replies a read did not wait for, for its repair.
struct LateReplies {
    replies: mpsc::Receiver<Reply>,
    deadline: Instant,
}

impl Coordinator {
    /// Starts a round of a read of `key` at `level`: `data` (if any) goes to the first
    /// replica asked, `request` to the others.
    fn start_read(
        &self,
        key: &ObjectKey,
        level: Level,
        data: Option<PeerRequest>,
        request: PeerRequest,
    ) -> Result<ReadRound, CoordinatorError> {
        let started = Instant::now();
        let (nodes, tracker) = self.plan(key, level)?;
        let (sender, replies) = mpsc::channel(nodes.len().max(1));
        let deadline = started + self.timeout;
        // A replica that is slow (or gone before the failure detector noticed) should
        // cost one speculation delay, not the request timeout.
        let speculate = (started + Duration::from_millis(limits::READ_SPECULATE_MS)).min(deadline);
        let mut round = ReadRound {
            order: self.nearest_first(&nodes, tracker.replicas()),
            asked: vec![false; nodes.len()],
            data,
            data_at: None,
            request,
            nodes,
            sender,
            replies,
            progress: tracker.progress(),
            tracker,
            received: 0,
            started,
            deadline,
            speculate: Some(speculate),
        };
        self.ask(&mut round, false);
        Ok(round)
    }

    /// The next reply of a round; when the speculation delay passes with the level
    /// still pending, every replica left is asked first. `None` at the deadline, or
    /// when the delay passes with the level met (a digest read still waiting for its
    /// object).
    async fn next_reply(&self, round: &mut ReadRound) -> Option<Reply> {
        loop {
            let wake = round.speculate.unwrap_or(round.deadline);
            match tokio::time::timeout_at(wake, round.replies.recv()).await {
                Ok(Some(reply)) => {
                    round.received += 1;
                    return Some(reply);
                }
                Err(_) if round.speculate.is_some() && round.progress == Progress::Pending => {
                    round.speculate = None;
                    self.ask(round, true);
                }
                _ => return None,
            }
        }
    }

    /// Counts replica `index`'s answer (`answered`: it sent what it was asked) toward
    /// the level, and asks another replica when one failed.
    fn record(&self, round: &mut ReadRound, index: usize, answered: bool) {
        if index < round.tracker.replicas() {
            round.progress = round.tracker.record(index, answered);
            if !answered && round.progress == Progress::Pending {
                self.ask(round, false);
            }
        }
    }

    /// Asks replicas in `order` (marking them in `asked`) until those asked and not yet
    /// failed could meet the level; with `all`, asks every one left.
    /// A replica on this node is read in place, after the requests to the others are
    /// on their way.
    fn ask(&self, read: &mut ReadRound, all: bool) {
        let mut here = None;
        for index in read.order.clone() {
            if !all && read.tracker.could_meet_with(&read.asked) {
                break;
            }
            if !read.asked[index] {
                read.asked[index] = true;
                let request = match read.data.take() {
                    Some(data) => {
                        read.data_at = Some(index);
                        data
                    }
                    None => match &read.request {
                        PeerRequest::Digest { key }
                            if !self.dispatch.digests(&read.nodes[index]) =>
                        {
                            PeerRequest::Get { key: key.clone() }
                        }
                        request => request.clone(),
                    },
                };
                if read.nodes[index] == self.node {
                    here = Some((index, request));
                } else {
                    self.spawn_send(&read.sender, index, &read.nodes[index], request);
                }
            }
        }
        let Some((index, request)) = here else {
            return;
        };
        match self.dispatch.read_here(&self.node, &request) {
            // The channel holds a reply per replica and each is asked once: room.
            Some(response) => {
                let reply = Reply {
                    index,
                    response: Ok(response),
                };
                if let Err(error) = read.sender.try_send(reply) {
                    tracing::error!(%error, "a read's own reply found no room");
                }
            }
            None => self.spawn_send(&read.sender, index, &self.node, request),
        }
    }

    /// Reads a key at `level`: the merge of the replies that met it. Stale replicas,
    /// also among late replies, are repaired in the background.
    pub async fn get(
        &self,
        key: &ObjectKey,
        level: Level,
    ) -> Result<Option<Object>, CoordinatorError> {
        let policy = Policy {
            sloppy: self.sloppy,
            sync_repair: false,
        };
        self.get_with(key, level, policy).await
    }

    /// `get` under a class's policy: with `sync_repair`, the replicas that answered
    /// with less are repaired before the read returns (late ones still in the
    /// background).
    ///
    /// One replica (the nearest asked) sends its object, the others only its digest;
    /// when every digest matches, that object is the answer. When one differs (the
    /// replicas disagree) or no object came, the read runs again asking every replica
    /// for its object, and repairs (`full_read`).
    pub async fn get_with(
        &self,
        key: &ObjectKey,
        level: Level,
        policy: Policy,
    ) -> Result<Option<Object>, CoordinatorError> {
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        let read = match self.digest_read(key, level).await {
            DigestRead::Agreed(object) => return Ok(object),
            DigestRead::Failed(error) => Err(error),
            DigestRead::Disagreed => {
                self.stats.digest_mismatches.fetch_add(1, Ordering::Relaxed);
                self.full_read(key, level, policy).await
            }
            DigestRead::Incomplete => self.full_read(key, level, policy).await,
        };
        if read.is_err() {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        read
    }

    /// Asks the replicas `level` needs, nearest first, the first for its object and the
    /// others for its digest (their object, from a replica that knows no digests).
    async fn digest_read(&self, key: &ObjectKey, level: Level) -> DigestRead {
        let data = Some(PeerRequest::Get { key: key.clone() });
        let digest = PeerRequest::Digest { key: key.clone() };
        let mut round = match self.start_read(key, level, data, digest) {
            Ok(round) => round,
            Err(error) => return DigestRead::Failed(error),
        };
        // The object the data replica answered (`Some(None)`: it holds nothing).
        let mut data: Option<Option<Object>> = None;
        let mut data_failed = false;
        let mut digests: Vec<Option<Option<[u8; 32]>>> = vec![None; round.nodes.len()];
        let mut digest_refused = false;
        loop {
            let awaiting_data = data.is_none() && !data_failed && round.data_at.is_some();
            match round.progress {
                Progress::Pending => {}
                Progress::Met if awaiting_data => {}
                _ => break,
            }
            let Some(reply) = self.next_reply(&mut round).await else {
                break;
            };
            let is_data = round.data_at == Some(reply.index);
            let answered = match reply.response {
                Ok(PeerResponse::Object(object)) if is_data => {
                    data = Some(object);
                    true
                }
                Ok(PeerResponse::Digest(digest)) if !is_data => {
                    digests[reply.index] = Some(digest);
                    true
                }
                Ok(PeerResponse::Object(object)) => {
                    digests[reply.index] = Some(object.as_ref().map(Object::digest));
                    true
                }
                _ => {
                    data_failed |= is_data;
                    digest_refused |= !is_data && !self.dispatch.digests(&round.nodes[reply.index]);
                    false
                }
            };
            self.record(&mut round, reply.index, answered);
        }
        let (progress, started) = (round.progress, round.started);
        if progress != Progress::Met {
            if digest_refused && Instant::now() < round.deadline {
                return DigestRead::Incomplete;
            }
            return DigestRead::Failed(self.error_for(&round.tracker, level, progress, started));
        }
        let (Some(data), Some(data_at)) = (data, round.data_at) else {
            if Instant::now() >= round.deadline {
                let timed_out = Progress::Pending;
                return DigestRead::Failed(self.error_for(
                    &round.tracker,
                    level,
                    timed_out,
                    started,
                ));
            }
            // A level met by digests while the object is late or failed: read in full.
            return DigestRead::Incomplete;
        };
        let expected = data.as_ref().map(Object::digest);
        if digests.iter().flatten().any(|digest| *digest != expected) {
            return DigestRead::Disagreed;
        }
        if round.outstanding() > 0 {
            let (nodes, late) = round.into_late();
            let mut seen = vec![None; nodes.len()];
            seen[data_at] = Some(data.clone());
            self.spawn_read_repair(key.clone(), nodes, seen, late);
        }
        DigestRead::Agreed(data)
    }

    /// Asks the replicas `level` needs for their objects, merges them, and repairs the
    /// ones that answered with less.
    async fn full_read(
        &self,
        key: &ObjectKey,
        level: Level,
        policy: Policy,
    ) -> Result<Option<Object>, CoordinatorError> {
        let get = PeerRequest::Get { key: key.clone() };
        let mut round = self.start_read(key, level, None, get)?;
        let mut seen: Vec<Option<Option<Object>>> = vec![None; round.nodes.len()];
        while round.progress == Progress::Pending {
            let Some(reply) = self.next_reply(&mut round).await else {
                break;
            };
            let object = match reply.response {
                Ok(PeerResponse::Object(object)) => Some(object),
                _ => None,
            };
            self.record(&mut round, reply.index, object.is_some());
            seen[reply.index] = object;
        }
        if round.progress != Progress::Met {
            let (progress, started) = (round.progress, round.started);
            return Err(self.error_for(&round.tracker, level, progress, started));
        }
        let merged = merge_all(seen.iter().flatten());
        if let (true, Some(merged)) = (policy.sync_repair, &merged) {
            self.repair_answered(key, &round.nodes, &mut seen, merged, round.deadline)
                .await;
        }
        // The usual read: every replica asked has answered with the same object, so
        // there is nothing to wait for or repair (and no task to start).
        let settled = match &merged {
            Some(merged) => !seen.iter().any(|answer| is_stale(answer, merged)),
            None => true,
        };
        if round.outstanding() > 0 || !settled {
            let (nodes, late) = round.into_late();
            self.spawn_read_repair(key.clone(), nodes, seen, late);
        }
        Ok(merged)
    }

    /// Writes `merged` to every replica that answered with less and waits for them
    /// (until `deadline`); those it reached count as holding `merged` from then on.
    async fn repair_answered(
        &self,
        key: &ObjectKey,
        nodes: &[NodeId],
        seen: &mut [Option<Option<Object>>],
        merged: &Object,
        deadline: Instant,
    ) {
        let stale: Vec<usize> = (0..seen.len())
            .filter(|index| is_stale(&seen[*index], merged))
            .collect();
        let sends = stale.iter().map(|index| {
            self.stats.read_repairs.fetch_add(1, Ordering::Relaxed);
            let request = PeerRequest::Merge {
                key: key.clone(),
                object: merged.clone(),
            };
            tokio::time::timeout_at(deadline, self.dispatch.send(&nodes[*index], request))
        });
        let results = futures::future::join_all(sends).await;
        for (index, result) in stale.into_iter().zip(results) {
            if matches!(result, Ok(Ok(PeerResponse::Stored(_) | PeerResponse::Done))) {
                seen[index] = Some(Some(merged.clone()));
            }
        }
    }

    /// Waits (in the background, until the deadline) for the remaining replies, then
    /// writes the merged object to every replica that answered with less. A late
    /// digest that differs from the merge of the objects it has costs a read of that
    /// replica's object.
    fn spawn_read_repair(
        &self,
        key: ObjectKey,
        nodes: Vec<NodeId>,
        mut seen: Vec<Option<Option<Object>>>,
        late: LateReplies,
    ) {
        let Ok(permit) = self.repairs.clone().try_acquire_owned() else {
            return;
        };
        let dispatch = self.dispatch.clone();
        let stats = self.stats.clone();
        let LateReplies {
            mut replies,
            deadline,
        } = late;
        tokio::spawn(async move {
            let _permit = permit;
            while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, replies.recv()).await {
                match reply.response {
                    Ok(PeerResponse::Object(object)) => seen[reply.index] = Some(object),
                    // A late digest that differs from what the read has: read that object.
                    Ok(PeerResponse::Digest(digest))
                        if digest
                            != merge_all(seen.iter().flatten())
                                .as_ref()
                                .map(Object::digest) =>
                    {
                        let get = PeerRequest::Get { key: key.clone() };
                        let fetched = tokio::time::timeout_at(
                            deadline,
                            dispatch.send(&nodes[reply.index], get),
                        );
                        if let Ok(Ok(PeerResponse::Object(object))) = fetched.await {
                            seen[reply.index] = Some(object);
                        }
                    }
                    _ => {}
                }
            }
            let Some(merged) = merge_all(seen.iter().flatten()) else {
                return;
            };
            for (index, answer) in seen.iter().enumerate() {
                if is_stale(answer, &merged) {
                    stats.read_repairs.fetch_add(1, Ordering::Relaxed);
                    let request = PeerRequest::Merge {
                        key: key.clone(),
                        object: merged.clone(),
                    };
                    let _ = dispatch.send(&nodes[index], request).await;
                }
            }
        });
    }
}

/// Whether a replica's answer (`None`: it has not answered) held less than `merged`:
/// nothing, or an object other than the merge.
fn is_stale(answer: &Option<Option<Object>>, merged: &Object) -> bool {
    match answer {
        Some(Some(object)) => object != merged,
        Some(None) => true,
        None => false,
    }
}

/// The merge of every object given, or `None` if there was none.
fn merge_all<'a>(objects: impl Iterator<Item = &'a Option<Object>>) -> Option<Object> {
    let mut merged: Option<Object> = None;
    for object in objects.flatten() {
        match merged.as_mut() {
            Some(into) => {
                if let Err(error) = into.merge(object, limits::SIBLINGS_MAX) {
                    tracing::warn!(%error, "a replica's version could not be merged");
                }
            }
            None => merged = Some(object.clone()),
        }
    }
    merged
}
