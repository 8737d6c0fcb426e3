use super::*;
use crate::ids::Region;
use crate::object::ObjectKey;
use crate::transport::{
    create_cluster_ca, issue_node_certificate, Handler, PeerInfo, TransportConfig, WanModel,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Answers reads with "not found" once the gate opens; counts frames and requests.
struct Gated {
    open: watch::Receiver<bool>,
    frames: AtomicUsize,
    requests: AtomicUsize,
    largest: AtomicUsize,
}

impl Handler<PeerRequest, PeerResponse> for Gated {
    async fn handle(&self, _from: PeerInfo, request: PeerRequest) -> PeerResponse {
        let count = match &request {
            PeerRequest::Batch(requests) => requests.len(),
            _ => 1,
        };
        self.frames.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(count, Ordering::SeqCst);
        self.largest.fetch_max(count, Ordering::SeqCst);
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        holding_nothing(match request {
            PeerRequest::Batch(_) => Some(count),
            _ => None,
        })
    }
}

/// A `Gated` handler with nothing counted yet.
fn gated(open: watch::Receiver<bool>) -> Arc<Gated> {
    Arc::new(Gated {
        open,
        frames: AtomicUsize::new(0),
        requests: AtomicUsize::new(0),
        largest: AtomicUsize::new(0),
    })
}

/// The answer of a node holding nothing to a read, or to a batch of `n` reads.
fn holding_nothing(batch: Option<usize>) -> PeerResponse {
    match batch {
        Some(n) => PeerResponse::Batch(vec![PeerResponse::Object(None); n]),
        None => PeerResponse::Object(None),
    }
}

async fn transport<H: Handler<PeerRequest, PeerResponse>>(
    ca: &std::path::Path,
    name: &str,
    handler: Arc<H>,
) -> Transport<PeerRequest, PeerResponse> {
    let node = NodeId::new(name).unwrap();
    let config = TransportConfig {
        node: node.clone(),
        region: Region::new("local").unwrap(),
        bind: "127.0.0.1:0".parse().unwrap(),
        tls: issue_node_certificate(ca, &node, &Region::new("local").unwrap()).unwrap(),
        wan: WanModel::disabled(),
        request_timeout: Duration::from_secs(10),
    };
    Transport::start(config, handler).await.unwrap()
}

/// The peer requests of a build before digest reads: `PeerRequest` without its last
/// variant (the others as placeholders: only `Get` and `Batch` are sent here).
#[derive(serde::Serialize, serde::Deserialize)]
enum OldRequest {
    Get { key: ObjectKey },
    Mint(()),
    Merge(()),
    Swim(()),
    Hint(()),
    Handoff(()),
    AntiEntropy(()),
    CollectTombstones(()),
    FetchKeys(()),
    FetchPartition(()),
    Apply(()),
    Batch(Vec<OldRequest>),
}

/// A node of that build: it holds nothing.
struct OldNode;

impl Handler<OldRequest, PeerResponse> for OldNode {
    async fn handle(&self, _from: PeerInfo, request: OldRequest) -> PeerResponse {
        match request {
            OldRequest::Batch(requests) => holding_nothing(Some(requests.len())),
            _ => holding_nothing(None),
        }
    }
}

#[tokio::test]
async fn a_peer_that_refuses_digests_is_asked_for_objects_for_a_while() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let ca = tempfile::tempdir().unwrap();
        create_cluster_ca(ca.path()).unwrap();
        let (_gate, open) = watch::channel(true);
        let client = transport(ca.path(), "client", gated(open)).await;
        let old_id = NodeId::new("old").unwrap();
        let config = TransportConfig {
            node: old_id.clone(),
            region: Region::new("local").unwrap(),
            bind: "127.0.0.1:0".parse().unwrap(),
            tls: issue_node_certificate(ca.path(), &old_id, &Region::new("local").unwrap())
                .unwrap(),
            wan: WanModel::disabled(),
            request_timeout: Duration::from_secs(10),
        };
        let old = Transport::start(config, Arc::new(OldNode)).await.unwrap();
        client
            .set_peer(
                old_id.clone(),
                Region::new("local").unwrap(),
                old.local_addr(),
            )
            .unwrap();
        let batcher = Batcher::new(client.clone());
        let key = ObjectKey::kv(b"k");
        assert!(batcher.digests(&old_id));
        // It answers a `Get`; nothing is noted.
        let get = batcher
            .send(&old_id, PeerRequest::Get { key: key.clone() })
            .await;
        assert!(matches!(get, Ok(PeerResponse::Object(None))), "{get:?}");
        assert!(batcher.digests(&old_id));
        let digest = batcher
            .send(&old_id, PeerRequest::Digest { key: key.clone() })
            .await;
        assert!(
            digest.is_err(),
            "an old node cannot read a digest request: {digest:?}"
        );
        assert!(
            !batcher.digests(&old_id),
            "it is no longer asked for digests"
        );
        // Another peer is not affected, and the old one still answers objects.
        assert!(batcher.digests(&NodeId::new("other").unwrap()));
        let get = batcher.send(&old_id, PeerRequest::Get { key }).await;
        assert!(matches!(get, Ok(PeerResponse::Object(None))), "{get:?}");
        client.shutdown().await;
        old.shutdown().await;
    })
    .await
    .expect("test exceeded its time bound");
}

#[tokio::test]
async fn requests_queued_behind_full_flights_travel_together_and_all_get_answers() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let ca = tempfile::tempdir().unwrap();
        create_cluster_ca(ca.path()).unwrap();
        let (gate, open) = watch::channel(false);
        let server_handler = gated(open.clone());
        let client = transport(ca.path(), "client", gated(open)).await;
        let server = transport(ca.path(), "server", server_handler.clone()).await;
        let server_id = NodeId::new("server").unwrap();
        client
            .set_peer(
                server_id.clone(),
                Region::new("local").unwrap(),
                server.local_addr(),
            )
            .unwrap();
        let batcher = Arc::new(Batcher::new(client.clone()));
        let total = 200;
        let mut requests = tokio::task::JoinSet::new();
        for index in 0..total {
            let batcher = batcher.clone();
            let to = server_id.clone();
            requests.spawn(async move {
                let key = ObjectKey::kv(format!("key-{index}").as_bytes());
                batcher.send(&to, PeerRequest::Get { key }).await
            });
        }
        // The first flights hold the server; everything else queues behind them.
        while server_handler.frames.load(Ordering::SeqCst) < BATCHES_IN_FLIGHT_PER_PEER {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gate.send(true).unwrap();
        while let Some(answer) = requests.join_next().await {
            assert!(matches!(answer.unwrap(), Ok(PeerResponse::Object(None))));
        }
        let frames = server_handler.frames.load(Ordering::SeqCst);
        assert_eq!(server_handler.requests.load(Ordering::SeqCst), total);
        assert!(frames < total / 2, "{frames} frames for {total} requests");
        let largest = server_handler.largest.load(Ordering::SeqCst);
        assert!(
            largest > 1 && largest <= BATCH_REQUESTS_MAX,
            "largest batch {largest}"
        );
        // A write is not a read: the kinds never share a batch.
        assert_eq!(
            Kind::of(&PeerRequest::Get {
                key: ObjectKey::kv(b"k")
            }),
            Some(Kind::Read)
        );
        client.shutdown().await;
        server.shutdown().await;
    })
    .await
    .expect("test exceeded its time bound");
}

/// Answers every read, once the gate opens, with an object holding a value of
/// `value_bytes`: one fits in a frame, two do not. Counts what arrives at once.
struct Bulky {
    open: watch::Receiver<bool>,
    value_bytes: usize,
    frames: AtomicUsize,
    requests: AtomicUsize,
    batches: AtomicUsize,
}

impl Handler<PeerRequest, PeerResponse> for Bulky {
    async fn handle(&self, _from: PeerInfo, request: PeerRequest) -> PeerResponse {
        self.frames.fetch_add(1, Ordering::SeqCst);
        match &request {
            PeerRequest::Batch(requests) => {
                self.batches.fetch_add(1, Ordering::SeqCst);
                self.requests.fetch_add(requests.len(), Ordering::SeqCst);
            }
            _ => {
                self.requests.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        let object =
            || PeerResponse::Object(Some(crate::object::sample_kv(&vec![5; self.value_bytes])));
        match request {
            PeerRequest::Batch(requests) => {
                PeerResponse::Batch(requests.iter().map(|_| object()).collect())
            }
            _ => object(),
        }
    }
}

#[tokio::test]
async fn a_batch_whose_answer_is_too_large_is_retried_request_by_request() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let ca = tempfile::tempdir().unwrap();
        create_cluster_ca(ca.path()).unwrap();
        let (gate, open) = watch::channel(true);
        let bulky = Arc::new(Bulky {
            open: open.clone(),
            value_bytes: crate::limits::FRAME_BYTES_MAX / 2,
            frames: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            batches: AtomicUsize::new(0),
        });
        let client = transport(ca.path(), "client", gated(open)).await;
        let server = transport(ca.path(), "server", bulky.clone()).await;
        let server_id = NodeId::new("server").unwrap();
        let local = Region::new("local").unwrap();
        client
            .set_peer(server_id.clone(), local, server.local_addr())
            .unwrap();
        // The answering side reports the oversized answer as such.
        let get = |index: usize| PeerRequest::Get {
            key: ObjectKey::kv(format!("key-{index}").as_bytes()),
        };
        let direct = client
            .request(&server_id, &PeerRequest::Batch((0..2).map(get).collect()))
            .await;
        assert!(
            matches!(
                direct,
                Err(TransportError::Refused {
                    reason: Refusal::ResponseTooLarge,
                    ..
                })
            ),
            "{direct:?}"
        );
        // Through the batcher, with the server holding every request until all
        // have left the client: whatever batches form are too large to answer,
        // and each of their reads is asked again alone.
        gate.send(false).unwrap();
        let (frames, requests, batches) = (
            bulky.frames.load(Ordering::SeqCst),
            bulky.requests.load(Ordering::SeqCst),
            bulky.batches.load(Ordering::SeqCst),
        );
        let batcher = Arc::new(Batcher::new(client.clone()));
        let total = BATCHES_IN_FLIGHT_PER_PEER + 3;
        let mut answers = tokio::task::JoinSet::new();
        for index in 0..total {
            let batcher = batcher.clone();
            let to = server_id.clone();
            answers.spawn(async move { batcher.send(&to, get(index)).await });
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = bulky.requests.load(Ordering::SeqCst) - requests;
            let flights = bulky.frames.load(Ordering::SeqCst) - frames;
            let queued = batcher_queue_len(&batcher, &server_id);
            // Every flight taken and the rest queued (one held by the drain), or all
            // arrived: nothing is still on its way into the batcher.
            let settled = (flights >= BATCHES_IN_FLIGHT_PER_PEER && arrived + queued + 1 >= total)
                || arrived == total;
            if settled || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gate.send(true).unwrap();
        while let Some(answer) = answers.join_next().await {
            let answer = answer.unwrap();
            let Ok(PeerResponse::Object(Some(object))) = &answer else {
                panic!("every read gets its object: {answer:?}");
            };
            let values = crate::object::live_values(object.as_kv().unwrap())
                .iter()
                .map(|blob| blob.0.len())
                .collect::<Vec<_>>();
            assert_eq!(values, vec![crate::limits::FRAME_BYTES_MAX / 2]);
        }
        assert!(
            bulky.batches.load(Ordering::SeqCst) > batches,
            "some reads were sent as a batch first"
        );
        client.shutdown().await;
        server.shutdown().await;
    })
    .await
    .expect("test exceeded its time bound");
}

/// Requests waiting in the batcher's read queue to `to`.
fn batcher_queue_len(batcher: &Batcher, to: &NodeId) -> usize {
    lock(&batcher.queues)
        .get(&(to.clone(), Kind::Read))
        .map_or(0, |queue| BATCH_QUEUE_PER_PEER - queue.capacity())
}
