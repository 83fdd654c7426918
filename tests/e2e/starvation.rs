//! One worker must not starve the others: a worker that calls Sigil's own
//! listener is stopped after `server.max_hops` passes (508), the remaining
//! deadline travels with each hop, and a hot worker holds at most its
//! share of the instance slots.

use crate::support::sigil::Sigil;
use crate::support::{module, module_cache, temp_dir};
use std::time::{Duration, Instant};

/// The probe as `self` (allowed to call Sigil's own HTTP listener, which the
/// manifest cannot know before binding: `127.0.0.1:*`) and as `hello`.
fn manifest(extra_server: &str, self_limits: &str) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
reload_poll_secs = 0
module_cache = "{cache}"
{extra_server}

[[workers]]
name = "self"
module = "{probe}"
allowed_outbound_hosts = ["http://127.0.0.1:*"]
[workers.limits]
subrequests = 2
{self_limits}

[[workers]]
name = "hello"
module = "{probe}"

[[routes]]
path = "/hello"
worker = "hello"

[[routes]]
worker = "self"
"#,
        cache = module_cache(),
        probe = module("probe"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_calling_itself_stops_after_max_hops() {
    // Before: one request made thousands of invocations and filled every
    // instance slot.
    let dir = temp_dir();
    let sigil = Sigil::start(dir.path(), &manifest("", ""));
    let started = Instant::now();
    let body = reqwest::get(sigil.http_url("/recurse"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        body.trim(),
        "16 508",
        "16 passes through Sigil, then 508 Loop Detected"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let logs = sigil.logs();
    assert!(logs.contains("loop detected"), "{logs}");
    // Nothing else was disturbed.
    let hello = reqwest::get(sigil.http_url("/hello")).await.unwrap();
    assert_eq!(hello.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_remaining_deadline_travels_with_each_hop() {
    // Each hop sleeps 300 ms then calls itself; the whole chain has 1 s.
    // Before, every hop started a fresh 1 s deadline and the chain ran
    // through all 16 hops (about 5 s).
    let dir = temp_dir();
    let sigil = Sigil::start(dir.path(), &manifest("", "timeout_ms = 1000"));
    let started = Instant::now();
    let response = reqwest::get(sigil.http_url("/chain?300")).await.unwrap();
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert!(
        elapsed < Duration::from_millis(2500),
        "the chain ran {elapsed:?} ({status} {body})"
    );
    assert!(
        status == 504 || body.contains("504") || body.contains("Timeout"),
        "the chain ends at the first request's deadline: {status} {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hot_worker_holds_at_most_its_share_of_instance_slots() {
    // Four slots, half for any one worker: ten slow requests to `self`
    // cannot take the slots `hello` needs. Before, they took all four and
    // `hello` got 503 "at capacity".
    let dir = temp_dir();
    let sigil = Sigil::start(
        dir.path(),
        &manifest("max_instances = 4\nworker_share = 0.5", "timeout_ms = 5000"),
    );
    let client = reqwest::Client::new();
    let hog_url = sigil.http_url("/sleep?1500");
    let hogs: Vec<_> = (0..10)
        .map(|_| {
            let (client, url) = (client.clone(), hog_url.clone());
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        let hello = client.get(sigil.http_url("/hello")).send().await.unwrap();
        assert_eq!(hello.status(), 200, "{}", hello.text().await.unwrap());
    }
    let mut statuses = Vec::new();
    for h in hogs {
        statuses.push(h.await.unwrap().unwrap());
    }
    let served = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!((served, refused), (2, 8), "{statuses:?}");
}
