//! What the sweeper costs per expired session on one node, and that it does not grow
//! with the live keys: an ignored test (run it in release) that fills a sled store
//! through a replica with `EXPIRED` expired and `LIVE` live session documents and then
//! sweeps every expired one as the sweeper does locally: the index pass (read, check),
//! the read of the document, the expire write (tombstone, index entry removed). The
//! quorum read and write to the other replicas, which a cluster adds, are not in it.
//!
//! `CARTWHEEL_SWEEP_EXPIRED` and `CARTWHEEL_SWEEP_LIVE` set the counts (default 100 K
//! and 10 K); it prints CPU (process and sweeping thread) and wall time per session.

use super::*;
use crate::clock::{Actor, Hlc};
use crate::replica::trees::Trees;
use crate::replica::Replica;
use crate::storage::{CommitGate, Durability, SledStorage, StorageOptions};
use std::time::Instant;

const PARTITIONS: u32 = 1024;
const NOW_MS: u64 = 100 * 24 * 3600 * 1000;

fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn cpu_ms(clock: libc::clockid_t) -> f64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid timespec for the call to fill.
    let status = unsafe { libc::clock_gettime(clock, &mut time) };
    assert_eq!(status, 0, "clock_gettime failed");
    time.tv_sec as f64 * 1e3 + time.tv_nsec as f64 / 1e6
}

fn at(wall_ms: u64) -> Hlc {
    Hlc {
        wall_ms,
        logical: 0,
    }
}

/// A session document as a login leaves it: a deadline and a preference.
fn session(deadline_ms: u64) -> DocOp {
    DocOp::User(crate::crdt::UserOp {
        deadline_ms,
        change: crate::crdt::UserChange::PrefSet {
            name: "lang".to_string(),
            value: "en".to_string(),
        },
        limits: crate::crdt::DocLimits::default(),
        op_id: None,
    })
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn sweep_cost_per_expired_session() {
    let (expired, live) = (
        count("CARTWHEEL_SWEEP_EXPIRED", 100_000),
        count("CARTWHEEL_SWEEP_LIVE", 10_000),
    );
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut options = StorageOptions::new(PARTITIONS);
    options.durability = Durability::Memory;
    let storage: Arc<dyn Storage> =
        Arc::new(SledStorage::open(directory.path(), options).expect("sled opens"));
    let gate = CommitGate::new(storage.clone(), Durability::Memory);
    let replica = Replica::new(
        Actor(1),
        PARTITIONS,
        storage.clone(),
        gate,
        Arc::new(Trees::new(8, PARTITIONS)),
    );
    let started = Instant::now();
    for i in 0..expired {
        let key = ObjectKey::new(Class::User, format!("expired-{i}").as_bytes());
        replica
            .apply_op_stored(&key, &session(1_000 + i as u64), at(500))
            .expect("write");
    }
    for i in 0..live {
        let key = ObjectKey::new(Class::User, format!("live-{i}").as_bytes());
        replica
            .apply_op_stored(&key, &session(NOW_MS * 2), at(500))
            .expect("write");
    }
    storage.flush().expect("flush");
    println!(
        "filled {expired} expired + {live} live in {:?}",
        started.elapsed()
    );

    let partitions: Vec<PartitionId> = (0..PARTITIONS).map(PartitionId).collect();
    let (process, thread) = (
        cpu_ms(libc::CLOCK_PROCESS_CPUTIME_ID),
        cpu_ms(libc::CLOCK_THREAD_CPUTIME_ID),
    );
    let (wall, mut find_ms) = (Instant::now(), 0.0);
    let (mut cursor, mut swept, mut read, mut passes) = (SweepCursor::default(), 0, 0, 0);
    loop {
        let finding = Instant::now();
        let pass = due_expired(
            storage.as_ref(),
            &partitions,
            &mut cursor,
            limits::SWEEP_INDEX_ENTRIES_MAX,
            horizon_ms(NOW_MS),
        );
        find_ms += finding.elapsed().as_secs_f64() * 1e3;
        passes += 1;
        read += pass.read;
        if pass.expired.is_empty() && cursor == SweepCursor::default() {
            break;
        }
        for (key, deadline_ms) in pass.expired {
            let Some(Object::Doc(doc)) = replica.get(&key).expect("read") else {
                panic!("the document is there");
            };
            assert!(doc.deadline_ms() <= horizon_ms(NOW_MS));
            let expire = DocOp::Expire { deadline_ms };
            replica
                .apply_op_stored(&key, &expire, at(NOW_MS))
                .expect("expire");
            swept += 1;
        }
    }
    let thread = cpu_ms(libc::CLOCK_THREAD_CPUTIME_ID) - thread;
    let process = cpu_ms(libc::CLOCK_PROCESS_CPUTIME_ID) - process;
    let wall = wall.elapsed().as_secs_f64() * 1e3;
    assert_eq!(swept, expired, "every expired session was swept once");
    // The last pass read nothing: what was swept left the index with its write.
    assert_eq!(read, expired as u64, "only due entries were read");
    let per = |ms: f64| ms * 1e3 / swept.max(1) as f64;
    println!(
        "swept {swept} (live {live}) in {passes} passes: per session {:.2} µs thread CPU, \
         {:.2} µs process CPU, {:.2} µs wall, of which finding (index read + check) {:.2} µs",
        per(thread),
        per(process),
        per(wall),
        per(find_ms),
    );
}
