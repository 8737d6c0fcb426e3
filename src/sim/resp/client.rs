//! One RESP client of the sim: a `redis` crate connection to a node of its own region
//! (on a failure, or no answer in time, it reconnects to the region's next node, a
//! bounded number of attempts per operation), paced at the mix's rate, sending
//! `SET` (some with a long `EX`), `DEL`, `INCR`/`INCRBY`, `HSET`, `HDEL`, `GET` and
//! `HGET` on keys only it writes. It records every write with whether it was
//! acknowledged and how many times it was sent, and every read with what it saw; it
//! judges nothing (`history` and `verify` do).

use super::history::{
    value_of, version_of, Counter, CounterRead, CounterWrite, Register, RegisterRead, RegisterWrite,
};
use super::RespMix;
use crate::limits::{
    SIM_RESP_ATTEMPTS_MAX, SIM_RESP_CONNECT_TIMEOUT_MS, SIM_RESP_FAILED_PAUSE_MS,
    SIM_RESP_RECORDS_PER_CLIENT_MAX, SIM_RESP_RESPONSE_TIMEOUT_MS,
};
use crate::sim::report::Table;
use crate::sim::routes::Routes;
use crate::sim::sessions::Shared;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// TTL of the `SET ... EX` writes: far beyond any run, so no key expires during one.
pub const SET_EX_TTL_S: u64 = 86_400;
/// Error answers a client keeps as examples for the report.
pub const ERRORS_KEPT_MAX: usize = 4;

/// One client.
#[derive(Clone, Debug)]
pub struct RespClientSpec {
    /// Index of its region in `Shared::regions`.
    pub region: u8,
    pub index: u32,
    pub mix: RespMix,
    pub seed: u64,
}

/// One finished operation, for the timeline.
#[derive(Clone, Copy, Debug)]
pub struct OpSample {
    pub start_us: u64,
    pub end_us: u64,
    pub ok: bool,
}

/// A finished client.
pub struct RespClientResult {
    pub region: u8,
    pub index: u32,
    /// String keys first, then every field of every hash key.
    pub registers: Vec<Register>,
    pub counters: Vec<Counter>,
    pub table: Table,
    pub samples: Vec<OpSample>,
    /// The client stopped early because its record list was full.
    pub truncated: bool,
    /// The first error answers it got (timeouts and refused connections are not kept).
    pub errors: Vec<String>,
}

/// What a client does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    Set,
    SetEx,
    Del,
    Incr,
    HSet,
    HDel,
    Get,
    HGet,
    CounterGet,
}

/// The mix, in percent.
const PICKS: [(Pick, u32); 9] = [
    (Pick::Set, 20),
    (Pick::SetEx, 5),
    (Pick::Del, 5),
    (Pick::Incr, 15),
    (Pick::HSet, 15),
    (Pick::HDel, 5),
    (Pick::Get, 15),
    (Pick::HGet, 12),
    (Pick::CounterGet, 8),
];

fn pick(roll: u32) -> Pick {
    let mut left = roll;
    for (pick, weight) in PICKS {
        if left < weight {
            return pick;
        }
        left -= weight;
    }
    Pick::Get
}

/// The connection to a node of the client's region, and which node is next.
struct Link {
    region: String,
    routes: Routes,
    turn: usize,
    connection: Option<MultiplexedConnection>,
}

impl Link {
    /// The open connection, or a new one to the region's current node.
    async fn connection(&mut self) -> Option<MultiplexedConnection> {
        if let Some(connection) = &self.connection {
            return Some(connection.clone());
        }
        let nodes = self.routes.resp_known(&self.region);
        let node = *nodes.get(self.turn % nodes.len().max(1))?;
        match connect(node).await {
            Some(connection) => {
                self.connection = Some(connection.clone());
                Some(connection)
            }
            None => {
                self.turn += 1;
                None
            }
        }
    }

    /// The node failed or took too long: the next attempt goes to the next node.
    fn failed(&mut self) {
        self.connection = None;
        self.turn += 1;
    }

    /// Sends `command` (at most `SIM_RESP_ATTEMPTS_MAX` times); its answer, and how
    /// many attempts reached, or may have reached, a node.
    async fn send<T: FromRedisValue>(
        &mut self,
        command: &Cmd,
        errors: &mut Vec<String>,
    ) -> (Option<T>, u32) {
        let mut sends = 0;
        for _ in 0..SIM_RESP_ATTEMPTS_MAX {
            let Some(mut connection) = self.connection().await else {
                continue;
            };
            sends += 1;
            let timeout = Duration::from_millis(SIM_RESP_RESPONSE_TIMEOUT_MS);
            match tokio::time::timeout(timeout, command.query_async::<T>(&mut connection)).await {
                Ok(Ok(answer)) => return (Some(answer), sends),
                Ok(Err(error)) => {
                    if !(error.is_io_error() || error.is_timeout() || error.is_connection_dropped())
                        && errors.len() < ERRORS_KEPT_MAX
                    {
                        errors.push(error.to_string());
                    }
                    self.failed();
                }
                Err(_) => self.failed(),
            }
        }
        (None, sends)
    }
}

/// A connection to `node`, within the connect timeout.
pub(super) async fn connect(node: SocketAddr) -> Option<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{node}/")).ok()?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_millis(SIM_RESP_CONNECT_TIMEOUT_MS))
        .set_response_timeout(Duration::from_millis(SIM_RESP_RESPONSE_TIMEOUT_MS));
    let connecting = client.get_multiplexed_async_connection_with_config(&config);
    let timeout = Duration::from_millis(SIM_RESP_CONNECT_TIMEOUT_MS);
    tokio::time::timeout(timeout, connecting).await.ok()?.ok()
}

/// The keys of client `index` of `region`: `kind` is `s` (string), `n` (counter) or
/// `h` (hash).
pub fn key_name(region: &str, index: u32, kind: char, number: u32) -> String {
    format!("simresp:{region}:c{index}:{kind}{number}")
}

struct Client {
    spec: RespClientSpec,
    shared: Shared,
    link: Link,
    rng: StdRng,
    result: RespClientResult,
    records: usize,
}

/// Runs one client until the run stops or its records are full.
pub async fn run_client(spec: RespClientSpec, shared: Shared) -> RespClientResult {
    let region = shared.regions[spec.region as usize].clone();
    let mix = &spec.mix;
    let mut registers = Vec::new();
    for number in 0..mix.keys_per_kind {
        registers.push(Register {
            key: key_name(&region, spec.index, 's', number),
            ..Register::default()
        });
    }
    for number in 0..mix.keys_per_kind {
        for field in 0..mix.fields_per_hash {
            registers.push(Register {
                key: key_name(&region, spec.index, 'h', number),
                field: Some(format!("f{field}")),
                ..Register::default()
            });
        }
    }
    let counters = (0..mix.keys_per_kind)
        .map(|number| Counter {
            key: key_name(&region, spec.index, 'n', number),
            ..Counter::default()
        })
        .collect();
    let mut client = Client {
        link: Link {
            region,
            routes: shared.routes.clone(),
            turn: spec.index as usize,
            connection: None,
        },
        rng: StdRng::seed_from_u64(spec.seed),
        result: RespClientResult {
            region: spec.region,
            index: spec.index,
            registers,
            counters,
            table: Table::new(),
            samples: Vec::new(),
            truncated: false,
            errors: Vec::new(),
        },
        records: 0,
        spec,
        shared,
    };
    client.run().await;
    client.result
}

impl Client {
    async fn run(&mut self) {
        let period = Duration::from_secs_f64(1.0 / self.spec.mix.ops_per_s);
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*self.shared.stop.borrow() {
            ticks.tick().await;
            if *self.shared.stop.borrow() {
                break;
            }
            if self.records >= SIM_RESP_RECORDS_PER_CLIENT_MAX {
                self.result.truncated = true;
                break;
            }
            let started = Instant::now();
            let faulted = self.shared.faulted.any();
            let (row, ok) = self.step().await;
            self.finish(row, ok, started, faulted);
            if !ok {
                tokio::time::sleep(Duration::from_millis(SIM_RESP_FAILED_PAUSE_MS)).await;
            }
        }
    }

    /// One operation: its latency row, and whether it was answered.
    async fn step(&mut self) -> (&'static str, bool) {
        let mix = &self.spec.mix;
        let strings = mix.keys_per_kind as usize;
        let fields = strings * mix.fields_per_hash as usize;
        let string = self.rng.gen_range(0..strings);
        let field = strings + self.rng.gen_range(0..fields);
        let counter = self.rng.gen_range(0..mix.keys_per_kind as usize);
        match pick(self.rng.gen_range(0..100)) {
            Pick::Set => ("resp_set", self.write(string, true, false).await),
            Pick::SetEx => ("resp_set", self.write(string, true, true).await),
            Pick::Del => ("resp_del", self.write(string, false, false).await),
            Pick::HSet => ("resp_hset", self.write(field, true, false).await),
            Pick::HDel => ("resp_hdel", self.write(field, false, false).await),
            Pick::Incr => ("resp_incr", self.increment(counter).await),
            Pick::Get => ("resp_get", self.read(string).await),
            Pick::HGet => ("resp_hget", self.read(field).await),
            Pick::CounterGet => ("resp_get", self.read_counter(counter).await),
        }
    }

    /// `SET`/`DEL` on a string register, `HSET`/`HDEL` on a field register.
    async fn write(&mut self, index: usize, set: bool, expires: bool) -> bool {
        let register = &self.result.registers[index];
        let version = register.writes.len() as u64 + 1;
        let mut command = match (&register.field, set) {
            (None, true) => redis::cmd("SET"),
            (None, false) => redis::cmd("DEL"),
            (Some(_), true) => redis::cmd("HSET"),
            (Some(_), false) => redis::cmd("HDEL"),
        };
        command.arg(&register.key);
        if let Some(field) = &register.field {
            command.arg(field);
        }
        if set {
            command.arg(value_of(version));
        }
        if expires {
            command.arg("EX").arg(SET_EX_TTL_S);
        }
        let (answer, sends) = self
            .link
            .send::<Value>(&command, &mut self.result.errors)
            .await;
        let acked = answer.is_some();
        self.result.registers[index].writes.push(RegisterWrite {
            version: set.then_some(version),
            acked,
            sends,
        });
        self.records += 1;
        acked
    }

    async fn increment(&mut self, index: usize) -> bool {
        let amount: u64 = if self.rng.gen_bool(0.5) {
            1
        } else {
            self.rng.gen_range(2..=5)
        };
        let counter = &self.result.counters[index];
        let mut command = if amount == 1 {
            redis::cmd("INCR")
        } else {
            redis::cmd("INCRBY")
        };
        command.arg(&counter.key);
        if amount != 1 {
            command.arg(amount);
        }
        let (answer, sends) = self
            .link
            .send::<i64>(&command, &mut self.result.errors)
            .await;
        self.result.counters[index].writes.push(CounterWrite {
            amount,
            sends,
            acked: answer.is_some(),
        });
        self.records += 1;
        answer.is_some()
    }

    /// `GET` of a string register, `HGET` of a field register.
    async fn read(&mut self, index: usize) -> bool {
        let register = &self.result.registers[index];
        let after_writes = register.writes.len() as u32;
        let mut command = match &register.field {
            None => redis::cmd("GET"),
            Some(_) => redis::cmd("HGET"),
        };
        command.arg(&register.key);
        if let Some(field) = &register.field {
            command.arg(field);
        }
        let (answer, _) = self
            .link
            .send::<Option<Vec<u8>>>(&command, &mut self.result.errors)
            .await;
        let Some(value) = answer else {
            return false;
        };
        self.result.registers[index].reads.push(RegisterRead {
            after_writes,
            observed: value.map(|bytes| version_of(&bytes)),
        });
        self.records += 1;
        true
    }

    async fn read_counter(&mut self, index: usize) -> bool {
        let counter = &self.result.counters[index];
        let after_writes = counter.writes.len() as u32;
        let mut command = redis::cmd("GET");
        command.arg(&counter.key);
        let (answer, _) = self
            .link
            .send::<Option<i64>>(&command, &mut self.result.errors)
            .await;
        let Some(value) = answer else {
            return false;
        };
        self.result.counters[index].reads.push(CounterRead {
            after_writes,
            observed: value.unwrap_or(0),
        });
        self.records += 1;
        true
    }

    /// Counts a finished operation in the latency table, the timeline and the progress.
    fn finish(&mut self, row: &'static str, ok: bool, started: Instant, faulted: bool) {
        let region = self.link.region.clone();
        let micros = started.elapsed().as_micros() as u64;
        let mut rows = vec![row.to_string()];
        if faulted {
            rows.push(format!("{row}_during_fault"));
        }
        for row in rows {
            let stats = self.result.table.entry((region.clone(), row)).or_default();
            if ok {
                stats.record_ok(micros);
            } else {
                stats.errors += 1;
            }
        }
        let start_us = started.duration_since(self.shared.epoch).as_micros() as u64;
        if self.result.samples.len() < SIM_RESP_RECORDS_PER_CLIENT_MAX {
            self.result.samples.push(OpSample {
                start_us,
                end_us: start_us + micros,
                ok,
            });
        } else {
            self.result.truncated = true;
        }
        self.shared.live.record(&region, micros, ok);
    }
}

#[cfg(test)]
mod tests;
