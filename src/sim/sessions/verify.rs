//! The final check of a session run, once the workload has stopped and the replicas
//! have converged: the pure history checks of every client, every acknowledged-retired
//! token presented once more in every region (it must get a 401), and every user's cart
//! read in every region through a fresh login (every acknowledged add that no remove
//! may have taken out must be there; a read is retried for a bounded settle time).

use super::client::SessionClientResult;
use super::history::{
    cross_region_failures, missing_skus, required_skus, retired_token_accepted,
    valid_token_rejected, OpRecord, Retire,
};
use crate::sim::routes::Routes;
use crate::sim::workload::VERIFY_CONCURRENCY_MAX;
use futures::StreamExt;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Retired tokens presented again after the run; beyond it the rest are skipped and
/// the count says how many were probed.
pub const RETIRED_PROBES_MAX: usize = 5_000;
/// How long a cart read may keep missing adds before they count as missing.
pub const CART_SETTLE_S: u64 = 10;
/// Pause between two reads of a cart that misses adds.
pub const CART_POLL_MS: u64 = 250;
/// Attempts of the check's login and of one cart read before the cart is unreadable.
pub const CHECK_ATTEMPTS_MAX: u32 = 5;
/// Examples of violations kept for the report.
pub const EXAMPLES_MAX: usize = 12;

/// What the final check found.
#[derive(Clone, Debug, Default)]
pub struct SessionVerdict {
    /// Requests let in by a token whose rotation or logout was acknowledged before
    /// they started, during the run or in the probes after it.
    pub revoked_token_accepted: u64,
    pub cart_adds_missing: u64,
    pub cross_region_validation_failures: u64,
    /// 401s on tokens whose creation was acknowledged and that no one retired.
    pub valid_token_rejected: u64,
    /// (user, region) pairs whose cart no read could fetch.
    pub carts_unreadable: u64,
    pub cart_adds_checked: u64,
    pub carts_checked: u64,
    pub regions: usize,
    pub retired_tokens_probed: u64,
    /// Probes of retired tokens answered neither 2xx nor 401 (timeouts, 5xx).
    pub retired_probes_unanswered: u64,
    pub cross_region_validations: u64,
    pub truncated: bool,
    pub examples: Vec<String>,
}

impl SessionVerdict {
    fn example(&mut self, text: String) {
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(text);
        }
    }
}

fn describe(result: &SessionClientResult, regions: &[String], op: &OpRecord) -> String {
    let token = op.token.map(|t| &result.tokens[t as usize]);
    let retire = token.and_then(|entry| entry.retire);
    let retire = match retire {
        Some(Retire {
            kind,
            started_us,
            acked_us,
        }) => format!(
            ", token {kind:?} started {:.1} ms acked {}",
            started_us as f64 / 1000.0,
            acked_us.map_or("-".into(), |a| format!("{:.1} ms", a as f64 / 1000.0))
        ),
        None => String::new(),
    };
    format!(
        "{}-c{} {} user {} on {} ({}) {:.1}..{:.1} ms: {:?}; token created {}{retire}",
        regions[result.region as usize],
        result.index,
        op.kind.name(),
        token.map_or("-", |entry| result.users[entry.user as usize].as_str()),
        op.node,
        regions[op.region as usize],
        op.start_us as f64 / 1000.0,
        op.end_us as f64 / 1000.0,
        op.outcome,
        token.map_or("-".into(), |e| format!(
            "{:.1} ms",
            e.created_ack_us as f64 / 1000.0
        )),
    )
}

/// The checks over the recorded histories.
fn check_histories(
    results: &[SessionClientResult],
    regions: &[String],
    verdict: &mut SessionVerdict,
) {
    for result in results {
        verdict.truncated |= result.truncated;
        let found = [
            retired_token_accepted(&result.ops, &result.tokens),
            valid_token_rejected(&result.ops, &result.tokens),
            cross_region_failures(&result.ops),
        ];
        verdict.revoked_token_accepted += found[0].len() as u64;
        verdict.valid_token_rejected += found[1].len() as u64;
        verdict.cross_region_validation_failures += found[2].len() as u64;
        let labels = [
            "retired token accepted",
            "live token refused",
            "cross-region validation failed",
        ];
        for (label, indices) in labels.iter().zip(&found) {
            for index in indices.iter().take(3) {
                let text = describe(result, regions, &result.ops[*index]);
                verdict.example(format!("{label}: {text}"));
            }
        }
        verdict.cross_region_validations += result
            .ops
            .iter()
            .filter(|op| op.kind == super::history::OpKind::RemoteRead)
            .count() as u64;
    }
}

/// Status of a `GET /v1/session` with `token`, and the cart skus on a 200.
async fn read_session(
    http: &reqwest::Client,
    node: SocketAddr,
    token: &str,
) -> Option<(u16, Option<BTreeSet<String>>)> {
    #[derive(Deserialize)]
    struct Line {
        sku: String,
    }
    #[derive(Deserialize)]
    struct View {
        cart: Vec<Line>,
    }
    let response = http
        .get(format!("http://{node}/v1/session"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    if status != 200 {
        return Some((status, None));
    }
    let view: View = response.json().await.ok()?;
    Some((
        status,
        Some(view.cart.into_iter().map(|line| line.sku).collect()),
    ))
}

/// Presents every acknowledged-retired token once in every region.
async fn probe_retired(
    http: &reqwest::Client,
    results: &[SessionClientResult],
    routes: &Routes,
    regions: &[String],
    verdict: &mut SessionVerdict,
) {
    let retired = results.iter().flat_map(|result| {
        result.tokens.iter().filter(|entry| {
            matches!(
                entry.retire,
                Some(Retire {
                    acked_us: Some(_),
                    ..
                })
            )
        })
    });
    let retired: Vec<_> = retired.take(RETIRED_PROBES_MAX).collect();
    verdict.retired_tokens_probed = retired.len() as u64;
    let probes = retired.iter().enumerate().flat_map(|(index, entry)| {
        regions.iter().filter_map(move |region| {
            let nodes = routes.all(region);
            (!nodes.is_empty()).then(|| (region.clone(), nodes[index % nodes.len()], *entry))
        })
    });
    let answers: Vec<_> = futures::stream::iter(probes)
        .map(|(region, node, entry)| async move {
            let status = read_session(http, node, &entry.token).await.map(|(s, _)| s);
            (region, node, entry, status)
        })
        .buffer_unordered(VERIFY_CONCURRENCY_MAX)
        .collect()
        .await;
    for (region, node, entry, status) in answers {
        match status {
            Some(401) => {}
            Some(200..=299) => {
                verdict.revoked_token_accepted += 1;
                let kind = entry.retire.map(|r| r.kind);
                verdict.example(format!(
                    "retired token accepted after the run: {kind:?} token presented on {node} ({region})"
                ));
            }
            _ => verdict.retired_probes_unanswered += 1,
        }
    }
}

/// Logs in as the checker in `region` and reads `user`'s cart until it holds every
/// required sku or the settle time passes; the skus still missing, `None` if no read
/// answered.
async fn check_cart(
    http: &reqwest::Client,
    nodes: &[SocketAddr],
    user: &str,
    region: &str,
    required: &BTreeSet<String>,
) -> Option<Vec<String>> {
    let mut token = None;
    for attempt in 0..CHECK_ATTEMPTS_MAX {
        let node = nodes[attempt as usize % nodes.len()];
        let body = serde_json::json!({ "user_id": user, "device": format!("checker-{region}") });
        let response = http
            .post(format!("http://{node}/v1/sessions"))
            .json(&body)
            .send()
            .await;
        if let Ok(response) = response {
            if response.status().as_u16() == 201 {
                let answer: serde_json::Value = response.json().await.ok()?;
                token = answer["token"].as_str().map(str::to_string);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(CART_POLL_MS)).await;
    }
    let token = token?;
    let deadline = Instant::now() + Duration::from_secs(CART_SETTLE_S);
    let (mut missing, mut failures, mut attempt) = (None, 0, 0usize);
    loop {
        let node = nodes[attempt % nodes.len()];
        attempt += 1;
        match read_session(http, node, &token).await {
            Some((200, Some(cart))) => {
                let gone: Vec<String> = missing_skus(required, &cart);
                let done = gone.is_empty();
                missing = Some(gone);
                if done {
                    return missing;
                }
            }
            _ => failures += 1,
        }
        if Instant::now() > deadline || (missing.is_none() && failures >= CHECK_ATTEMPTS_MAX) {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(CART_POLL_MS)).await;
    }
}

/// Reads every user's cart in every region.
async fn check_carts(
    http: &reqwest::Client,
    results: &[SessionClientResult],
    routes: &Routes,
    regions: &[String],
    verdict: &mut SessionVerdict,
) {
    let mut required: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for result in results {
        for (user, skus) in required_skus(&result.adds) {
            let name = result.users[user as usize].clone();
            required.entry(name).or_default().extend(skus);
        }
    }
    verdict.cart_adds_checked = required.values().map(|skus| skus.len() as u64).sum();
    verdict.carts_checked = required.len() as u64;
    let checks = required.iter().flat_map(|(user, skus)| {
        regions
            .iter()
            .map(move |region| (user, region, routes.all(region), skus))
    });
    let answers: Vec<_> = futures::stream::iter(checks)
        .map(|(user, region, nodes, skus)| async move {
            if nodes.is_empty() {
                return (user, region, None);
            }
            (
                user,
                region,
                check_cart(http, &nodes, user, region, skus).await,
            )
        })
        .buffer_unordered(VERIFY_CONCURRENCY_MAX)
        .collect()
        .await;
    for (user, region, missing) in answers {
        match missing {
            None => {
                verdict.carts_unreadable += 1;
                verdict.example(format!("cart of {user} unreadable in {region}"));
            }
            Some(missing) if !missing.is_empty() => {
                verdict.cart_adds_missing += missing.len() as u64;
                verdict.example(format!(
                    "cart of {user} in {region} misses {} acknowledged adds, e.g. {}",
                    missing.len(),
                    missing[0]
                ));
            }
            Some(_) => {}
        }
    }
}

/// Runs every check of a session run.
pub async fn verify(
    http: &reqwest::Client,
    results: &[SessionClientResult],
    routes: &Routes,
    regions: &[String],
) -> SessionVerdict {
    let mut verdict = SessionVerdict {
        regions: regions.len(),
        ..SessionVerdict::default()
    };
    check_histories(results, regions, &mut verdict);
    probe_retired(http, results, routes, regions, &mut verdict).await;
    check_carts(http, results, routes, regions, &mut verdict).await;
    verdict
}
