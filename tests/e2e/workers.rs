//! End to end: real guests, the real `sigil` binary, real HTTP on loopback.
//! Every bad behaviour of a guest fails only its own request.

use crate::support::sigil::Sigil;
use crate::support::{module, module_cache, temp_dir};

fn manifest(extra_limits: &str) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
module_cache = "{cache}"

[limits]
cpu_ms = 100
memory_mb = 32
max_response_body = 1048576
max_request_body = 4096
subrequests = 3
timeout_ms = 5000
{extra_limits}

[[workers]]
name = "hello"
module = "{hello}"

[[workers]]
name = "probe"
module = "{probe}"
allowed_outbound_hosts = ["http://127.0.0.1:*"]

[[workers]]
name = "other"
module = "{probe}"

[[routes]]
path = "/"
worker = "hello"

[[routes]]
path = "/probe"
worker = "probe"

[[routes]]
host = "other.test"
worker = "other"
"#,
        cache = module_cache(),
        hello = module("hello"),
        probe = module("probe"),
    )
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let r = client.get(url).send().await.expect("request");
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The probe worker is routed under /probe, so its paths are /probe/<x>;
/// it matches on the path it sees, so routes pass the full path.
fn probe_url(s: &Sigil, what: &str) -> String {
    s.http_url(&format!("/probe{what}"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_worker_answers() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &manifest(""));
    let (status, body) = get(&client(), &s.http_url("/greet")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("hello from sigil: GET /greet"), "{body}");
    // The worker's log line reaches the host log, tagged with the worker.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(s.logs().contains("hello served /greet"), "{}", s.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_guest_fails_alone_within_its_cpu_limit() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &manifest(""));
    let c = client();
    let spin_url = probe_url(&s, "/spin");
    let spin = tokio::spawn({
        let c = c.clone();
        async move {
            let started = std::time::Instant::now();
            let r = get(&c, &spin_url).await;
            (r, started.elapsed())
        }
    });
    // While it spins, another worker keeps answering.
    for _ in 0..5 {
        let (status, body) = get(&c, &s.http_url("/")).await;
        assert_eq!(status, 200, "{body}");
    }
    let ((status, body), elapsed) = spin.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("worker \"probe\" exceeded its CPU time limit of 100 ms"),
        "{body}"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(4),
        "took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_failures_get_clear_statuses_and_messages() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &manifest(""));
    let c = client();
    let cases = [
        ("/alloc", 503, "exceeded its memory limit of 32 MiB"),
        (
            "/panic",
            500,
            "worker \"probe\" panicked: probe was asked to panic",
        ),
        (
            "/big?2000000",
            500,
            "over its limit of 1048576 bytes (limits.max_response_body)",
        ),
        (
            "/garbage",
            500,
            "sigil.fetch_start: the guest sent a malformed subrequest",
        ),
        ("/exit", 500, "called exit(3)"),
    ];
    for (path, want_status, want_text) in cases {
        let (status, body) = get(&c, &probe_url(&s, path)).await;
        assert_eq!(status, want_status, "{path}: {body}");
        assert!(body.contains(want_text), "{path}: {body}");
        // Every other request is unaffected.
        let (status, body) = get(&c, &s.http_url("/")).await;
        assert_eq!(status, 200, "after {path}: {body}");
    }
    let (status, body) = get(&c, &probe_url(&s, "/big?1000")).await;
    assert_eq!((status, body.len()), (200, 1000));
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_is_not_cpu_time_but_counts_against_the_wall_clock() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &manifest(""));
    let c = client();
    // 300 ms asleep is well over the 100 ms CPU limit, but it is not CPU time.
    let (status, body) = get(&c, &probe_url(&s, "/sleep?300")).await;
    assert_eq!((status, body.as_str()), (200, "slept 300 ms\n"));
    // Sleeping past the 5 s wall-clock limit fails with 504.
    let (status, body) = get(&c, &probe_url(&s, "/sleep?8000")).await;
    assert_eq!(status, 504, "{body}");
    assert!(
        body.contains("exceeded its wall-clock limit of 5000 ms (limits.timeout_ms)"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_request_body_is_refused() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &manifest(""));
    let r = client()
        .post(s.http_url("/"))
        .body(vec![b'a'; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert!(r.text().await.unwrap().contains("limits.max_request_body"));
}

#[tokio::test(flavor = "multi_thread")]
async fn subrequest_limit_and_unknown_binding_are_errors_for_the_guest() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &manifest(""));
    let c = client();
    let target = s.http_url("/");
    let r = c
        .get(probe_url(&s, "/fetch"))
        .header("x-fetch-url", &target)
        .header("x-fetch-count", "5")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 5, "{body}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("ok 200 hello from sigil"))
            .count(),
        3,
        "{body}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("SubrequestLimit { limit: 3 }"))
            .count(),
        2,
        "{body}"
    );

    let r = c
        .get(probe_url(&s, "/fetch"))
        .header("x-fetch-url", &target)
        .header("x-fetch-binding", "NOT_MINE")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(
        body.contains("UnknownBinding { binding: \"NOT_MINE\" }"),
        "{body}"
    );

    // A worker with no allowed_outbound_hosts may not call anything.
    let r = c
        .get(s.http_url("/x"))
        .header("host", "other.test")
        .header("x-fetch-url", &target)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .get(format!("http://{}/fetch", s.http.unwrap()))
        .header("host", "other.test")
        .header("x-fetch-url", &target)
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("HostNotAllowed"), "{body}");
}
