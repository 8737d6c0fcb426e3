//! Forged causal contexts: a write to a kv key carrying a context the cluster never
//! handed out (garbage, a genuine one altered or cut short, and a well-formed version
//! vector naming 64 made-up actors at counters near the maximum, which would fill the
//! key's actor limit and outrun every later counter). Each must be refused with
//! `400 bad_context`, and the key must keep taking writes afterwards.

use super::probe::client_from;
use super::{Row, Target};
use crate::clock::{Actor, VersionVector};
use anyhow::{bail, Context, Result};
use base64::Engine;
use std::net::Ipv4Addr;

const KEY: &str = "abuse-context";
const CONTEXT_HEADER: &str = "x-cartwheel-context";

pub async fn run(target: &Target) -> Result<Row> {
    let client = client_from(Ipv4Addr::new(127, 0, 0, 11))?;
    let node = target.nodes[0].http;
    let url = format!("http://{node}/v1/kv/{KEY}");
    let put = client.put(&url).body("first").send().await?;
    if !put.status().is_success() {
        bail!("the first write answered {}", put.status());
    }
    let genuine = current_context(&client, &url).await?;
    let mut forged = vec![
        ("garbage", "!!not a context!!".to_string()),
        ("altered", altered(&genuine)),
        (
            "truncated",
            genuine[..genuine.len().saturating_sub(4)].to_string(),
        ),
        ("made-up actors", made_up_actors()),
    ];
    forged.push(("empty", String::new()));
    let mut wrong = Vec::new();
    for (name, context) in &forged {
        let response = client
            .put(&url)
            .header(CONTEXT_HEADER, context.as_str())
            .body(format!("forged {name}"))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status != 400 || body["code"] != "bad_context" {
            wrong.push(format!("{name}: {status} {}", body["code"]));
        }
    }
    // The key still works: a write with the genuine context supersedes, and reads back.
    let genuine = current_context(&client, &url).await?;
    let put = client
        .put(&url)
        .header(CONTEXT_HEADER, &genuine)
        .body("after")
        .send()
        .await?;
    let read = client.get(&url).send().await?;
    let (put_status, read_status) = (put.status().as_u16(), read.status().as_u16());
    let value = read.bytes().await?;
    let works = put_status == 204 && read_status == 200 && &value[..] == b"after";
    let measured = format!(
        "{} forged contexts (garbage, altered, truncated, 64 made-up actors at u64::MAX - 1, \
         empty): {} refused with 400 bad_context{}; the key afterwards: write {put_status}, \
         read {read_status} {}",
        forged.len(),
        forged.len() - wrong.len(),
        if wrong.is_empty() {
            String::new()
        } else {
            format!(" (not: {})", wrong.join(", "))
        },
        if works {
            "with the new value"
        } else {
            "WITHOUT the new value"
        },
    );
    Ok(Row::new(
        "forged-context",
        wrong.is_empty() && works,
        measured,
    ))
}

async fn current_context(client: &reqwest::Client, url: &str) -> Result<String> {
    let read = client.get(url).send().await?;
    read.headers()
        .get(CONTEXT_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
        .with_context(|| format!("a read answered {} without a context", read.status()))
}

/// A genuine context with one character in its middle changed.
fn altered(genuine: &str) -> String {
    let mut bytes = genuine.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    if let Some(byte) = bytes.get_mut(middle) {
        *byte = if *byte == b'A' { b'B' } else { b'A' };
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// A context in the unauthenticated format of earlier builds (format byte 1, then the
/// MessagePack version vector) naming 64 made-up actors at counters near the maximum.
fn made_up_actors() -> String {
    let entries = (0..64u64)
        .map(|index| (Actor(0xdead_0000 + index), u64::MAX - 1))
        .collect();
    let vector = VersionVector::from_entries(entries).expect("64 sorted actors are a vector");
    let mut bytes = vec![1u8];
    bytes.extend(rmp_serde::to_vec(&vector).expect("a vector encodes"));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
