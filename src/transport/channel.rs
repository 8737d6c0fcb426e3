//! Channels: one long-lived bidirectional stream per peer connection that carries many
//! requests and their answers, so that what a node has for a peer at one moment leaves
//! in one write (and so in as few QUIC packets and `sendmsg` calls as its bytes need),
//! without opening a stream, a task and a handler task per request.
//!
//! Wire format, after the opening preamble [`MAGIC`] (which the server echoes to say it
//! speaks channels; a node that does not resets the stream, and requests to it go on
//! one stream each as before):
//!
//! - request record: `[u64 id][u32 length][frame body]`, the body as in a stream frame
//!   (version byte and payload) of at most [`CHANNEL_FRAME_BYTES_MAX`]; a length of 0
//!   cancels request `id` (its requester gave up);
//! - answer record: `[u64 id][u8 status]`, then for status 0 `[u32 length][frame body]`,
//!   otherwise nothing: the status is the [`Refusal`] code a stream reset would carry.
//!
//! Larger requests still go on a stream of their own, so one big transfer never queues
//! small requests behind it on the channel. Coalescing needs no timer: the writer takes
//! everything queued while its previous write was in progress (up to
//! [`COALESCE_BYTES_MAX`]), so an idle channel sends at once and a busy one sends more
//! per write.
//!
//! This side is the requester's: [`Channel`] registers each request's id (at most
//! `STREAMS_PER_CONNECTION_MAX` at once, as streams were), queues its record, and gets
//! its answer from the reader task. A failed channel fails every request waiting on it
//! and is replaced on the next request.

use super::frame::{self, ReadFrameError, LENGTH_PREFIX_BYTES};
use super::Refusal;
use crate::limits::STREAMS_PER_CONNECTION_MAX;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// The first four bytes a requester writes on a channel (and the server echoes). As a
/// length prefix it would be far above `FRAME_BYTES_MAX`, so a node without channels
/// refuses it as an oversized frame.
pub(crate) const MAGIC: [u8; LENGTH_PREFIX_BYTES] = *b"CWCH";
/// Bytes of a record's id.
pub(crate) const ID_BYTES: usize = 8;
/// Bytes before a request record's frame body: the id and the length.
pub(crate) const REQUEST_HEADER_BYTES: usize = ID_BYTES + LENGTH_PREFIX_BYTES;
/// Bytes before an answer record's length: the id and the status.
pub(crate) const ANSWER_HEADER_BYTES: usize = ID_BYTES + 1;
/// Status of an answer record that carries a frame.
pub(crate) const STATUS_OK: u8 = 0;
/// The largest request frame (body) a channel carries; larger ones take their own stream.
pub(crate) const CHANNEL_FRAME_BYTES_MAX: usize = 64 * 1024;
/// At most this many bytes of records leave in one write.
pub(crate) const COALESCE_BYTES_MAX: usize = 256 * 1024;
/// Records waiting for the writer (each at most a frame; the requests in flight bound
/// them too).
pub(crate) const QUEUE_RECORDS_MAX: usize = STREAMS_PER_CONNECTION_MAX as usize;

/// The status byte of an answer refused with `refusal`.
pub(crate) fn status_of(refusal: Refusal) -> u8 {
    u8::try_from(refusal.code().into_inner()).unwrap_or(u8::MAX)
}

/// The refusal an answer's non-zero status stands for.
pub(crate) fn refusal_of(status: u8) -> Refusal {
    Refusal::from_code(quinn::VarInt::from_u32(u32::from(status)))
}

/// The cancel record of request `id`.
pub(crate) fn cancel_record(id: u64) -> Bytes {
    let mut record = Vec::with_capacity(REQUEST_HEADER_BYTES);
    record.extend_from_slice(&id.to_be_bytes());
    record.extend_from_slice(&0u32.to_be_bytes());
    Bytes::from(record)
}

/// What a request on a channel got back.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A frame body (version byte and payload) to decode.
    Body(Vec<u8>),
    /// The server refused the request.
    Refused(Refusal),
    /// The channel failed before the answer came.
    Failed(String),
}

struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set once the channel failed: nothing registers after it.
    failed: Option<String>,
}

/// The requester's end of one channel.
pub(crate) struct Channel {
    queue: mpsc::Sender<Bytes>,
    pending: Mutex<Pending>,
    slots: Arc<Semaphore>,
    next_id: AtomicU64,
}

impl Channel {
    /// Starts the writer and reader tasks of an opened channel (its preamble already
    /// echoed). The tasks end when the stream fails or every handle is dropped.
    pub(crate) fn start(send: quinn::SendStream, recv: quinn::RecvStream) -> Arc<Channel> {
        let (queue, records) = mpsc::channel(QUEUE_RECORDS_MAX);
        let channel = Arc::new(Channel {
            queue,
            pending: Mutex::new(Pending {
                waiting: HashMap::new(),
                failed: None,
            }),
            slots: Arc::new(Semaphore::new(STREAMS_PER_CONNECTION_MAX as usize)),
            next_id: AtomicU64::new(0),
        });
        tokio::spawn(write_records(Arc::downgrade(&channel), send, records));
        tokio::spawn(read_answers(Arc::downgrade(&channel), recv));
        channel
    }

    /// Whether the channel failed (a new one should be opened).
    pub(crate) fn failed(&self) -> bool {
        super::lock(&self.pending).failed.is_some() || self.queue.is_closed()
    }

    /// Sends `record`, a request frame encoded after `REQUEST_HEADER_BYTES - 4` spare
    /// bytes (`frame::encode_after(ID_BYTES, ..)`), and waits for its answer.
    pub(crate) async fn exchange(&self, mut record: Vec<u8>) -> Reply {
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return Reply::Failed("channel closed".into());
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        record[..ID_BYTES].copy_from_slice(&id.to_be_bytes());
        let (answer, answered) = oneshot::channel();
        {
            let mut pending = super::lock(&self.pending);
            if let Some(reason) = &pending.failed {
                return Reply::Failed(reason.clone());
            }
            pending.waiting.insert(id, answer);
        }
        let mut guard = Waiting {
            channel: self,
            id,
            answered: false,
            _slot,
        };
        if self.queue.send(Bytes::from(record)).await.is_err() {
            guard.answered = true;
            self.forget(id);
            return Reply::Failed("channel closed".into());
        }
        let reply = answered
            .await
            .unwrap_or_else(|_| Reply::Failed("channel closed".into()));
        guard.answered = true;
        reply
    }

    fn forget(&self, id: u64) {
        super::lock(&self.pending).waiting.remove(&id);
    }

    /// Fails every request waiting, and every later one.
    fn fail(&self, reason: String) {
        let waiting = {
            let mut pending = super::lock(&self.pending);
            if pending.failed.is_none() {
                pending.failed = Some(reason.clone());
            }
            std::mem::take(&mut pending.waiting)
        };
        for (_, answer) in waiting {
            let _ = answer.send(Reply::Failed(reason.clone()));
        }
        self.slots.close();
    }

    fn answer(&self, id: u64, reply: Reply) {
        let answer = super::lock(&self.pending).waiting.remove(&id);
        if let Some(answer) = answer {
            let _ = answer.send(reply);
        }
    }
}

/// A registered request: dropped before its answer (the requester gave up), it
/// unregisters and tells the server to stop working on it.
struct Waiting<'a> {
    channel: &'a Channel,
    id: u64,
    answered: bool,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.channel.forget(self.id);
            // Best effort: a full queue means the server is busy with others anyway.
            let _ = self.channel.queue.try_send(cancel_record(self.id));
        }
    }
}

/// Writes queued records, everything queued at once up to `COALESCE_BYTES_MAX`.
async fn write_records(
    channel: std::sync::Weak<Channel>,
    mut send: quinn::SendStream,
    mut records: mpsc::Receiver<Bytes>,
) {
    let mut batch: Vec<Bytes> = Vec::new();
    while let Some(first) = records.recv().await {
        gather(first, &mut records, &mut batch);
        if let Err(error) = send.write_all_chunks(&mut batch).await {
            if let Some(channel) = channel.upgrade() {
                channel.fail(format!("channel write failed: {error}"));
            }
            return;
        }
        batch.clear();
    }
    let _ = send.finish();
}

/// Puts `first` and whatever else is queued, up to `COALESCE_BYTES_MAX`, in `batch`:
/// what leaves in the next write (both ends of a channel).
pub(crate) fn gather(first: Bytes, queue: &mut mpsc::Receiver<Bytes>, batch: &mut Vec<Bytes>) {
    let mut bytes = first.len();
    batch.push(first);
    while bytes < COALESCE_BYTES_MAX {
        match queue.try_recv() {
            Ok(record) => {
                bytes += record.len();
                batch.push(record);
            }
            Err(_) => break,
        }
    }
}

/// Reads answers and hands each to its requester; fails the channel on a stream error
/// or an answer that breaks the framing.
async fn read_answers(channel: std::sync::Weak<Channel>, mut recv: quinn::RecvStream) {
    let reason = loop {
        let mut header = [0u8; ANSWER_HEADER_BYTES];
        if let Err(error) = frame::read_exact(&mut recv, &mut header).await {
            break describe(error);
        }
        let (id, status) = header.split_at(ID_BYTES);
        let id = u64::from_be_bytes(id.try_into().unwrap_or_default());
        let reply = if status[0] == STATUS_OK {
            let prefix = match frame::read_prefix(&mut recv).await {
                Ok(prefix) => prefix,
                Err(error) => break describe(error),
            };
            let length = match frame::check_length(prefix) {
                Ok(length) => length,
                Err(error) => break format!("malformed answer: {error}"),
            };
            let mut body = vec![0u8; length];
            if let Err(error) = frame::read_exact(&mut recv, &mut body).await {
                break describe(error);
            }
            Reply::Body(body)
        } else {
            Reply::Refused(refusal_of(status[0]))
        };
        let Some(channel) = channel.upgrade() else {
            return;
        };
        channel.answer(id, reply);
    };
    if let Some(channel) = channel.upgrade() {
        channel.fail(reason);
    }
}

fn describe(error: ReadFrameError) -> String {
    match error {
        ReadFrameError::Frame(error) => format!("channel ended: {error}"),
        ReadFrameError::Stream(error) => format!("channel failed: {error}"),
    }
}

#[cfg(test)]
mod tests;
