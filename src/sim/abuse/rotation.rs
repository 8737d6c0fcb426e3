//! Races on the session guarantees. Rotation: two rotations of one token through two
//! nodes at once must never leave two live successors, and the rotated token presented
//! again (theft) must revoke the successor. Log out everywhere: a login acknowledged in
//! one region, then a revoke-all in another, must leave that login's token refused in
//! every region; a login racing the revoke-all must end the same in every region.

use super::probe::{client_from, login, rotate, validate, Session};
use super::{Row, Target};
use anyhow::Result;
use std::net::{Ipv4Addr, SocketAddr};

/// The races come from their own loopback address: their expected refusals must not
/// count against the legitimate client's or the flood's address.
const RACE_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);

pub async fn rotation_race(target: &Target) -> Result<Row> {
    let rounds = if target.short { 20 } else { 200 };
    let client = client_from(RACE_ADDRESS)?;
    let nodes: Vec<SocketAddr> = target.nodes.iter().map(|node| node.http).collect();
    let (mut two_live, mut none_won, mut chain_kept, mut reuse_accepted) = (0, 0, 0, 0);
    for round in 0..rounds {
        let (first, second) = (nodes[round % nodes.len()], nodes[(round + 1) % nodes.len()]);
        let session = login(&client, first, &format!("abuse-rotate-{round}"), "phone").await?;
        let (one, two) = tokio::join!(
            rotate(&client, first, &session),
            rotate(&client, second, &session)
        );
        let successors: Vec<Session> = [one, two].into_iter().filter_map(Result::ok).collect();
        let live = live_count(&client, &nodes, &successors).await;
        if live > 1 {
            two_live += 1;
        }
        if successors.is_empty() {
            none_won += 1;
        }
        // The rotated token again: a thief's copy. It is refused, and so is every
        // successor from then on.
        if validate(&client, second, &session.token).await == 200 {
            reuse_accepted += 1;
        }
        if live_count(&client, &nodes, &successors).await > 0 {
            chain_kept += 1;
        }
    }
    let pass = two_live == 0 && chain_kept == 0 && reuse_accepted == 0 && none_won < rounds;
    let measured = format!(
        "{rounds} rounds of two rotations of one token through two nodes at once: {two_live} \
         with two live successors, {none_won} with none; the rotated token presented again: \
         accepted {reuse_accepted} times, its successor still live afterwards in {chain_kept} rounds"
    );
    Ok(Row::new("rotation-race", pass, measured))
}

/// How many of `sessions` are accepted by some node.
async fn live_count(client: &reqwest::Client, nodes: &[SocketAddr], sessions: &[Session]) -> usize {
    let mut live = 0;
    for session in sessions {
        for node in nodes {
            if validate(client, *node, &session.token).await == 200 {
                live += 1;
                break;
            }
        }
    }
    live
}

async fn revoke_all(client: &reqwest::Client, node: SocketAddr, session: &Session) -> u16 {
    match client
        .delete(format!("http://{node}/v1/session/all"))
        .bearer_auth(&session.token)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

pub async fn revoke_all_race(target: &Target) -> Result<Row> {
    let rounds = if target.short { 10 } else { 50 };
    let client = client_from(RACE_ADDRESS)?;
    let regions = target.regions();
    let here = target.in_region(&regions[0])[0].http;
    let there = target.in_region(regions.last().expect("a region"))[0].http;
    let (mut missed, mut split, mut refused_revokes, mut raced_live) = (0, 0, 0, 0);
    for round in 0..rounds {
        let user = format!("abuse-revoke-{round}");
        let phone = login(&client, here, &user, "phone").await?;
        // A login acknowledged elsewhere a moment before the revoke-all.
        let laptop = login(&client, there, &user, "laptop").await?;
        if revoke_all(&client, here, &phone).await != 200 {
            refused_revokes += 1;
        }
        for node in [here, there] {
            if validate(&client, node, &laptop.token).await == 200 {
                missed += 1;
                break;
            }
        }
        // A login racing the revoke-all: either outcome is right, but the same in every
        // region.
        let tablet = login(&client, here, &user, "tablet").await?;
        let (_, raced) = tokio::join!(
            revoke_all(&client, here, &tablet),
            login(&client, there, &user, "watch")
        );
        if let Ok(watch) = raced {
            let (at_here, at_there) = tokio::join!(
                validate(&client, here, &watch.token),
                validate(&client, there, &watch.token)
            );
            if (at_here == 200) != (at_there == 200) {
                split += 1;
            }
            if at_here == 200 {
                raced_live += 1;
            }
        }
    }
    let pass = missed == 0 && split == 0 && refused_revokes == 0;
    let measured = format!(
        "{rounds} rounds between {} and {}: a login acknowledged in {} then revoke-all in {}: \
         its token still accepted in {missed} rounds ({refused_revokes} revoke-alls failed); \
         a login racing the revoke-all: live afterwards in {raced_live} rounds, judged \
         differently by the two regions in {split}",
        regions[0],
        regions.last().expect("a region"),
        regions.last().expect("a region"),
        regions[0],
    );
    Ok(Row::new("revoke-all-race", pass, measured))
}
