//! End to end: real guests, the real `sigil` binary, real HTTP on loopback.
//! Every bad behaviour of a guest fails only its own request.

use crate::live_ops::{counter, scrape};
use crate::support::sigil::Sigil;
use crate::support::{module, module_cache, temp_dir};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// A worker reads its `vars` with `std::env` (answered without building the
/// WASI context): every variable, in the manifest's order, byte for byte;
/// a worker without `vars` sees none.
#[tokio::test(flavor = "multi_thread")]
async fn workers_read_their_vars_as_the_environment() {
    let dir = temp_dir();
    let manifest = format!(
        r#"
[server]
http = "127.0.0.1:0"
module_cache = "{cache}"

[[workers]]
name = "with-vars"
module = "{probe}"

[workers.vars]
UNI = "žluťoučký kůň"
A = "1"
EMPTY = ""
EQ = "a=b=c"

[[workers]]
name = "without"
module = "{probe}"

[[routes]]
path = "/probe"
worker = "with-vars"

[[routes]]
path = "/"
worker = "without"
"#,
        cache = module_cache(),
        probe = module("probe"),
    );
    let s = Sigil::start(dir.path(), &manifest);
    let c = client();
    for _ in 0..2 {
        let (status, body) = get(&c, &probe_url(&s, "/env")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            "A=1\nEMPTY=\nEQ=a=b=c\nUNI=žluťoučký kůň\nMISSING is set: false\n"
        );
    }
    let (status, body) = get(&c, &s.http_url("/env")).await;
    assert_eq!((status, body.as_str()), (200, "MISSING is set: false\n"));
}

/// A worker whose `environ_sizes_get` points outside its memory, or at a
/// misaligned address, traps (as the WASI rules say): that request gets a
/// 500 naming the call in the log, and the server goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn environ_calls_with_bad_pointers_trap() {
    let dir = temp_dir();
    let mut workers = String::new();
    for (name, pointer) in [
        ("outside", "0xfffffffc"),
        ("misaligned", "6"),
        ("fine", "8"),
    ] {
        let wat = format!(
            r#"(module
                (import "wasi_snapshot_preview1" "environ_sizes_get"
                    (func $sizes (param i32 i32) (result i32)))
                (memory (export "memory") 1)
                (func (export "sigil_abi_version") (result i32) i32.const 1)
                (func (export "sigil_alloc") (param i32) (result i32) i32.const 1024)
                (func (export "sigil_handle") (param i32 i32) (result i64)
                    (drop (call $sizes (i32.const {pointer}) (i32.const 16)))
                    unreachable))"#
        );
        let path = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, wat::parse_str(&wat).unwrap()).unwrap();
        workers.push_str(&format!(
            "[[workers]]\nname = \"{name}\"\nmodule = \"{}\"\n[workers.vars]\nA = \"1\"\n\n\
             [[routes]]\npath = \"/{name}\"\nworker = \"{name}\"\n\n",
            path.display()
        ));
    }
    let manifest = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nmodule_cache = \"{}\"\n\n{workers}",
        module_cache()
    );
    let s = Sigil::start(dir.path(), &manifest);
    let c = client();
    for name in ["outside", "misaligned", "fine"] {
        let (status, body) = get(&c, &s.http_url(&format!("/{name}"))).await;
        assert_eq!(status, 500, "{name}: {body}");
    }
    let outside = "environ_sizes_get: the guest passed 4 bytes at 0xfffffffc, outside its memory";
    let misaligned = "environ_sizes_get: the guest passed the misaligned pointer 0x6";
    // The well-behaved call returned and the worker reached its own trap.
    let fine = "worker \"fine\" failed: error while executing";
    let logs = s.logs_containing(&[outside, misaligned, fine], Duration::from_secs(10));
    assert!(logs.contains(outside), "{logs}");
    assert!(logs.contains(misaligned), "{logs}");
    assert!(
        logs.contains(fine) && logs.contains("unreachable"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_worker_answers() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &manifest(""));
    let (status, body) = get(&client(), &s.http_url("/greet")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("hello from sigil: GET /greet"), "{body}");
    // The worker's log line reaches the host log, tagged with the worker.
    let logs = s.logs_containing(&["hello served /greet"], Duration::from_secs(10));
    assert!(logs.contains("hello served /greet"), "{logs}");
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
            "worker \"probe\" panicked; see the server log for request ",
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

/// A manifest for the probe alone, with an admin listener and room for
/// noisy requests (CPU time for 10 MB of output).
fn noisy_manifest() -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
module_cache = "{cache}"

[[workers]]
name = "probe"
module = "{probe}"
[workers.limits]
cpu_ms = 10000

[[routes]]
path = "/probe"
worker = "probe"
"#,
        cache = module_cache(),
        probe = module("probe"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_output_is_capped_escaped_and_counted() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &noisy_manifest());
    let c = client();
    let before = s.logs().len();
    for path in ["/log-flood?10485760", "/stdout-flood?10485760", "/log-crlf"] {
        let (status, body) = get(&c, &probe_url(&s, path)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = s.logs();
    let added = &logs[before..];
    // 20 MB of output became at most the per-request budget (256 KiB of
    // text and 1000 lines each) plus the log line prefixes.
    assert!(
        added.len() < 1_200_000,
        "the server log grew by {} bytes",
        added.len()
    );
    let marked: Vec<&str> = added
        .lines()
        .filter(|l| l.contains("worker output truncated"))
        .collect();
    assert!(
        marked
            .iter()
            .any(|l| l.contains("stream=\"log\"") || l.contains("stream=log")),
        "{marked:?}"
    );
    assert!(marked.iter().any(|l| l.contains("stdout")), "{marked:?}");
    // CR/LF and escape sequences arrive escaped, on the worker's own line.
    assert!(
        !added
            .lines()
            .any(|l| l.starts_with("2030-01-01") || l.contains('\u{1b}')),
        "a worker forged a log line:\n{added}"
    );
    // sigil.log keeps the message on one line with CR/LF escaped; stdout and
    // stderr are split into lines, each on a line of Sigil's own, tagged
    // with the worker and stream.
    let escaped = "before\\r\\n2030-01-01T00:00:00Z  INFO sigil: forged line\\u{1b}[31m";
    assert_eq!(added.matches(escaped).count(), 1, "{added}");
    let forged: Vec<&str> = added
        .lines()
        .filter(|l| l.contains("forged line"))
        .collect();
    assert_eq!(forged.len(), 3, "{forged:#?}");
    for line in forged {
        assert!(
            line.contains("worker=\"probe\"") && line.contains("forged line\\u{1b}[31m"),
            "{line}"
        );
    }
    let m = scrape(s.admin.unwrap()).await;
    for stream in ["log", "stdout"] {
        assert_eq!(
            counter(
                &m,
                "sigil_worker_output_truncated_total",
                &[("worker", "probe"), ("stream", stream)]
            ),
            1.0,
            "{stream}"
        );
    }
}

/// A worker's over-long `sigil.log` line is kept cut to 16 KiB, on one
/// line, and says how long the worker's line was. (Before, the mark counted
/// the kept part plus the mark: about 16.4 KB for any long line.)
#[tokio::test(flavor = "multi_thread")]
async fn a_cut_worker_log_line_says_how_long_it_was() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &noisy_manifest());
    let c = client();
    let before = s.logs().len();
    let (status, body) = get(&c, &probe_url(&s, "/log-long?1000000")).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = s.logs();
    let lines: Vec<&str> = logs[before..]
        .lines()
        .filter(|l| l.contains("long:é"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = lines[0];
    // `long:` (5 bytes) and 500,000 two-byte characters.
    assert!(
        line.contains("é [line cut: 1000005 bytes]"),
        "{}",
        &line[line.floor_char_boundary(line.len().saturating_sub(200))..]
    );
    assert!(!line.contains('\u{fffd}'), "a character split by the cut");
    assert!(line.len() < 17_000, "{} bytes", line.len());
}

/// Send `first` and then a plain request on one connection, pipelined, and
/// return everything the server sent.
async fn pipelined(addr: std::net::SocketAddr, first: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let requests = format!(
        "GET {first} HTTP/1.1\r\nHost: localhost\r\n\r\nGET /probe/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(requests.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("the server answered both requests and closed")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_outside_200_to_599_are_refused_and_the_connection_goes_on() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &manifest(""));
    for status in [101, 103, 999] {
        let text = pipelined(s.http.unwrap(), &format!("/probe/status?{status}")).await;
        let (first, second) = text
            .split_once("\r\n\r\n")
            .map(|(head, rest)| (head.to_string(), rest.to_string()))
            .unwrap_or_default();
        assert!(first.starts_with("HTTP/1.1 500"), "{status}:\n{text}");
        assert!(
            first.to_ascii_lowercase().contains("sigil-request-id: "),
            "{text}"
        );
        assert!(
            second.contains(&format!(
                "worker \"probe\" returned an invalid response: status {status}"
            )) && second.contains("a worker may answer with a status from 200 to 599")
                && second.contains("see the server log for request "),
            "{status}:\n{text}"
        );
        assert!(
            second.contains("HTTP/1.1 200 OK") && second.ends_with("probe ok\n"),
            "the next request on the connection was not answered:\n{text}"
        );
    }
    let (status, body) = get(&client(), &probe_url(&s, "/status?201")).await;
    assert_eq!(
        (status, body.as_str()),
        (201, "status chosen by the probe\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trap_and_panic_bodies_are_short_and_the_log_has_the_details() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &manifest(""));
    let c = client();
    for (path, what) in [("/trap", "failed: wasm trap"), ("/panic", "panicked")] {
        let r = c.get(probe_url(&s, path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 500);
        let id = r.headers()["sigil-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body = r.text().await.unwrap();
        assert!(body.len() < 300, "{path}: {} bytes: {body}", body.len());
        assert!(body.contains(&format!("worker \"probe\" {what}")), "{body}");
        assert!(
            body.ends_with(&format!("see the server log for request {id}\n")),
            "{body}"
        );
        for secret in [
            "backtrace",
            "wasm function",
            "probe.wasm",
            "src/lib.rs",
            "__rust",
        ] {
            assert!(!body.contains(secret), "{path}: {secret} in {body}");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = s.logs();
    assert!(logs.contains("wasm backtrace"), "{logs}");
    assert!(logs.contains("probe was asked to panic"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_with_1000_headers_is_capped() {
    let dir = temp_dir();
    let s = Sigil::start(dir.path(), &manifest(""));
    let r = client()
        .get(probe_url(&s, "/many-headers?1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let kept = r
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("x-probe-"))
        .count();
    // The probe's content-type and the first 89 of its own headers: 90.
    assert_eq!(kept, 89);
    assert!(r.headers().len() <= 100, "{}", r.headers().len());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = s.logs();
    assert_eq!(
        logs.matches("dropped response headers from the worker: 911 past the first 90 headers")
            .count(),
        1,
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_handler_result_is_described_in_words() {
    let dir = temp_dir();
    let d = dir.path();
    std::fs::write(
        d.join("minus-one.wasm"),
        crate::bad_modules::bad_output_location(),
    )
    .unwrap();
    let manifest = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nmodule_cache = \"{}\"\n\n[[workers]]\nname = \"m\"\nmodule = \"minus-one.wasm\"\n\n[[routes]]\nworker = \"m\"\n",
        module_cache()
    );
    let s = Sigil::start(d, &manifest);
    let (status, body) = get(&client(), &s.http_url("/")).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("worker \"m\" failed: sigil_handle's return value is malformed: it points to 4294967295 bytes at offset 0xffffffff, past the end of the guest's 65536-byte memory"),
        "{body}"
    );
    assert!(!body.contains("body of"), "{body}");
}
