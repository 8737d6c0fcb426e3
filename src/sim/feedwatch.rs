//! The change-feed subscriber of a simulation: one per region, reading `GET /v1/feed`
//! (the `kv` class) at a node of its region for the whole run, through every fault,
//! resuming at another node of the region with its position when one stops
//! answering, and remembering when it last heard of each key and when it was last told
//! it fell behind.
//!
//! The invariant it checks after the heal (`feed_changes_missed`): every key whose last
//! acknowledged kv operation wrote a value was reported by each region's feed after the
//! client sent that write, or covered by a "behind" that came after it was sent. (A key
//! left deleted may have changed nothing a region's readers could see.) A
//! client's keys are its own, so a report of its key after it sent a write is that
//! write's (or a later one's); reporting the last acknowledged write of a key covers the
//! earlier ones too.

use super::routes::Routes;
use super::workload::ClientResult;
use crate::limits;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What one region's subscriber heard.
#[derive(Debug, Default)]
struct Heard {
    /// When each key was last reported (arrival at the subscriber).
    last: HashMap<String, Instant>,
    /// When the feed last said the subscriber may have missed changes.
    behind: Option<Instant>,
    answers: u64,
    failures: u64,
    changes: u64,
    behinds: u64,
}

/// The answer of `GET /v1/feed`, as far as the subscriber reads it.
#[derive(Debug, Deserialize)]
struct Answer {
    changes: Vec<AnswerChange>,
    behind: bool,
    position: String,
}

#[derive(Debug, Deserialize)]
struct AnswerChange {
    key: String,
}

/// The subscribers of a run.
pub struct Watchers {
    regions: Vec<(String, Arc<Mutex<Heard>>)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// What the check found in one region.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RegionFeed {
    pub answers: u64,
    pub failures: u64,
    pub changes: u64,
    pub behinds: u64,
    /// Acknowledged writes neither reported nor covered by a "behind".
    pub missed: u64,
}

/// What the check found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FeedVerdict {
    pub regions: BTreeMap<String, RegionFeed>,
    pub missed: u64,
    pub examples: Vec<String>,
}

fn lock(heard: &Mutex<Heard>) -> std::sync::MutexGuard<'_, Heard> {
    heard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts one subscriber per region.
pub fn spawn(http: &reqwest::Client, routes: &Routes, regions: &[String]) -> Watchers {
    let (stop, stopped) = watch::channel(false);
    let mut watchers = Watchers {
        regions: Vec::new(),
        tasks: Vec::new(),
        stop,
    };
    for region in regions {
        let heard = Arc::new(Mutex::new(Heard::default()));
        let task = subscribe(
            http.clone(),
            routes.clone(),
            region.clone(),
            heard.clone(),
            stopped.clone(),
        );
        watchers.tasks.push(tokio::spawn(task));
        watchers.regions.push((region.clone(), heard));
    }
    watchers
}

/// Reads one region's feed until `stop`, then until an answer brings nothing new (at
/// most `SIM_FEED_DRAIN_READS_MAX` reads): what the nodes applied up to the check.
async fn subscribe(
    http: reqwest::Client,
    routes: Routes,
    region: String,
    heard: Arc<Mutex<Heard>>,
    stop: watch::Receiver<bool>,
) {
    let mut position: Option<String> = None;
    let mut turn = 0usize;
    let mut drains = 0u32;
    loop {
        let draining = *stop.borrow();
        if draining && drains >= limits::SIM_FEED_DRAIN_READS_MAX {
            return;
        }
        let nodes = routes.all(&region);
        if nodes.is_empty() {
            if draining {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let node = nodes[turn % nodes.len()];
        let wait_ms = if draining {
            200
        } else {
            limits::SIM_FEED_WAIT_MS
        };
        let mut query = vec![
            ("class", "kv".to_string()),
            ("wait_ms", wait_ms.to_string()),
        ];
        if let Some(position) = &position {
            query.push(("position", position.clone()));
        }
        let request = http
            .get(format!("http://{node}/v1/feed"))
            .query(&query)
            .timeout(Duration::from_millis(wait_ms + limits::SIM_FEED_GRACE_MS));
        let answer = match request.send().await {
            Ok(response) if response.status().is_success() => response.json::<Answer>().await.ok(),
            _ => None,
        };
        let Some(answer) = answer else {
            lock(&heard).failures += 1;
            turn += 1;
            if draining {
                drains += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        };
        let now = Instant::now();
        let quiet = answer.changes.is_empty() && !answer.behind;
        {
            let mut heard = lock(&heard);
            heard.answers += 1;
            heard.changes += answer.changes.len() as u64;
            if answer.behind {
                heard.behind = Some(now);
                heard.behinds += 1;
            }
            for change in answer.changes {
                if heard.last.len() < limits::SIM_FEED_KEYS_MAX
                    || heard.last.contains_key(&change.key)
                {
                    heard.last.insert(change.key, now);
                }
            }
        }
        position = Some(answer.position);
        if draining {
            drains += 1;
            if quiet {
                return;
            }
        }
    }
}

impl Watchers {
    /// Stops the subscribers once they have read what the nodes applied, and checks
    /// every acknowledged kv write of `results` against what each region heard.
    pub async fn finish(self, results: &[ClientResult]) -> FeedVerdict {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let mut verdict = FeedVerdict::default();
        for (region, heard) in &self.regions {
            let writes = results.iter().flat_map(ClientResult::acknowledged_writes);
            let found = judge(region, &lock(heard), writes, &mut verdict.examples);
            verdict.missed += found.missed;
            verdict.regions.insert(region.clone(), found);
        }
        verdict
    }
}

/// What `region`'s subscriber heard, against the acknowledged `writes` (key, when
/// sent): a write is missed when its key was not reported after it was sent and no
/// "behind" came after it was sent. Adds up to 10 examples.
fn judge<'a>(
    region: &str,
    heard: &Heard,
    writes: impl Iterator<Item = (&'a String, Instant)>,
    examples: &mut Vec<String>,
) -> RegionFeed {
    let mut found = RegionFeed {
        answers: heard.answers,
        failures: heard.failures,
        changes: heard.changes,
        behinds: heard.behinds,
        missed: 0,
    };
    for (key, sent) in writes {
        let reported = heard.last.get(key).is_some_and(|at| *at > sent);
        let covered = heard.behind.is_some_and(|at| at > sent);
        if !reported && !covered {
            found.missed += 1;
            if examples.len() < 10 {
                examples.push(format!(
                    "{key}: an acknowledged write was never reported by {region}'s feed"
                ));
            }
        }
    }
    found
}

/// The lines a run prints about its feed subscribers.
pub fn print(feed: &FeedVerdict) {
    let regions: Vec<String> = feed
        .regions
        .iter()
        .map(|(region, found)| {
            format!(
                "{region} {} answers, {} changes, {} behind, {} failed reads",
                found.answers, found.changes, found.behinds, found.failures
            )
        })
        .collect();
    println!(
        "feed: feed_changes_missed = {} (acknowledged kv writes neither reported by a region's feed nor covered by a behind); {}",
        feed.missed,
        regions.join("; ")
    );
    for example in &feed.examples {
        println!("  {example}");
    }
}

#[cfg(test)]
mod tests;
