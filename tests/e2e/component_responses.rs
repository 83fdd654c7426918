//! End to end: what a component worker may send back, and what it holds
//! while it runs — the defects a hostile-component review found, each with
//! the behaviour that failed before its fix:
//! - statuses outside 200–599 and more than 90 headers were sent as they
//!   were (101 handed the connection over);
//! - a guest that failed after its response started ended the body
//!   cleanly, so the client took a cut-off body for a whole one;
//! - with instance reuse, a guest that kept its response-outparam in a
//!   global left the request hanging and its instance went back to the pool;
//! - a client that dropped a streaming response freed the instance slot
//!   while the guest kept running, so a worker could run past its share.

use crate::components::{pki, preamble, worker};
use crate::support::sigil::Sigil;
use crate::support::{component, temp_dir};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::{Duration, Instant};

struct Setup {
    _dir: tempfile::TempDir,
    sigil: Sigil,
    client: reqwest::Client,
}

/// `max_instances = 4` (so a worker's share, 0.5, is 2 slots), a fresh-
/// instance worker `probe` and a reusing one `reuse`.
fn setup() -> Setup {
    let dir = temp_dir();
    let p = pki(dir.path());
    let probe = component("component_probe");
    let mut m = preamble(&p).replacen("[server]\n", "[server]\nmax_instances = 4\n", 1);
    m += &worker("probe", &probe, "");
    m += &worker("reuse", &probe, "instance_reuse = 50\n");
    let sigil = Sigil::start(dir.path(), &m);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    Setup {
        _dir: dir,
        sigil,
        client,
    }
}

impl Setup {
    async fn get(&self, worker: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.sigil.http_url(path))
            .header("host", format!("{worker}.test"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{worker}{path}: {e}"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_outside_200_to_599_and_excess_headers_are_refused_as_for_sdk_workers() {
    let s = setup();
    for (status, name) in [
        (101, " (Switching Protocols)"),
        (103, " (Early Hints)"),
        (999, ""),
    ] {
        let resp = s.get("probe", &format!("/status?{status}")).await;
        assert_eq!(resp.status().as_u16(), 500, "status {status}");
        let body = resp.text().await.unwrap();
        assert!(
            body.contains(&format!(
                "status {status}{name} is not allowed; a worker may answer with a status from 200 to 599"
            )),
            "{body}"
        );
    }
    assert_eq!(s.get("probe", "/status?204").await.status().as_u16(), 204);
    let resp = s.get("probe", "/many-headers?300").await;
    assert_eq!(resp.status().as_u16(), 200);
    let sent = resp
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("x-h"))
        .count();
    assert_eq!(sent, 90, "the first 90 headers pass");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.sigil
            .logs()
            .contains("dropped response headers from the worker: 0 with a value over 8192 bytes, 210 past the first 90 headers"),
        "{}",
        s.sigil.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_failing_mid_response_never_sends_a_complete_looking_body() {
    let s = setup();
    let resp = s.get("probe", "/trap-after?1000").await;
    assert_eq!(resp.status().as_u16(), 200, "the head was already sent");
    let body = resp.bytes().await;
    assert!(
        body.is_err(),
        "the client must see the body fail, not end: got {:?}",
        body.map(|b| b.len())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.sigil.logs().contains("after its response started"),
        "{}",
        s.sigil.logs()
    );
    assert_eq!(s.get("probe", "/hi").await.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_response_outparam_fails_at_once_and_its_instance_is_not_reused() {
    let s = setup();
    let count = |r: reqwest::Response| async move { r.text().await.unwrap() };
    assert_eq!(count(s.get("reuse", "/count").await).await, "served 1\n");
    assert_eq!(count(s.get("reuse", "/count").await).await, "served 2\n");
    let started = Instant::now();
    let resp = s.get("reuse", "/keep-outparam").await;
    assert_eq!(resp.status().as_u16(), 500);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("returned without setting a response"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The instance that kept it is gone: the next request gets a fresh one.
    assert_eq!(count(s.get("reuse", "/count").await).await, "served 1\n");
}

/// An HTTP/2 (prior knowledge) connection to Sigil's plain listener: a
/// dropped response there resets its stream at once.
async fn h2(s: &Setup) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(s.sigil.http.unwrap())
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_response_keeps_its_slot_until_the_guest_ends() {
    let s = setup();
    let mut sender = h2(&s).await;
    // Two lingering guests: the worker's whole share (0.5 of 4 slots).
    for _ in 0..2 {
        let req = http::Request::get(format!("http://probe.test{}", "/linger?4000"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        drop(resp);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The guests still run, so their slots are still taken.
    let resp = s.get("probe", "/hi").await;
    assert_eq!(resp.status().as_u16(), 503, "{:?}", resp.text().await);
    // Another worker is not affected.
    assert_eq!(s.get("reuse", "/hi").await.status().as_u16(), 200);
    // Once the guests end, the slots are free again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = s.get("probe", "/hi").await.status().as_u16();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slots never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
