//! Heap allocations per request on the RESP edge's path through a connection: the
//! decoder taking a request out of the connection's reused input buffer, the command
//! table dispatching it (a keyspace that answers at once stands for the store), and the
//! reply encoded into the reused output buffer, as `resp::server` runs them.
//!
//! Counted, not timed: a counting global allocator (per thread, so the other tests of
//! this binary do not disturb it) wraps the system's. Per request in steady state
//! (`cargo test --test resp_allocations -- --nocapture` prints them):
//!
//! | request                 | decode, before | after | all three, before | after |
//! |-------------------------|----------------|-------|-------------------|-------|
//! | GET k                   | 1              | 0     | 4                 | 1     |
//! | SET k v EX 60           | 1              | 0     | 4                 | 1     |
//! | HSET k f v              | 1              | 0     | 4                 | 1     |
//! | 16-command pipeline     | 16             | 0     | 64                | 16    |
//! | `SET k v EX 60` inline  | 12             | 0     |                   |       |
//!
//! Before issue 24's change a request paid for its argument list, its upper-cased
//! name, the keyspace's boxed future, and its reply's length or integer formatted into
//! a `String` (or `+OK`'s `String`); an inline one for each argument's copy too. Now
//! the arguments are slices of the buffer held inline, the name is matched in place
//! and replies are written straight into the output buffer: decoding allocates
//! nothing, and the one allocation left is the boxed future the `Keyspace` trait
//! returns.

use bytes::{Bytes, BytesMut};
use cartwheel::resp::codec::Decoder;
use cartwheel::resp::{Command, Commands, ConnectionState, Keyspace, Reply, ServerInfo};
use futures::future::BoxFuture;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

/// The system allocator, counting the allocations made on each thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn counted() {
    // `try_with`: a thread being torn down may still allocate.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every call is passed on to `System` unchanged; counting touches only a
// const-initialised thread-local `Cell`, which neither allocates nor reenters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        counted();
        System.realloc(pointer, layout, size)
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// A keyspace that answers as the store would, at once: a value, `+OK`, an integer.
struct Answering;

impl Keyspace for Answering {
    fn execute<'a>(
        &'a self,
        _connection: &'a mut ConnectionState,
        command: Command,
    ) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            match &*command.name {
                "GET" => Reply::Bulk(Bytes::from_static(b"a session's bytes")),
                "SET" => Reply::ok(),
                _ => Reply::Integer(1),
            }
        })
    }

    fn size(&self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async { None })
    }
}

/// One connection's reused buffers and state, served as `resp::server` serves it.
struct Connection {
    commands: Commands,
    state: ConnectionState,
    decoder: Decoder,
    input: BytesMut,
    output: BytesMut,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            commands: Commands {
                password: None,
                keyspace: Some(Arc::new(Answering)),
                server: ServerInfo {
                    node: "us-east-1".to_string(),
                    region: "us-east".to_string(),
                    tcp_port: 6379,
                },
            },
            state: ConnectionState::new(1, "127.0.0.1:5000".parse().unwrap(), true),
            decoder: Decoder::new(),
            input: BytesMut::with_capacity(16 * 1024),
            output: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// Decodes every request of `bytes`, dropping them; how many there were.
    fn decode(&mut self, bytes: &[u8]) -> usize {
        self.input.extend_from_slice(bytes);
        let mut requests = 0;
        while let Some(args) = self.decoder.decode(&mut self.input).expect("valid") {
            assert!(!args.is_empty());
            requests += 1;
        }
        requests
    }

    /// Decodes, dispatches and answers every request of `bytes`; how many there were.
    fn serve(&mut self, bytes: &[u8]) -> usize {
        self.input.extend_from_slice(bytes);
        let mut requests = 0;
        while let Some(args) = self.decoder.decode(&mut self.input).expect("valid") {
            let execute = self.commands.execute(&mut self.state, args);
            let (reply, _) = futures::executor::block_on(execute);
            reply.encode(self.state.protocol, &mut self.output);
            requests += 1;
        }
        // The answers written: the buffer is kept for the next ones.
        self.output.clear();
        requests
    }
}

/// A request as client libraries send it: an array of bulk strings.
fn request(words: &[&str]) -> Vec<u8> {
    let mut bytes = format!("*{}\r\n", words.len()).into_bytes();
    for word in words {
        bytes.extend_from_slice(format!("${}\r\n{word}\r\n", word.len()).as_bytes());
    }
    bytes
}

/// Rounds run before counting (buffers and the executor's thread state settle), and
/// rounds counted.
const WARM_UP_ROUNDS: u64 = 16;
const COUNTED_ROUNDS: u64 = 64;

/// Allocations per round of `round` in steady state, after checking it handled
/// `requests` requests.
fn per_round(requests: usize, mut round: impl FnMut() -> usize) -> f64 {
    for _ in 0..WARM_UP_ROUNDS {
        assert_eq!(round(), requests);
    }
    let before = allocations();
    for _ in 0..COUNTED_ROUNDS {
        assert_eq!(round(), requests);
    }
    (allocations() - before) as f64 / COUNTED_ROUNDS as f64
}

fn typical() -> [(&'static str, Vec<u8>, usize); 4] {
    let pipeline: Vec<u8> = (0..4)
        .flat_map(|index| {
            let key = format!("session:{index}");
            [
                request(&["GET", &key]),
                request(&["SET", &key, "a session's bytes", "EX", "60"]),
                request(&["HSET", &key, "field", "value"]),
                request(&["get", &key]),
            ]
        })
        .flatten()
        .collect();
    [
        ("GET k", request(&["GET", "k"]), 1),
        ("SET k v EX 60", request(&["SET", "k", "v", "EX", "60"]), 1),
        ("HSET k f v", request(&["HSET", "k", "f", "v"]), 1),
        ("16-command pipeline", pipeline, 16),
    ]
}

#[test]
fn decoding_a_typical_request_allocates_nothing() {
    let mut connection = Connection::new();
    for (name, bytes, requests) in typical() {
        let per_round = per_round(requests, || connection.decode(&bytes));
        eprintln!("decode {name}: {per_round} allocations");
        assert_eq!(per_round, 0.0, "{name}");
    }
}

#[test]
fn serving_a_typical_request_allocates_only_the_keyspace_future() {
    let mut connection = Connection::new();
    for (name, bytes, requests) in typical() {
        let per_round = per_round(requests, || connection.serve(&bytes));
        eprintln!("decode + dispatch + encode {name}: {per_round} allocations");
        // One per request: the keyspace's boxed future (`Keyspace::execute`).
        assert!(per_round <= requests as f64, "{name}: {per_round}");
    }
}

#[test]
fn an_inline_command_of_plain_words_allocates_nothing_to_decode() {
    let mut connection = Connection::new();
    let per_round = per_round(1, || connection.decode(b"SET k v EX 60\r\n"));
    eprintln!("decode inline SET k v EX 60: {per_round} allocations");
    assert_eq!(per_round, 0.0);
}
