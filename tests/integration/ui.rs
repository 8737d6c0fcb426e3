//! The operator dashboard (`GET /ui`) in a real browser: headless Chromium loads the
//! page from one node of a 9-node, 3-region cluster of processes; the DOM it renders
//! shows every node alive, then a killed node dead; screenshots at a laptop's and a
//! phone's size are written (and copied to `CARTWHEEL_UI_SCREENSHOT_DIR` when set).

use crate::common::{real_client_available, ProcessCluster};

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Three regions of three nodes, every key on three nodes of each, no WAN delay.
const THREE_REGIONS: &str = r#"
[cluster]
partitions = 64
replicas_per_region = 3
[[regions]]
name = "us-east"
nodes = 3
[[regions]]
name = "us-west"
nodes = 3
[[regions]]
name = "eu-west"
nodes = 3
[latency]
intra_region_rtt_ms = 0.0
jitter_ms = 0.0
[latency.rtt_ms]
"us-east/us-west" = 0.0
"us-east/eu-west" = 0.0
"us-west/eu-west" = 0.0
"#;
const NODES: usize = 9;
/// The node whose page the browser loads, and the node killed.
const SERVED_BY: &str = "us-east-1";
const KILLED: &str = "eu-west-2";

/// The browsers tried, in order (Debian's package is `chromium`).
const BROWSERS: [&str; 2] = ["chromium", "chromium-browser"];
/// The longest one browser run may take; it is killed (with its children) after that.
const BROWSER_RUN_LIMIT: Duration = Duration::from_secs(30);
/// The page's own clock per run: its first poll, and one or two more.
const VIRTUAL_TIME_BUDGET_MS: u32 = 4000;
/// How long the page may take to show the whole cluster alive, and the killed node
/// dead, and how many page loads each wait makes at most.
const ALL_ALIVE_LIMIT: Duration = Duration::from_secs(20);
const DEATH_SHOWN_LIMIT: Duration = Duration::from_secs(20);
const LOADS_MAX: usize = 10;
/// The phone's window: headless Chromium lays a page out at least 500 CSS pixels wide
/// (a smaller `--window-size` only crops that layout), which is still under the page's
/// 600-pixel phone breakpoint.
const PHONE_WINDOW: (u32, u32) = (500, 844);
/// A screenshot of a rendered page is larger than this; a blank one is not.
const SCREENSHOT_BYTES_MIN: u64 = 10 * 1024;
/// Writes made while the screenshots are taken, so that the page has traffic to show.
const BACKGROUND_WRITES_MAX: usize = 5000;

/// The first of `BROWSERS` installed (a skip, or a failure under
/// `CARTWHEEL_REAL_CLIENTS=require`, when none is).
fn browser() -> Option<&'static str> {
    let found = BROWSERS.into_iter().find(|name| {
        std::process::Command::new(name)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    let hint = "this test loads the dashboard in headless Chromium; install it with \
                `apt-get install -y chromium`";
    if !real_client_available("chromium", found.is_some(), hint) {
        return None;
    }
    found
}

/// Runs headless `browser` on `url` with `extra` arguments, in a fresh profile under
/// `work`, in a process group of its own that is killed when the run passes
/// `BROWSER_RUN_LIMIT`. Its standard output.
async fn headless(browser: &str, work: &Path, url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir_in(work).expect("a browser profile directory");
    let child = tokio::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // The page's console on standard error: uncaught errors and violations of
            // the Content-Security-Policy fail the test.
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .env("XDG_CONFIG_HOME", profile.path())
        .env("XDG_CACHE_HOME", profile.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("{browser} does not start: {error}"));
    let group = child.id().expect("the browser is running");
    let started = Instant::now();
    let Ok(output) = tokio::time::timeout(BROWSER_RUN_LIMIT, child.wait_with_output()).await else {
        let _ = std::process::Command::new("kill")
            .args(["-9", "--", &format!("-{group}")])
            .status();
        panic!("{browser} did not finish {url} within {BROWSER_RUN_LIMIT:?}");
    };
    let output = output.expect("the browser runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{browser} failed on {url} ({}): {stderr}",
        output.status
    );
    for problem in ["Uncaught", "Content Security Policy"] {
        assert!(
            !stderr.contains(problem),
            "the page's console on {url} says {problem:?}: {stderr}"
        );
    }
    eprintln!("{browser}: {url} in {:?}", started.elapsed());
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The DOM of `url` after the page's first polls, as Chromium serializes it.
async fn dump_dom(browser: &str, work: &Path, url: &str) -> String {
    let extra = ["--dump-dom".to_string()];
    headless(browser, work, url, &extra).await
}

/// The value of `attribute` on the element with `data-node="node"`, if there is one.
fn node_attribute<'a>(dom: &'a str, node: &str, attribute: &str) -> Option<&'a str> {
    let at = dom.find(&format!(" data-node=\"{node}\""))?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let value = tag.find(&format!(" {attribute}=\""))? + attribute.len() + 3;
    Some(&tag[value..value + tag[value..].find('"')?])
}

/// Loads `url` until `condition` holds on its DOM, at most `LOADS_MAX` times and for
/// at most `limit`; the DOM it held on and how long that took, or the last DOM.
async fn load_until(
    browser: &str,
    work: &Path,
    url: &str,
    limit: Duration,
    condition: impl Fn(&str) -> bool,
) -> Result<(String, Duration), String> {
    let started = Instant::now();
    let mut dom = String::new();
    for _ in 0..LOADS_MAX {
        dom = dump_dom(browser, work, url).await;
        if condition(&dom) {
            return Ok((dom, started.elapsed()));
        }
        if started.elapsed() >= limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(dom)
}

/// Takes a screenshot of `url` at `width`x`height` into `work/name`; checks it is a
/// rendered page and copies it to `CARTWHEEL_UI_SCREENSHOT_DIR` when that is set.
async fn screenshot(browser: &str, work: &Path, url: &str, name: &str, size: (u32, u32)) {
    let path = work.join(name);
    let extra = [
        format!("--screenshot={}", path.display()),
        format!("--window-size={},{}", size.0, size.1),
    ];
    headless(browser, work, url, &extra).await;
    let bytes = std::fs::metadata(&path)
        .unwrap_or_else(|error| panic!("no screenshot {name}: {error}"))
        .len();
    assert!(
        bytes > SCREENSHOT_BYTES_MIN,
        "{name} is {bytes} bytes: a blank page?"
    );
    if let Some(dir) = std::env::var_os("CARTWHEEL_UI_SCREENSHOT_DIR") {
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        std::fs::copy(&path, Path::new(&dir).join(name)).expect("the screenshot copied");
    }
}

/// Writes keys through `node` until aborted or `BACKGROUND_WRITES_MAX` are written;
/// failures are ignored (the page only needs traffic).
async fn write_in_background(http: reqwest::Client, cluster_url: String) {
    for index in 0..BACKGROUND_WRITES_MAX {
        let _ = http
            .put(format!("{cluster_url}/v1/kv/ui-{}", index % 200))
            .body(format!("value-{index}"))
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_every_node_then_a_killed_one_dead() {
    let Some(browser) = browser() else {
        return;
    };
    let cluster = ProcessCluster::up(THREE_REGIONS, &[]);
    let work = tempfile::tempdir().expect("a temporary directory");
    let page = cluster.url(SERVED_BY, "/ui");
    let http = reqwest::Client::new();

    // Every node alive, as the node serving the page sees them.
    let loaded = load_until(browser, work.path(), &page, ALL_ALIVE_LIMIT, |dom| {
        dom.matches(" data-state=\"alive\"").count() == NODES
    })
    .await;
    let dom = loaded
        .unwrap_or_else(|dom| panic!("not every node shown alive: {dom}"))
        .0;
    assert!(dom.contains(" data-loaded=\"true\""), "{dom}");
    assert!(dom.contains(&format!(" data-nodes=\"{NODES}\"")), "{dom}");
    for node in &cluster.nodes {
        let id = node.id.as_str();
        assert_eq!(
            node_attribute(&dom, id, "data-state"),
            Some("alive"),
            "{id}"
        );
        assert_eq!(
            node_attribute(&dom, id, "data-reachable"),
            Some("true"),
            "{id}"
        );
    }
    assert!(dom.contains("id=\"unmet-banner\""), "{dom}");

    // A killed node turns dead on the page within the bound.
    let killed_at = Instant::now();
    cluster.kill(KILLED);
    let shown = load_until(browser, work.path(), &page, DEATH_SHOWN_LIMIT, |dom| {
        node_attribute(dom, KILLED, "data-state") == Some("dead")
    })
    .await;
    let (dom, _) = shown.unwrap_or_else(|dom| {
        panic!("{KILLED} not shown dead within {DEATH_SHOWN_LIMIT:?} of its kill: {dom}")
    });
    println!(
        "the page showed {KILLED} dead {:.1} s after it was killed",
        killed_at.elapsed().as_secs_f64()
    );
    assert_eq!(
        node_attribute(&dom, KILLED, "data-reachable"),
        Some("false")
    );
    assert_eq!(dom.matches(" data-state=\"alive\"").count(), NODES - 1);

    // Screenshots with traffic: a laptop's window and a phone's.
    let writes = tokio::spawn(write_in_background(
        http,
        format!("http://{}", cluster.node(SERVED_BY).http),
    ));
    let fast = format!("{page}?refresh=500");
    screenshot(browser, work.path(), &fast, "ui.png", (1280, 900)).await;
    screenshot(browser, work.path(), &fast, "ui-phone.png", PHONE_WINDOW).await;
    writes.abort();
}
