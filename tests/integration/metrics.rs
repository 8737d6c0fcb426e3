//! `/metrics` as an operator meets it: scraped from a live cluster under load while a
//! node dies and comes back, linted by `promtool`, and ingested by a real Prometheus
//! server from the `prometheus.yml` that `cluster up` writes.

use crate::common::{real_client_available, single_region, InProcessCluster, ProcessCluster};
use cartwheel::config::TuningFlags;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One scrape: every sample, keyed by its series (`name{labels}` as written).
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    async fn of(cluster: &InProcessCluster, index: usize) -> Scrape {
        let response = reqwest::get(cluster.url(index, "/metrics"))
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = response.text().await.unwrap();
        assert!(text.ends_with("# EOF\n"), "a scrape ends with # EOF");
        Scrape(
            text.lines()
                .filter(|line| !line.starts_with('#') && !line.is_empty())
                .map(|line| {
                    let (series, value) = line.rsplit_once(' ').expect("series and value");
                    (series.to_string(), value.parse().expect("a number"))
                })
                .collect(),
        )
    }

    /// The sum of the samples of `name` whose labels contain every one of `labels`.
    fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| {
                let bare = series.split('{').next().unwrap_or_default();
                bare == name && labels.iter().all(|label| series.contains(label))
            })
            .map(|(_, value)| value)
            .sum()
    }
}

/// Polls node `index`'s metrics until `condition` holds (at most `limit`).
async fn wait_metrics(
    cluster: &InProcessCluster,
    index: usize,
    limit: Duration,
    what: &str,
    condition: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + limit;
    loop {
        let scrape = Scrape::of(cluster, index).await;
        if condition(&scrape) {
            return scrape;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn write_and_read(cluster: &InProcessCluster, keys: std::ops::Range<u32>) {
    let http = reqwest::Client::new();
    for key in keys {
        let url = cluster.url(0, &format!("/v1/kv/m{key}"));
        let put = http.put(&url).body("v").send().await.unwrap();
        assert!(put.status().is_success(), "PUT m{key}: {}", put.status());
        let get = http.get(&url).send().await.unwrap();
        assert_eq!(get.status(), 200, "GET m{key}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_follow_load_and_a_node_that_dies_and_returns() {
    // Four nodes, three replicas of every key: a dead replica's writes go to the
    // fourth as hints.
    let mut cluster = InProcessCluster::start(&single_region(4, 3), TuningFlags::default()).await;
    write_and_read(&cluster, 0..40).await;
    let before = Scrape::of(&cluster, 0).await;
    assert_eq!(before.sum("cartwheel_members", &["state=\"alive\""]), 4.0);
    assert_eq!(before.sum("cartwheel_members", &["state=\"dead\""]), 0.0);
    let writes = |scrape: &Scrape| {
        scrape.sum(
            "cartwheel_request_duration_seconds_count",
            &["op=\"write\"", "class=\"kv\"", "outcome=\"ok\""],
        )
    };
    let reads_ok = before.sum(
        "cartwheel_request_duration_seconds_count",
        &["op=\"read\"", "class=\"kv\"", "outcome=\"ok\""],
    );
    assert!(writes(&before) >= 40.0, "40 writes coordinated here");
    assert!(reads_ok >= 40.0, "40 reads coordinated here");
    assert!(
        before.sum(
            "cartwheel_request_duration_seconds_bucket",
            &["op=\"write\"", "le=\"+Inf\""]
        ) >= 40.0
    );
    assert!(before.sum("cartwheel_replica_request_duration_seconds_count", &[]) > 0.0);
    assert!(before.sum("cartwheel_storage_flush_duration_seconds_count", &[]) > 0.0);
    assert!(before.sum("process_resident_memory_bytes", &[]) > 0.0);
    assert_eq!(before.sum("cartwheel_hints_pending", &[]), 0.0);
    let to_local = ["peer_region=\"local\""];
    assert!(before.sum("cartwheel_transport_region_requests_total", &to_local) >= 40.0);
    assert!(before.sum("cartwheel_transport_region_sent_bytes_total", &to_local) > 0.0);
    assert!(before.sum("cartwheel_transport_region_received_bytes_total", &to_local) > 0.0);

    let down = cluster.stop(2).await;
    let dead = wait_metrics(
        &cluster,
        0,
        Duration::from_secs(15),
        "dead gauge",
        |scrape| scrape.sum("cartwheel_members", &["state=\"dead\""]) == 1.0,
    )
    .await;
    assert_eq!(dead.sum("cartwheel_members", &["state=\"alive\""]), 3.0);
    // Three of four nodes hold each key: most of these have the dead node as a replica.
    write_and_read(&cluster, 40..80).await;
    let owner = format!("owner=\"{}\"", down.as_str());
    let hinted = Scrape::of(&cluster, 0).await;
    let pending = hinted.sum("cartwheel_hints_pending", &[&owner]);
    let mut others = 0.0;
    for index in 1..3 {
        others += Scrape::of(&cluster, index)
            .await
            .sum("cartwheel_hints_pending", &[&owner]);
    }
    assert!(
        pending + others > 0.0,
        "writes for {down} left hints somewhere (node 0: {pending}, the others: {others})"
    );
    assert!(writes(&hinted) >= writes(&before) + 40.0);

    cluster.start_again(2, &down).await;
    for index in 0..3 {
        wait_metrics(
            &cluster,
            index,
            Duration::from_secs(30),
            "hints replayed",
            |scrape| {
                scrape.sum("cartwheel_hints_pending", &[&owner]) == 0.0
                    && scrape.sum("cartwheel_members", &["state=\"dead\""]) == 0.0
            },
        )
        .await;
    }
    let mut replayed = 0.0;
    for index in 0..4 {
        replayed += Scrape::of(&cluster, index)
            .await
            .sum("cartwheel_hints_replayed_total", &[]);
    }
    assert!(replayed > 0.0, "the hints were replayed to {down}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn promtool_finds_nothing_wrong_but_the_openmetrics_counter_names() {
    if !real_client_available(
        "promtool",
        Command::new("promtool").arg("--version").output().is_ok(),
        "apt-get install prometheus",
    ) {
        return;
    }
    let cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    write_and_read(&cluster, 0..5).await;
    let text = reqwest::get(cluster.url(0, "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    cluster.shutdown().await;
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    use std::io::Write;
    lint.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = lint.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    // promtool reads the Prometheus text format, where a counter's HELP names its
    // `_total` samples; OpenMetrics (what Prometheus asks for and is sent) names the
    // family without it. That is the one complaint allowed: it parsed every line, and
    // nothing else (units, suffixes, duplicate series, histogram shape) is wrong.
    let problems: Vec<&str> = report
        .lines()
        .filter(|line| !line.trim().is_empty())
        .filter(|line| !(line.ends_with(" no help text") && line.contains("_total")))
        .collect();
    assert!(problems.is_empty(), "promtool: {report}");
    assert!(
        matches!(output.status.code(), Some(0) | Some(3)),
        "promtool failed to parse: {report}"
    );
}

/// A Prometheus server, killed on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prometheus_server_scrapes_every_node_of_a_cluster_up_cluster() {
    if !real_client_available(
        "prometheus",
        Command::new("prometheus").arg("--version").output().is_ok(),
        "apt-get install prometheus",
    ) {
        return;
    }
    let cluster = ProcessCluster::up(&single_region(3, 3), &[]);
    let config = cluster.dir.path().join("prometheus.yml");
    let checked = Command::new("promtool")
        .args(["check", "config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    // Scrape every 200 ms instead of 5 s: same targets, quicker test.
    let fast = std::fs::read_to_string(&config)
        .unwrap()
        .replace("scrape_interval: 5s", "scrape_interval: 200ms")
        .replace("scrape_timeout: 4s", "scrape_timeout: 200ms");
    let fast_config = cluster.dir.path().join("prometheus-fast.yml");
    std::fs::write(&fast_config, fast).unwrap();
    let port = free_port();
    let server = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", fast_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                cluster.dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    let http = reqwest::Client::new();
    let query = |expression: &str| {
        let url = format!("http://127.0.0.1:{port}/api/v1/query");
        let request = http.get(url).query(&[("query", expression)]);
        async move {
            let answer: serde_json::Value = request.send().await.ok()?.json().await.ok()?;
            answer["data"]["result"].as_array().cloned()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let up = loop {
        if let Some(result) = query("up == 1").await {
            if result.len() == 3 {
                break result;
            }
        }
        assert!(Instant::now() < deadline, "prometheus never saw 3 nodes up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut nodes: Vec<String> = up
        .iter()
        .map(|series| series["metric"]["node"].as_str().unwrap().to_string())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["local-1", "local-2", "local-3"]);
    // Every node sees three members alive, and counters arrive as counters.
    let members = query("sum by (node) (cartwheel_members{state=\"alive\"})")
        .await
        .expect("members");
    assert_eq!(members.len(), 3, "{members:?}");
    for series in &members {
        assert_eq!(series["value"][1], "3", "{series}");
    }
    let metadata: serde_json::Value = http
        .get(format!("http://127.0.0.1:{port}/api/v1/metadata"))
        .query(&[("metric", "cartwheel_swim_probes")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["data"]["cartwheel_swim_probes"][0]["type"], "counter",
        "{metadata}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_overview_gathers_every_node_and_names_the_levels_lost() {
    let mut cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    write_and_read(&cluster, 0..10).await;
    let overview: cartwheel::api::ClusterOverview = cluster.get_json(0, "/v1/cluster").await;
    assert_eq!(overview.served_by, "local-1");
    assert_eq!(overview.nodes.len(), 3);
    assert!(overview.unmet.is_empty(), "{:?}", overview.unmet);
    for node in &overview.nodes {
        let figures = node.overview.as_ref().expect("every node answered");
        assert_eq!(node.state, "alive");
        assert_eq!(figures.partitions_owned, 64, "{}", node.node);
        assert_eq!(
            figures.latency.is_empty(),
            node.node != "local-1",
            "{}",
            node.node
        );
    }
    let first = overview.nodes[0].overview.as_ref().unwrap();
    let kv_writes = first
        .latency
        .iter()
        .find(|latency| latency.op == "write" && latency.class == "kv")
        .expect("kv writes coordinated by local-1");
    assert_eq!(kv_writes.counts.len(), overview.latency_bounds_ms.len() + 1);
    assert!(kv_writes.counts.iter().sum::<u64>() >= 10);

    // Two of three down: no majority of any partition's replicas is left.
    let gone = [cluster.stop(2).await, cluster.stop(1).await];
    for node in &gone {
        cluster.wait_dead(0, node.as_str()).await;
    }
    let overview: cartwheel::api::ClusterOverview = cluster.get_json(0, "/v1/cluster").await;
    let dead: Vec<&str> = overview
        .nodes
        .iter()
        .filter(|node| node.state == "dead" && !node.reachable && node.overview.is_none())
        .map(|node| node.node.as_str())
        .collect();
    assert_eq!(dead, ["local-2", "local-3"]);
    let kv_reads = overview
        .unmet
        .iter()
        .find(|unmet| unmet.class == "kv" && unmet.op == "read")
        .unwrap_or_else(|| panic!("kv reads cannot be met: {:?}", overview.unmet));
    assert_eq!(kv_reads.region, "local");
    assert_eq!(kv_reads.level, "local_quorum");
    assert_eq!(kv_reads.partitions, 64);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_watch_draws_the_tables_again_with_request_rates() {
    let cluster = ProcessCluster::up(&single_region(3, 3), &[]);
    let mut watch = Command::new(crate::common::binary())
        .args(["status", "--watch", "0.3", "--dir"])
        .arg(cluster.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("status --watch runs");
    let stdout = watch.stdout.take().unwrap();
    // Read the drawings on a thread; the test ends the command itself.
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut text = String::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            text.push_str(&line);
            text.push('\n');
            // The fourth drawing's first line: the third's rates are complete.
            if text.matches("cartwheel status, every").count() >= 4 {
                break;
            }
        }
        text
    });
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reader.is_finished() && Instant::now() < deadline {
        let url = cluster.url("local-1", "/v1/kv/watched");
        let _ = http.put(&url).body("v").send().await;
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(reader.is_finished(), "four drawings within 30 s");
    let text = reader.join().unwrap();
    assert!(text.matches("members as seen by").count() >= 3, "{text}");
    // Writes went through local-1 the whole time: its rate shows in the last drawing.
    let last = text
        .rsplit("requests coordinated, per second:")
        .next()
        .unwrap();
    let writes: f64 = last
        .lines()
        .find(|line| line.starts_with("local-1"))
        .and_then(|line| line.split_whitespace().nth(2))
        .and_then(|writes| writes.parse().ok())
        .unwrap_or_else(|| panic!("a write rate for local-1 in {last}"));
    assert!(writes > 0.0, "{last}");
}
