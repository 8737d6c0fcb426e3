//! Batches replica reads and replica writes to one peer under load. A request goes out
//! at once while fewer than `BATCHES_IN_FLIGHT_PER_PEER` batches of its kind are in
//! flight to that peer; otherwise it waits in a bounded queue, and everything queued
//! leaves together in the next `PeerRequest::Batch`: one frame, one stream, one task on
//! each side and one durability wait for many writes. Nothing waits for company, so a
//! lone request pays no delay.
//!
//! Only reads (`Get`, `Digest`) and `Merge`s are batched, each kind on its own (a read
//! never waits behind a write's flush). A batch whose frame would be too large, or
//! whose answer the peer refuses as too large for a frame (`Refusal::ResponseTooLarge`),
//! goes out again request by request: one large object never fails the others.
//!
//! A peer that refuses the frame of a `Digest` (a node of a build before digest reads,
//! in a rolling upgrade) is not asked for digests for `DIGESTLESS_RETRY_MS`
//! ([`Batcher::digests`]): reads ask it for objects instead.

use crate::coordinator::DispatchError;
use crate::ids::NodeId;
use crate::limits::{
    BATCHES_IN_FLIGHT_PER_PEER, BATCH_QUEUE_PER_PEER, BATCH_REQUESTS_MAX, DIGESTLESS_RETRY_MS,
    PEERS_MAX,
};
use crate::transport::{lock, Refusal, Transport, TransportError};
use crate::wire::{PeerRequest, PeerResponse};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};

type Answer = Result<PeerResponse, DispatchError>;
type Queued = (PeerRequest, oneshot::Sender<Answer>);

/// What a request is, for batching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
}

impl Kind {
    /// The batch a request may join, if any.
    pub fn of(request: &PeerRequest) -> Option<Kind> {
        match request {
            PeerRequest::Get { .. } | PeerRequest::Digest { .. } => Some(Kind::Read),
            PeerRequest::Merge { .. } => Some(Kind::Write),
            _ => None,
        }
    }
}

/// The peers that refused a digest request, and until when they are not asked for one.
#[derive(Default)]
struct Digestless(Mutex<HashMap<NodeId, Instant>>);

impl Digestless {
    /// Notes `to` as not understanding digests when it refused the frame of `requests`
    /// and a `Digest` was among them.
    fn note(&self, to: &NodeId, requests: &[PeerRequest], error: &TransportError) {
        let refused = matches!(
            error,
            TransportError::Refused {
                reason: Refusal::FrameRejected,
                ..
            }
        );
        let asked_digest = requests
            .iter()
            .any(|request| matches!(request, PeerRequest::Digest { .. }));
        if !(refused && asked_digest) {
            return;
        }
        tracing::info!(peer = %to, "peer refused a digest request; asking it for objects");
        let mut peers = lock(&self.0);
        let now = Instant::now();
        if peers.len() >= PEERS_MAX {
            peers.retain(|_, until| *until > now);
        }
        if peers.len() < PEERS_MAX {
            peers.insert(to.clone(), now + Duration::from_millis(DIGESTLESS_RETRY_MS));
        }
    }

    fn allows(&self, to: &NodeId) -> bool {
        lock(&self.0)
            .get(to)
            .is_none_or(|until| *until <= Instant::now())
    }
}

/// One node's outgoing batch queues, one per (peer, kind); at most `PEERS_MAX` peers.
pub struct Batcher {
    transport: Transport<PeerRequest, PeerResponse>,
    queues: Mutex<HashMap<(NodeId, Kind), mpsc::Sender<Queued>>>,
    digestless: Arc<Digestless>,
}

impl Batcher {
    pub fn new(transport: Transport<PeerRequest, PeerResponse>) -> Batcher {
        Batcher {
            transport,
            queues: Mutex::new(HashMap::new()),
            digestless: Arc::default(),
        }
    }

    /// Whether `to` may be asked for a digest: false for a while after it refused one.
    pub fn digests(&self, to: &NodeId) -> bool {
        self.digestless.allows(to)
    }

    /// Sends `request` to `to`, batched with others of its kind when it has to wait.
    pub async fn send(&self, to: &NodeId, request: PeerRequest) -> Answer {
        let Some(kind) = Kind::of(&request) else {
            return single(&self.transport, &self.digestless, to, &request).await;
        };
        let queue = self.queue(to, kind);
        let (answer, answered) = oneshot::channel();
        let closed = || DispatchError::Closed { peer: to.clone() };
        if queue.send((request, answer)).await.is_err() {
            return Err(closed());
        }
        answered.await.unwrap_or_else(|_| Err(closed()))
    }

    fn queue(&self, to: &NodeId, kind: Kind) -> mpsc::Sender<Queued> {
        let mut queues = lock(&self.queues);
        if let Some(queue) = queues.get(&(to.clone(), kind)) {
            if !queue.is_closed() {
                return queue.clone();
            }
        }
        if queues.len() >= 2 * crate::limits::PEERS_MAX {
            // Peers come and go; drop the queues of ones no request has used lately
            // rather than growing (their drains end, in-flight batches still answer).
            queues.clear();
        }
        let (sender, receiver) = mpsc::channel(BATCH_QUEUE_PER_PEER);
        queues.insert((to.clone(), kind), sender.clone());
        let digestless = self.digestless.clone();
        tokio::spawn(drain(
            self.transport.clone(),
            digestless,
            to.clone(),
            receiver,
        ));
        sender
    }
}

/// Takes what is queued for one peer, as batches, while at most
/// `BATCHES_IN_FLIGHT_PER_PEER` are in flight; ends when the queue is dropped.
async fn drain(
    transport: Transport<PeerRequest, PeerResponse>,
    digestless: Arc<Digestless>,
    to: NodeId,
    mut queue: mpsc::Receiver<Queued>,
) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT_PER_PEER));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH_REQUESTS_MAX {
            match queue.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let transport = transport.clone();
        let digestless = digestless.clone();
        let to = to.clone();
        tokio::spawn(async move {
            let _permit = permit;
            send_batch(&transport, &digestless, &to, batch).await;
        });
    }
}

async fn send_batch(
    transport: &Transport<PeerRequest, PeerResponse>,
    digestless: &Digestless,
    to: &NodeId,
    batch: Vec<Queued>,
) {
    let (requests, answers): (Vec<PeerRequest>, Vec<oneshot::Sender<Answer>>) =
        batch.into_iter().unzip();
    if requests.len() == 1 {
        let answer = single(transport, digestless, to, &requests[0]).await;
        for sender in answers {
            let _ = sender.send(answer.clone());
        }
        return;
    }
    let count = requests.len();
    let request = PeerRequest::Batch(requests);
    match transport.request(to, &request).await {
        Ok(PeerResponse::Batch(responses)) if responses.len() == count => {
            for (sender, response) in answers.into_iter().zip(responses) {
                let _ = sender.send(answer_of(to, Ok(response)));
            }
        }
        Err(
            error @ (TransportError::Frame(_)
            | TransportError::Refused {
                reason: Refusal::ResponseTooLarge,
                ..
            }),
        ) => {
            // Too large together, asked or answered: each on its own.
            tracing::debug!(peer = %to, %error, "batch sent request by request");
            let PeerRequest::Batch(requests) = request else {
                unreachable!("built as a batch above")
            };
            for (request, sender) in requests.iter().zip(answers) {
                let _ = sender.send(single(transport, digestless, to, request).await);
            }
        }
        other => {
            let error = match other {
                Ok(PeerResponse::Error(error)) => DispatchError::Peer {
                    peer: to.clone(),
                    error,
                },
                Ok(_) => DispatchError::Unexpected { peer: to.clone() },
                Err(error) => {
                    if let PeerRequest::Batch(requests) = &request {
                        digestless.note(to, requests, &error);
                    }
                    DispatchError::of_transport(to, &error)
                }
            };
            for sender in answers {
                let _ = sender.send(Err(error.clone()));
            }
        }
    }
}

async fn single(
    transport: &Transport<PeerRequest, PeerResponse>,
    digestless: &Digestless,
    to: &NodeId,
    request: &PeerRequest,
) -> Answer {
    let response = transport.request(to, request).await.map_err(|error| {
        digestless.note(to, std::slice::from_ref(request), &error);
        DispatchError::of_transport(to, &error)
    });
    answer_of(to, response)
}

/// A replica's error answer is a failed request, kept typed.
fn answer_of(to: &NodeId, response: Answer) -> Answer {
    match response {
        Ok(PeerResponse::Error(error)) => Err(DispatchError::Peer {
            peer: to.clone(),
            error,
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests;
