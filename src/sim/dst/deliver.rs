//! What a delivered message does: replicas serve mint, replicate, repair and read
//! (storing before they answer), coordinators advance their state machines, clients
//! record outcomes for the checker and start their next request.

use super::client::Waiting;
use super::docs;
use super::driver::ClientRequest;
use super::network::{Address, Change, Event, Minted, OpId, Outcome, Payload};
use super::world::World;
use super::{DstViolation, ViolationKind};
use crate::clock::{Dot, Hlc};
use crate::coordinator::round::ReadAnswer;
use crate::object::{Blob, Class, Object, ObjectKey};
use rand::Rng;

impl World {
    pub(super) fn deliver(
        &mut self,
        from: Address,
        to: Address,
        payload: Payload,
    ) -> Result<(), DstViolation> {
        let name = payload.name();
        let detail = payload.detail();
        match to {
            Address::Client(client) => {
                self.trace
                    .record(format!("{} {from:?}>c{client} {name} {detail}", self.now));
                match payload {
                    Payload::ClientReply { op, outcome } => self.client_reply(client, op, outcome),
                    _ => Ok(()),
                }
            }
            Address::Node(node) => {
                let up = self.nodes[node].up;
                self.trace.record(format!(
                    "{} {from:?}>n{node} {name} up={up} {detail}",
                    self.now
                ));
                if !up {
                    self.net.lost += 1;
                    return Ok(());
                }
                self.at_node(node, from, payload)
            }
        }
    }

    fn at_node(
        &mut self,
        node: usize,
        from: Address,
        payload: Payload,
    ) -> Result<(), DstViolation> {
        let sender = match from {
            Address::Node(sender) => sender,
            Address::Client(_) => usize::MAX,
        };
        let effects = match payload {
            Payload::ClientGet { op, key } => {
                let client = client_of(from);
                let plan = self.plan(node, &key);
                let request = ClientRequest { op, client, key };
                let level = self.config.read_level;
                let coordinator = &mut self.nodes[node].coordinator;
                coordinator.get(request, plan, level, self.now)
            }
            Payload::ClientPut { op, key, change } => {
                let client = client_of(from);
                let plan = self.plan(node, &key);
                let request = ClientRequest { op, client, key };
                let level = self.config.write_level;
                let wall_ms = self.now + self.nodes[node].skew_ms;
                let coordinator = &mut self.nodes[node].coordinator;
                coordinator.put(request, plan, level, change, self.now, wall_ms)
            }
            Payload::Minted {
                req,
                minted,
                durable,
            } => self.nodes[node]
                .coordinator
                .on_minted(req, sender, minted, durable, self.now),
            Payload::Flushed { req } => {
                self.nodes[node].store.flush();
                self.nodes[node].coordinator.on_stored(req, node, self.now)
            }
            Payload::Armed { life } => {
                let armed = &mut self.nodes[node];
                if armed.arming && armed.lives == life {
                    armed.sends_early = true;
                }
                return Ok(());
            }
            Payload::Stored { req } => self.nodes[node]
                .coordinator
                .on_stored(req, sender, self.now),
            Payload::ReadReply { req, object, phase } => {
                let answer = ReadAnswer::Object(object);
                let coordinator = &mut self.nodes[node].coordinator;
                coordinator.on_read_reply(req, sender, phase, answer, self.now)
            }
            Payload::DigestReply { req, digest, phase } => {
                let answer = ReadAnswer::Digest(digest);
                let coordinator = &mut self.nodes[node].coordinator;
                coordinator.on_read_reply(req, sender, phase, answer, self.now)
            }
            replica_request => return self.at_replica(node, from, replica_request),
        };
        self.apply(node, effects)
    }

    /// The replica side: store first, then answer (an answer means durable).
    fn at_replica(
        &mut self,
        node: usize,
        from: Address,
        payload: Payload,
    ) -> Result<(), DstViolation> {
        let partitions = self.view.current.partition_count();
        let answer = match payload {
            Payload::Mint {
                req,
                key,
                change,
                at,
            } => {
                let minted = self.make(node, &key, change, at)?;
                // For its own coordinator the node answers before its flush ends, once
                // its record says it may; the first such mint starts writing it.
                let local = from == Address::Node(node);
                let durable = !(local && self.nodes[node].sends_early);
                if local && !self.nodes[node].sends_early && !self.nodes[node].arming {
                    self.nodes[node].arming = true;
                    let life = self.nodes[node].lives;
                    self.send_to_itself_later(node, Payload::Armed { life });
                }
                if durable {
                    self.nodes[node].store.flush();
                } else {
                    self.send_to_itself_later(node, Payload::Flushed { req });
                }
                Payload::Minted {
                    req,
                    minted: Some(Box::new(minted)),
                    durable,
                }
            }
            Payload::Replicate { req, key, object } => {
                let partition = key.partition(partitions);
                self.nodes[node]
                    .store
                    .merge(partition, &key, &object)
                    .map_err(|error| self.internal(format!("replication refused: {error}")))?;
                Payload::Stored { req }
            }
            Payload::Hint {
                req,
                owner,
                key,
                object,
            } => {
                if !self.keep_hint(node, owner, key, &object)? {
                    return Ok(());
                }
                Payload::Stored { req }
            }
            Payload::Repair { key, object } => {
                let partition = key.partition(partitions);
                self.nodes[node]
                    .store
                    .merge(partition, &key, &object)
                    .map_err(|error| self.internal(format!("read repair refused: {error}")))?;
                return Ok(());
            }
            Payload::Read { req, key, phase } => {
                let partition = key.partition(partitions);
                let object = self.nodes[node].store.get(partition, &key).cloned();
                Payload::ReadReply { req, object, phase }
            }
            Payload::ReadDigest { req, key, phase } => {
                let partition = key.partition(partitions);
                let store = &self.nodes[node].store;
                let digest = store.get(partition, &key).map(Object::digest);
                Payload::DigestReply { req, digest, phase }
            }
            _ => return Ok(()),
        };
        self.net
            .send(self.now, &mut self.rng, Address::Node(node), from, answer);
        Ok(())
    }

    /// The replica `node` makes a write: mints a kv version or applies a document
    /// operation, and tells the checker.
    fn make(
        &mut self,
        node: usize,
        key: &ObjectKey,
        change: Change,
        at: Hlc,
    ) -> Result<Minted, DstViolation> {
        let partition = key.partition(self.view.current.partition_count());
        let bytes = key.storage_bytes();
        let store = &mut self.nodes[node].store;
        match change {
            Change::Kv { value, context } => {
                let (dot, stored) = store
                    .mint(partition, key, &context, value, at)
                    .map_err(|error| self.internal(format!("mint refused: {error}")))?;
                self.checker
                    .minted(&bytes, dot, &context)
                    .map_err(|detail| self.internal(detail))?;
                Ok(Minted {
                    dot: Some(dot),
                    object: stored.clone(),
                    stored,
                })
            }
            Change::Doc(op) => {
                let (stored, delta) = store
                    .apply(partition, key, &op, at)
                    .map_err(|error| self.internal(format!("operation refused: {error}")))?;
                self.documents.applied(&bytes, &op, self.event);
                Ok(Minted {
                    dot: None,
                    stored,
                    object: delta,
                })
            }
        }
    }

    /// Delivers `payload` from `node` to itself within `flush_ms_max`: the end of a
    /// flush of its own.
    fn send_to_itself_later(&mut self, node: usize, payload: Payload) {
        let at = self.now + self.rng.gen_range(1..=self.config.flush_ms_max.max(1));
        let to = Address::Node(node);
        let payload = Box::new(payload);
        self.net.schedule(
            at,
            Event::Deliver {
                from: to,
                to,
                payload,
            },
        );
    }

    fn internal(&self, detail: String) -> DstViolation {
        self.violation(ViolationKind::Internal, detail)
    }

    /// A client starts its next request, unless the workload is over.
    pub(super) fn client_wake(&mut self, client: usize) -> Result<(), DstViolation> {
        let full = self.checker.full() || self.documents.full();
        if self.workload_over || full || self.clients[client].waiting.is_some() {
            return Ok(());
        }
        let key = self.draw_key(client);
        let node = self.serving_node();
        self.next_op += 1;
        let op: OpId = self.next_op;
        let is_put = self.rng.gen_bool(0.5);
        let mut doc_op = None;
        let payload = if is_put {
            let state = &mut self.clients[client];
            state.puts += 1;
            let unique = format!("c{client}-{}", state.puts);
            let change = match key.class {
                Class::Kv => Change::Kv {
                    value: Blob(unique.into_bytes()),
                    context: state.context(&key),
                },
                class => {
                    let op = docs::draw(&mut self.rng, class, unique, self.now);
                    doc_op = Some(op.clone());
                    Change::Doc(op)
                }
            };
            Payload::ClientPut {
                op,
                key: key.clone(),
                change,
            }
        } else {
            Payload::ClientGet {
                op,
                key: key.clone(),
            }
        };
        self.trace.record(format!(
            "{} c{client} op{op} {} {} via n{node}",
            self.now,
            payload.name(),
            String::from_utf8_lossy(&key.key)
        ));
        self.clients[client].waiting = Some(Waiting {
            op,
            key,
            is_put,
            doc_op,
            started: self.event,
        });
        let from = Address::Client(client);
        self.net
            .send(self.now, &mut self.rng, from, Address::Node(node), payload);
        let at = self.now + 2 * self.config.request_timeout_ms + 50;
        self.net.schedule(at, Event::ClientTimeout { client, op });
        Ok(())
    }

    /// The key of a client's next request: a kv key for a kv client, a session
    /// document's for a document client (past `config.clients`).
    fn draw_key(&mut self, client: usize) -> ObjectKey {
        let kv = self.config.keys.min(self.keys.len());
        let index = match client < self.config.clients {
            true => self.rng.gen_range(0..kv),
            false => self.rng.gen_range(kv..self.keys.len()),
        };
        self.keys[index].clone()
    }

    fn next_request(&mut self, client: usize) {
        let at = self.now + self.rng.gen_range(2..=40);
        self.net.schedule(at, Event::ClientWake { client });
    }

    pub(super) fn client_timeout(&mut self, client: usize, op: OpId) -> Result<(), DstViolation> {
        let state = &mut self.clients[client];
        if state
            .waiting
            .as_ref()
            .is_some_and(|waiting| waiting.op == op)
        {
            let waiting = state.waiting.take().expect("checked above");
            if waiting.is_put {
                self.report.puts_failed += 1;
            } else {
                self.report.gets_failed += 1;
            }
            self.trace
                .record(format!("{} c{client} op{op} timed out", self.now));
            self.next_request(client);
        }
        Ok(())
    }

    fn client_reply(
        &mut self,
        client: usize,
        op: OpId,
        outcome: Outcome,
    ) -> Result<(), DstViolation> {
        let state = &mut self.clients[client];
        if state
            .waiting
            .as_ref()
            .is_none_or(|waiting| waiting.op != op)
        {
            return Ok(());
        }
        let waiting = state.waiting.take().expect("checked above");
        let key_bytes = waiting.key.storage_bytes();
        match outcome {
            Outcome::Put {
                dot,
                stored,
                hinted,
            } => {
                if let Some(kv) = stored.as_kv() {
                    self.clients[client].remember(&waiting.key, kv.context().clone());
                }
                self.trace
                    .record(format!("{} c{client} op{op} acked {dot:?}", self.now));
                self.record_ack(waiting, dot, hinted)?;
            }
            Outcome::Get { merged } => {
                self.report.gets_ok += 1;
                let started = waiting.started;
                let checked = match waiting.key.class {
                    Class::Kv => self
                        .checker
                        .check_read(&key_bytes, started, merged.as_ref()),
                    _ => self
                        .documents
                        .check_read(&key_bytes, started, merged.as_ref()),
                };
                checked.map_err(|detail| self.violation(ViolationKind::LostWrite, detail))?;
                let context = merged
                    .as_ref()
                    .and_then(|object| object.as_kv())
                    .map(|kv| kv.context().clone())
                    .unwrap_or_default();
                self.clients[client].remember(&waiting.key, context);
                self.trace
                    .record(format!("{} c{client} op{op} read ok", self.now));
            }
            Outcome::Failed { why } => {
                if waiting.is_put {
                    self.report.puts_failed += 1;
                } else {
                    self.report.gets_failed += 1;
                }
                self.trace
                    .record(format!("{} c{client} op{op} failed: {why}", self.now));
            }
        }
        self.next_request(client);
        Ok(())
    }
}

impl World {
    /// Tells the checkers a client saw its write acknowledged: a kv version's dot, or
    /// the document operation it sent.
    fn record_ack(
        &mut self,
        waiting: Waiting,
        dot: Option<Dot>,
        hinted: bool,
    ) -> Result<(), DstViolation> {
        self.report.puts_acked += 1;
        self.report.puts_hinted += u64::from(hinted);
        let key = waiting.key.storage_bytes();
        let partition = waiting.key.partition(self.view.current.partition_count());
        let across = self
            .moved
            .as_ref()
            .is_some_and(|(event, moved)| *event > waiting.started && moved.contains(&partition));
        match (dot, waiting.doc_op) {
            (Some(dot), None) => {
                self.checker.acked(&key, dot, self.event, hinted);
                if across {
                    self.checker.planned_before_change(&key);
                }
            }
            (None, Some(op)) => {
                let (issued, acked) = (waiting.started, self.event);
                self.documents.acked(&key, op, issued, acked, hinted);
                if across {
                    self.documents.planned_before_change(&key);
                }
            }
            _ => return Err(self.internal("a write acknowledged as the wrong kind".into())),
        }
        Ok(())
    }
}

fn client_of(from: Address) -> usize {
    match from {
        Address::Client(client) => client,
        Address::Node(_) => usize::MAX,
    }
}
