//! The serving end of a channel (`transport::channel` has the wire format): read request
//! records, run each through the handler (at most `STREAMS_PER_CONNECTION_MAX` at once),
//! and write the answers that are ready together in one write. On a runtime with one
//! worker thread the handlers are all polled by this one task (no task per request);
//! with more, each runs in its own task so one peer's requests use every core.
//!
//! A record is checked as a stream frame is: its length before its body, its sender
//! against the connection's certificate. A bad record is refused on its own (its answer
//! carries the refusal); only a record that breaks the framing (a length above
//! `CHANNEL_FRAME_BYTES_MAX`, or a body not sent within the request timeout) resets the
//! channel. A cancel record drops its request's handler.

use super::super::channel::{
    gather, status_of, ANSWER_HEADER_BYTES, CHANNEL_FRAME_BYTES_MAX, ID_BYTES, MAGIC,
    QUEUE_RECORDS_MAX, REQUEST_HEADER_BYTES, STATUS_OK,
};
use super::super::frame::{self, Envelope, FrameError, LENGTH_PREFIX_BYTES};
use super::super::stats::Counter;
use super::super::{lock, Message, PeerInfo, Refusal};
use super::{ConnectionPeer, ServerContext};
use crate::limits::STREAMS_PER_CONNECTION_MAX;
use bytes::{Buf, Bytes, BytesMut};
use futures::future::{AbortHandle, Abortable};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Channels one connection may hold open at once (a requester needs one; a few more
/// cover one being replaced).
pub(crate) const CHANNELS_PER_CONNECTION_MAX: usize = 4;
/// Bytes asked of the stream per read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// One parsed request record.
enum Record {
    Request { id: u64, body: Bytes },
    Cancel { id: u64 },
}

/// The next complete record at the front of `buffer`, if one is there. A length above
/// the channel's limit is an error: the framing cannot be trusted past it.
fn next_record(buffer: &mut BytesMut) -> Result<Option<Record>, FrameError> {
    if buffer.len() < REQUEST_HEADER_BYTES {
        return Ok(None);
    }
    let id = u64::from_be_bytes(buffer[..ID_BYTES].try_into().unwrap_or_default());
    let length = u32::from_be_bytes(
        buffer[ID_BYTES..REQUEST_HEADER_BYTES]
            .try_into()
            .unwrap_or_default(),
    );
    let length = usize::try_from(length).unwrap_or(usize::MAX);
    if length == 0 {
        buffer.advance(REQUEST_HEADER_BYTES);
        return Ok(Some(Record::Cancel { id }));
    }
    if length > CHANNEL_FRAME_BYTES_MAX {
        return Err(FrameError::Oversized {
            length: length as u64,
            max: CHANNEL_FRAME_BYTES_MAX,
        });
    }
    if buffer.len() < REQUEST_HEADER_BYTES + length {
        return Ok(None);
    }
    buffer.advance(REQUEST_HEADER_BYTES);
    let body = buffer.split_to(length).freeze();
    Ok(Some(Record::Request { id, body }))
}

/// The answer record of request `id`: `response` encoded, or the refusal it earns.
fn answer_record<Resp: Message>(id: u64, response: &Resp) -> (Bytes, Option<FrameError>) {
    match frame::encode_after(ANSWER_HEADER_BYTES, response) {
        Ok(mut record) => {
            record[..ID_BYTES].copy_from_slice(&id.to_be_bytes());
            record[ID_BYTES] = STATUS_OK;
            (Bytes::from(record), None)
        }
        Err(error) => {
            let refusal = match error {
                FrameError::Oversized { .. } => Refusal::ResponseTooLarge,
                _ => Refusal::ResponseUnencodable,
            };
            (refusal_record(id, refusal), Some(error))
        }
    }
}

fn refusal_record(id: u64, refusal: Refusal) -> Bytes {
    let mut record = Vec::with_capacity(ANSWER_HEADER_BYTES);
    record.extend_from_slice(&id.to_be_bytes());
    record.push(status_of(refusal));
    Bytes::from(record)
}

/// Serves one channel whose preamble was read, until the requester finishes it or the
/// stream fails.
pub(super) async fn serve<Req: Message, Resp: Message>(
    context: Arc<ServerContext<Req, Resp>>,
    peer: Arc<ConnectionPeer>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    if peer.channels.fetch_add(1, Ordering::AcqRel) >= CHANNELS_PER_CONNECTION_MAX {
        peer.channels.fetch_sub(1, Ordering::AcqRel);
        super::reject(&context, &mut send, &mut recv, Refusal::FrameRejected);
        tracing::debug!(remote = %peer.addr, "too many channels on one connection");
        return;
    }
    if send.write_all(&MAGIC).await.is_ok() {
        let (answers, queued) = mpsc::channel(QUEUE_RECORDS_MAX);
        let reading = read_requests(&context, &peer, &mut recv, answers);
        let writing = write_answers(&mut send, queued);
        let (outcome, ()) = tokio::join!(reading, writing);
        if let Err(refusal) = outcome {
            context.counters.bump(Counter::FramesRejected);
            let _ = send.reset(refusal.code());
            let _ = recv.stop(refusal.code());
        } else {
            let _ = send.finish();
        }
    }
    peer.channels.fetch_sub(1, Ordering::AcqRel);
}

/// Writes answer records as they come, everything ready at once in one write.
async fn write_answers(send: &mut quinn::SendStream, mut queued: mpsc::Receiver<Bytes>) {
    let mut batch: Vec<Bytes> = Vec::new();
    while let Some(first) = queued.recv().await {
        gather(first, &mut queued, &mut batch);
        if send.write_all_chunks(&mut batch).await.is_err() {
            // The reader sees the stream fail too and ends the channel.
            queued.close();
            return;
        }
        batch.clear();
    }
}

/// Reads request records and runs them; ends when the requester finishes the stream
/// (after answering what it asked) or the stream fails, or with the refusal that must
/// reset the channel.
async fn read_requests<Req: Message, Resp: Message>(
    context: &Arc<ServerContext<Req, Resp>>,
    peer: &ConnectionPeer,
    recv: &mut quinn::RecvStream,
    answers: mpsc::Sender<Bytes>,
) -> Result<(), Refusal> {
    let slots = STREAMS_PER_CONNECTION_MAX as usize;
    let spawn = tokio::runtime::Handle::current().metrics().num_workers() > 1;
    let mut buffer = BytesMut::new();
    let mut running = FuturesUnordered::new();
    let mut cancels: HashMap<u64, AbortHandle> = HashMap::new();
    let mut finished = false;
    // When the oldest incomplete record started arriving; it must complete in time.
    let mut partial_since: Option<Instant> = None;
    loop {
        while running.len() < slots {
            match next_record(&mut buffer) {
                Ok(Some(Record::Cancel { id })) => {
                    if let Some(handle) = cancels.remove(&id) {
                        handle.abort();
                    }
                }
                Ok(Some(Record::Request { id, body })) => {
                    match start(context, peer, id, &body, &mut cancels, spawn) {
                        Ok(request) => running.push(request),
                        Err(refusal) => {
                            if answers.send(refusal_record(id, refusal)).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(remote = %peer.addr, %error, "rejected channel record");
                    return Err(Refusal::FrameRejected);
                }
            }
        }
        partial_since = match (buffer.is_empty(), partial_since) {
            (true, _) => None,
            (false, Some(since)) => Some(since),
            (false, None) => Some(Instant::now()),
        };
        if finished && running.is_empty() {
            return Ok(());
        }
        let may_read = !finished && running.len() < slots;
        let deadline = partial_since.map(|since| since + context.request_timeout);
        tokio::select! {
            chunk = recv.read_chunk(READ_CHUNK_BYTES, true), if may_read => match chunk {
                Ok(Some(chunk)) => buffer.extend_from_slice(&chunk.bytes),
                Ok(None) => finished = true,
                Err(error) => {
                    tracing::debug!(remote = %peer.addr, %error, "channel ended");
                    return Ok(());
                }
            },
            Some(done) = running.next(), if !running.is_empty() => {
                if let Ok((id, record)) = done {
                    cancels.remove(&id);
                    if answers.send(record).await.is_err() {
                        return Ok(());
                    }
                }
            },
            _ = sleep_until(deadline), if deadline.is_some() && may_read => {
                tracing::debug!(remote = %peer.addr, "channel record not received within the timeout");
                return Err(Refusal::FrameRejected);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

type Running = Abortable<futures::future::BoxFuture<'static, (u64, Bytes)>>;

/// Aborts a spawned handler when its run is dropped (cancelled or the channel gone).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Decodes and checks one request record and returns its handler run (cancellable;
/// in a task of its own when `spawn`), or the refusal to answer it with.
fn start<Req: Message, Resp: Message>(
    context: &Arc<ServerContext<Req, Resp>>,
    peer: &ConnectionPeer,
    id: u64,
    body: &[u8],
    cancels: &mut HashMap<u64, AbortHandle>,
    spawn: bool,
) -> Result<Running, Refusal> {
    if cancels.contains_key(&id) {
        context.counters.bump(Counter::FramesRejected);
        return Err(Refusal::FrameRejected);
    }
    let envelope: Envelope<Req> = match frame::decode_body(body) {
        Ok(envelope) => envelope,
        Err(error) => {
            context.counters.bump(Counter::FramesRejected);
            tracing::debug!(remote = %peer.addr, %error, "rejected request record");
            return Err(Refusal::FrameRejected);
        }
    };
    if let Err(error) =
        peer.check_identity(&context.identity, &envelope.from, &envelope.from_region)
    {
        context.counters.bump(Counter::ImpersonationsRejected);
        tracing::debug!(remote = %peer.addr, %error, "sender id or region does not match its certificate");
        return Err(Refusal::IdentityRejected);
    }
    context.counters.bump(Counter::RequestsReceived);
    let from = PeerInfo {
        node: envelope.from,
        region: envelope.from_region,
        addr: peer.addr,
    };
    let remote = peer.addr;
    let context = context.clone();
    let run = async move {
        let response = context.handler.handle_boxed(from, envelope.body).await;
        let (record, error) = answer_record(id, &response);
        if let Some(error) = error {
            tracing::warn!(%remote, %error, "cannot send the response");
        }
        let reply_delay = lock(&context.faults)
            .as_ref()
            .map(|plan| plan.reply_delay())
            .unwrap_or_default();
        super::super::delay::sleep(reply_delay).await;
        (id, record)
    };
    let run: futures::future::BoxFuture<'static, (u64, Bytes)> = if spawn {
        let mut task = AbortOnDrop(tokio::spawn(run));
        Box::pin(async move {
            match (&mut task.0).await {
                Ok(answer) => answer,
                Err(_) => (id, refusal_record(id, Refusal::ResponseUnencodable)),
            }
        })
    } else {
        Box::pin(run)
    };
    let (handle, registration) = AbortHandle::new_pair();
    cancels.insert(id, handle);
    Ok(Abortable::new(run, registration))
}

/// The preamble of a channel, for the serving side's first read.
pub(super) fn is_channel(prefix: [u8; LENGTH_PREFIX_BYTES]) -> bool {
    prefix == MAGIC
}

#[cfg(test)]
mod tests;
