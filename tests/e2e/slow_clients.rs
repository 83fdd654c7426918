//! End to end: slow and stuck clients (issue 11 §2). Real clients on
//! loopback against a `sigil` with short timeouts: slowloris heads over
//! plain HTTP and TLS, idle keep-alive connections (HTTP/1.1 and HTTP/2), a
//! request body that stops, clients that never read their response, the
//! connection limit, `accept` failing with EMFILE, and 500 slow clients
//! beside one normal client.

use crate::support::client::{tls_config, tls_connect};
use crate::support::pki::Ca;
use crate::support::sigil::Sigil;
use crate::support::{module, module_cache, temp_dir};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The timeouts every test's `sigil` runs with.
const HEADER: Duration = Duration::from_millis(1000);
const BODY_IDLE: Duration = Duration::from_millis(1000);
const WRITE: Duration = Duration::from_millis(1000);
const KEEPALIVE: Duration = Duration::from_secs(2);
const HANDSHAKE: Duration = Duration::from_millis(1000);
/// How late a close may come on this shared 2-core machine.
const SLACK: Duration = Duration::from_millis(1500);

struct Setup {
    _dir: tempfile::TempDir,
    sigil: Sigil,
    server_ca: PathBuf,
}

/// A `sigil` with HTTP, HTTPS (`open.example`, no client certificates) and
/// admin listeners, the probe worker on every path, and the short timeouts
/// above, with `overrides` replacing or adding `[server]` keys.
fn start(overrides: &[(&str, &str)]) -> Setup {
    let dir = temp_dir();
    let d = dir.path();
    let ca = Ca::new(d, "server-ca");
    let srv = ca.server("open-server", &["open.example"]);
    let mut keys = vec![
        ("header_read_timeout_ms", HEADER.as_millis().to_string()),
        ("body_idle_timeout_ms", BODY_IDLE.as_millis().to_string()),
        ("write_timeout_ms", WRITE.as_millis().to_string()),
        ("keepalive_idle_secs", KEEPALIVE.as_secs().to_string()),
        (
            "tls_handshake_timeout_ms",
            HANDSHAKE.as_millis().to_string(),
        ),
    ];
    for (key, value) in overrides {
        keys.retain(|(k, _)| k != key);
        keys.push((key, value.to_string()));
    }
    let server_keys: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    let manifest = format!(
        r#"
[server]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
admin = "127.0.0.1:0"
module_cache = "{cache}"
{server_keys}
[[hostnames]]
name = "open.example"
cert = "{cert}"
key = "{key}"

[[workers]]
name = "probe"
module = "{probe}"

# Generous: a busy CI machine must not turn the 8 MiB response into a 503.
[workers.limits]
cpu_ms = 5000

[[routes]]
worker = "probe"
"#,
        cache = module_cache(),
        cert = srv.cert_s(),
        key = srv.key_s(),
        probe = module("probe"),
    );
    let sigil = Sigil::start(d, &manifest);
    Setup {
        server_ca: ca.cert.clone(),
        _dir: dir,
        sigil,
    }
}

impl Setup {
    fn http(&self) -> SocketAddr {
        self.sigil.http.expect("http listener")
    }

    fn https(&self) -> SocketAddr {
        self.sigil.https.expect("https listener")
    }

    async fn tls(&self, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<TcpStream> {
        let config = tls_config(&self.server_ca, None, alpn);
        tls_connect(self.https(), Some("open.example"), config)
            .await
            .expect("TLS handshake")
    }

    /// `sigil_<name>` summed over the series whose labels include `labels`.
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let admin = self.sigil.admin.expect("admin listener");
        let text = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .unwrap();
        sum_samples(&text, name, labels)
    }

    /// Poll `name{labels}` until it is at least `at_least`, for up to `within`.
    async fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        at_least: f64,
        within: Duration,
    ) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let v = self.metric(name, labels).await;
            if v >= at_least || Instant::now() > deadline {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn sum_samples(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Read until the peer closes (EOF or an error); returns how long that took
/// and what was read, or `None` when it is still open after `limit`.
async fn until_closed<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: Duration,
) -> Option<(Duration, Vec<u8>)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let read_all = async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.ok()?;
    Some((started.elapsed(), got))
}

/// Send a request head one byte every 200 ms, never finishing it; returns
/// how long after the start the server closed the connection.
async fn slowloris<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    timeout: Duration,
) -> Option<Duration> {
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        let head = b"GET / HTTP/1.1\r\nHost: open.example\r\n";
        let headers = b"X-Slow: yes\r\n".iter().cycle();
        for byte in head.iter().chain(headers) {
            if w.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let closed = until_closed(&mut r, timeout + SLACK * 3).await;
    writer.abort();
    closed.map(|(after, _)| after)
}

fn assert_within(what: &str, took: Option<Duration>, timeout: Duration) {
    let took = took.unwrap_or_else(|| panic!("{what}: still open after {:?}", timeout + SLACK * 3));
    assert!(
        took + Duration::from_millis(100) >= timeout && took <= timeout + SLACK,
        "{what}: closed after {took:?}, expected about {timeout:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_over_plain_http_is_closed_within_the_header_timeout() {
    let s = start(&[]);
    let stream = TcpStream::connect(s.http()).await.unwrap();
    assert_within("plain slowloris", slowloris(stream, HEADER).await, HEADER);
    // A keep-alive connection whose next head is slow: timed from its first byte.
    let mut stream = TcpStream::connect(s.http()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: open.example\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_within("slow second head", slowloris(stream, HEADER).await, HEADER);
    let closed = s
        .wait_metric(
            "sigil_inbound_connections_closed_total",
            &[("listener", "http"), ("reason", "header_timeout")],
            2.0,
            SLACK,
        )
        .await;
    assert_eq!(closed, 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_over_tls_is_closed_within_the_header_timeout() {
    let s = start(&[]);
    let tls = s.tls(&[b"http/1.1"]).await;
    assert_within("TLS slowloris", slowloris(tls, HEADER).await, HEADER);
    // A client that never finishes the handshake: the handshake timeout.
    let mut tcp = TcpStream::connect(s.https()).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let took = until_closed(&mut tcp, HANDSHAKE + SLACK * 3)
        .await
        .map(|(t, _)| t);
    assert_within("stalled TLS handshake", took, HANDSHAKE);
    let labels = [("listener", "https"), ("reason", "header_timeout")];
    assert_eq!(
        s.wait_metric(
            "sigil_inbound_connections_closed_total",
            &labels,
            1.0,
            SLACK
        )
        .await,
        1.0
    );
    let labels = [("listener", "https"), ("reason", "tls_handshake_timeout")];
    assert_eq!(
        s.wait_metric(
            "sigil_inbound_connections_closed_total",
            &labels,
            1.0,
            SLACK
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_keepalive_connections_are_closed_over_http1_and_http2() {
    let s = start(&[]);
    let h1 = async {
        let io = TokioIo::new(TcpStream::connect(s.http()).await.unwrap());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        let conn = tokio::spawn(conn);
        let req = http::Request::get("/")
            .header("host", "open.example")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
        let idle = Instant::now();
        tokio::time::timeout(KEEPALIVE + SLACK * 3, conn)
            .await
            .ok()
            .map(|_| idle.elapsed())
    };
    let h2 = async {
        let io = TokioIo::new(s.tls(&[b"h2"]).await);
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let req = http::Request::get("https://open.example/")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
        let idle = Instant::now();
        tokio::time::timeout(KEEPALIVE + SLACK * 3, conn)
            .await
            .ok()
            .map(|_| idle.elapsed())
    };
    let (h1, h2) = tokio::join!(h1, h2);
    // Idle connections wait keepalive_idle_secs, not the (shorter) header timeout.
    assert_within("idle HTTP/1.1", h1, KEEPALIVE);
    assert_within("idle HTTP/2", h2, KEEPALIVE);
    let closed = s
        .wait_metric(
            "sigil_inbound_connections_closed_total",
            &[("reason", "idle_timeout")],
            2.0,
            SLACK,
        )
        .await;
    assert_eq!(closed, 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_that_stops_gets_408_and_the_connection_closes() {
    let s = start(&[]);
    let mut stream = TcpStream::connect(s.http()).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: open.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await
        .unwrap();
    let (took, got) = until_closed(&mut stream, BODY_IDLE + SLACK * 3)
        .await
        .expect("the connection is closed");
    let response = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 408"), "{response}");
    assert!(response.contains("connection: close"), "{response}");
    assert!(response.contains("body_idle_timeout_ms"), "{response}");
    assert_within("stalled chunked body", Some(took), BODY_IDLE);
    let labels = [("listener", "http"), ("reason", "body_timeout")];
    assert_eq!(
        s.wait_metric(
            "sigil_inbound_connections_closed_total",
            &labels,
            1.0,
            SLACK
        )
        .await,
        1.0
    );
    assert_eq!(
        s.metric("sigil_requests_total", &[("status", "408")]).await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_request_body_holds_no_instance_slot() {
    // One slot for the probe worker. Before, the slot was taken before the
    // body was read: two bytes of a ten-byte body held it for as long as
    // the client kept sending (a byte per `body_idle_timeout_ms` is enough),
    // and every other client of the worker got 503.
    let s = start(&[
        ("max_instances", "2"),
        ("worker_share", "0.5"),
        ("body_idle_timeout_ms", "10000"),
    ]);
    let mut slow = TcpStream::connect(s.http()).await.unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: open.example\r\nContent-Length: 10\r\n\r\nsl")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..3 {
        let other = client
            .get(format!("http://{}/", s.http()))
            .send()
            .await
            .unwrap();
        let status = other.status();
        assert_eq!(status, 200, "{}", other.text().await.unwrap());
    }
    // The slow client is still served once its body is complete.
    slow.write_all(b"ow body!").await.unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), slow.read_exact(&mut head))
        .await
        .expect("the slow client's response")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&head));
}

/// A TCP connection with a tiny receive buffer, so our unread response fills it at once.
async fn tiny_window(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_that_never_read_are_dropped_after_the_write_timeout() {
    let s = start(&[]);
    const BIG: usize = 8 << 20;
    // HTTP/1.1: the socket stops taking our output.
    let mut h1 = tiny_window(s.http()).await;
    h1.write_all(format!("GET /big?{BIG} HTTP/1.1\r\nHost: open.example\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut status = [0u8; 12];
    h1.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 200", "the big response starts");
    // HTTP/2: the stream's window is never opened; the socket stays writable.
    let mut h2 = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    h2.initial_stream_window_size(1024);
    let (mut sender, conn) = h2
        .handshake(TokioIo::new(s.tls(&[b"h2"]).await))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(format!("https://open.example/big?{BIG}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let stalled_at = Instant::now();
    let labels = [("reason", "write_timeout")];
    let dropped = s
        .wait_metric(
            "sigil_inbound_connections_closed_total",
            &labels,
            2.0,
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(dropped, 2.0, "both connections are dropped");
    let h2_closed = tokio::time::timeout(SLACK, conn)
        .await
        .ok()
        .map(|_| stalled_at.elapsed());
    assert!(
        h2_closed.is_some_and(|t| t <= WRITE + SLACK * 2),
        "h2 closed after {h2_closed:?}"
    );
    drop(resp);
    // What was not yet in the kernel's buffers is gone: the response is cut short.
    let (_, got) = until_closed(&mut h1, Duration::from_secs(10))
        .await
        .expect("closed");
    assert!(got.len() < BIG, "read the whole {} bytes", got.len());
    assert_eq!(s.metric("sigil_inbound_connections", &[]).await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_connection_limit_new_connections_close_at_once_and_admin_answers() {
    let s = start(&[
        ("max_connections", "20"),
        ("header_read_timeout_ms", "30000"),
        ("tls_handshake_timeout_ms", "30000"),
    ]);
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(TcpStream::connect(s.http()).await.unwrap());
    }
    for _ in 0..8 {
        held.push(TcpStream::connect(s.https()).await.unwrap());
    }
    let open = s
        .wait_metric("sigil_inbound_connections", &[], 20.0, SLACK)
        .await;
    assert_eq!(open, 20.0);
    for addr in [s.http(), s.https()] {
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let closed = until_closed(&mut refused, Duration::from_millis(500)).await;
        assert!(
            closed.is_some(),
            "a connection over the limit to {addr} stayed open"
        );
    }
    let admin = s.sigil.admin.unwrap();
    let health = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let health = health
        .get(format!("http://{admin}/healthz"))
        .send()
        .await
        .expect("/healthz answers");
    assert_eq!(health.status(), 200);
    let refused = s
        .metric(
            "sigil_inbound_connections_closed_total",
            &[("reason", "connection_limit")],
        )
        .await;
    assert_eq!(refused, 2.0);
    held.truncate(19);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(s.sigil.http_url("/"))
        .send()
        .await;
    assert_eq!(resp.expect("served once a slot is free").status(), 200);
    assert!(
        s.sigil
            .logs()
            .contains("server.max_connections (20) reached"),
        "{}",
        s.sigil.logs()
    );
}

/// CPU time (user + system) the process `pid` has used.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which ends with ')'): state is field 3,
    // utime and stime are fields 14 and 15, in clock ticks of 10 ms.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Resident memory of the process `pid`, in KiB.
/// Resident memory of `pid` in KiB, without its wasm instance slots.
///
/// A pooling-allocator slot keeps the pages its last instance wrote (up to
/// 4 MiB) resident for the next instance, so after a burst the pool holds
/// about (instances alive at once) × (pages each wrote): memory of the
/// instance pool, bounded by `server.max_instances`, not of connections.
/// A slot is an anonymous mapping right before the PROT_NONE rest of its
/// reservation (gigabytes); everything else counts.
fn rss_kib(pid: u32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    // (start, end, readable/writable, anonymous, rss KiB) of each mapping.
    let mut maps: Vec<(u64, u64, bool, bool, u64)> = Vec::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-')
            && !first.ends_with(':')
        {
            let perms = fields.next().unwrap_or_default();
            let anonymous = fields.nth(3).is_none();
            let range = |v: &str| u64::from_str_radix(v, 16).unwrap();
            maps.push((range(start), range(end), perms != "---p", anonymous, 0));
        } else if let Some(kb) = line.strip_prefix("Rss:") {
            let kb = kb.trim().trim_end_matches("kB").trim().parse().unwrap();
            maps.last_mut().expect("Rss after a mapping").4 = kb;
        }
    }
    let reservation = |m: &(u64, u64, bool, bool, u64)| !m.2 && m.1 - m.0 >= 1 << 30;
    maps.iter()
        .enumerate()
        .filter(|(i, m)| {
            let slot = m.3
                && maps
                    .get(i + 1)
                    .is_some_and(|n| n.0 == m.1 && reservation(n));
            !slot
        })
        .map(|(_, m)| m.4)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn accept_backs_off_when_out_of_descriptors_and_says_so() {
    use rustix::process::{Pid, Resource, Rlimit, prlimit};
    let s = start(&[
        ("max_connections", "100000"),
        ("header_read_timeout_ms", "30000"),
    ]);
    let pid = s.sigil.pid();
    // Leave the server a handful of descriptors, then connect more clients than that.
    let in_use = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    let limit = Rlimit {
        current: Some(in_use + 8),
        maximum: Some(in_use + 8),
    };
    let sigil_pid = Pid::from_raw(pid as i32).unwrap();
    prlimit(Some(sigil_pid), Resource::Nofile, limit).expect("lower sigil's descriptor limit");
    let mut held = Vec::new();
    for _ in 0..24 {
        held.push(TcpStream::connect(s.http()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu_before = cpu_time(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = cpu_time(pid) - cpu_before;
    assert!(
        cpu < Duration::from_millis(400),
        "sigil used {cpu:?} of CPU in 2 s while out of descriptors (spinning on accept?)"
    );
    drop(held);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let resp = client.get(s.sigil.http_url("/")).send().await;
    assert_eq!(
        resp.expect("served again once descriptors are free")
            .status(),
        200
    );
    let labels = [("listener", "http"), ("kind", "process_descriptor_limit")];
    let errors = s.metric("sigil_accept_errors_total", &labels).await;
    assert!(
        (1.0..40.0).contains(&errors),
        "{errors} accept errors counted"
    );
    let logs = s.sigil.logs();
    let reports = logs.matches("accept failed").count();
    assert!(
        (1..=2).contains(&reports),
        "{reports} log lines about accept:\n{logs}"
    );
    assert!(logs.contains("out of file descriptors"), "{logs}");
}

/// The slow clients of the headline test.
#[derive(Clone, Copy, Debug)]
enum Slow {
    /// Sends its head one byte at a time.
    Head,
    /// Sends part of a chunked body, then nothing.
    Body,
    /// Sends one request, reads the answer, then sits idle.
    Idle,
    /// Asks for a response over cleartext HTTP/2 and never opens its stream window.
    NoRead,
}

/// The headline test's header timeout: longer than the other tests', since
/// 500 clients starting at once on two cores are slow to send even a whole head.
const HEADLINE_HEADER: Duration = Duration::from_millis(2500);
/// The response each no-read client asks for (small: a debug build spends
/// about 0.1 s of CPU per MiB of response body).
const HEADLINE_BIG: usize = 256 << 10;
/// The body each stalled-body client sends before it stops.
const HEADLINE_BODY: usize = 256 << 10;
/// Extra lateness allowed under the headline test's load.
const LOAD_SLACK: Duration = Duration::from_millis(3000);
/// A slow client's connection, kept open (from its side) until the test ends.
type Held = Box<dyn std::any::Any + Send>;
type Outcome = Result<Held, String>;

fn in_time(what: &str, took: Option<Duration>, timeout: Duration) -> Result<(), String> {
    match took {
        Some(t) if t <= timeout + LOAD_SLACK => Ok(()),
        other => Err(format!(
            "{what}: closed after {other:?}, timeout {timeout:?}"
        )),
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    TcpStream::connect(addr).await.map_err(|e| e.to_string())
}

/// Sends a chunked body of [`HEADLINE_BODY`] bytes, then nothing: 408.
async fn stalled_body(addr: SocketAddr) -> Outcome {
    let mut s = connect(addr).await?;
    let mut request =
        b"POST / HTTP/1.1\r\nHost: open.example\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(format!("{HEADLINE_BODY:x}\r\n").as_bytes());
    request.resize(request.len() + HEADLINE_BODY, b'b');
    request.extend_from_slice(b"\r\n");
    s.write_all(&request).await.map_err(|e| e.to_string())?;
    match until_closed(&mut s, BODY_IDLE + LOAD_SLACK * 2).await {
        Some((took, got)) if got.starts_with(b"HTTP/1.1 408") => {
            in_time("stalled body", Some(took), BODY_IDLE)?;
            Ok(Box::new(s))
        }
        other => Err(format!(
            "stalled body: no 408 ({:?})",
            other.map(|(t, _)| t)
        )),
    }
}

/// Sends one request, reads the answer, then sits idle.
async fn idle_after_one_request(addr: SocketAddr) -> Outcome {
    let mut s = connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: open.example\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    while !got.ends_with(b"probe ok\n") {
        let mut buf = [0u8; 1024];
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return Err("idle: no response".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let closed = until_closed(&mut s, KEEPALIVE + LOAD_SLACK * 2).await;
    in_time("idle", closed.map(|(t, _)| t), KEEPALIVE)?;
    Ok(Box::new(s))
}

/// Over cleartext HTTP/2, asks for [`HEADLINE_BIG`] bytes with a stream
/// window of 1 KiB it never opens: the rest stays in the server's memory,
/// not the kernel's, until the write timeout drops the connection.
async fn never_reads(addr: SocketAddr) -> Outcome {
    let started = Instant::now();
    let tcp = connect(addr).await?;
    let mut h2 = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    h2.initial_stream_window_size(1024);
    let (mut sender, conn) = h2
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let req = http::Request::get(format!("http://open.example/big?{HEADLINE_BIG}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    // Under this load the server may drop the connection before this client
    // has even read the response head: that is closed too.
    let resp = sender.send_request(req).await.ok();
    let closed = tokio::time::timeout(WRITE + LOAD_SLACK * 2, conn)
        .await
        .ok();
    in_time("no-read", closed.map(|_| started.elapsed()), WRITE)?;
    Ok(Box::new((sender, resp)))
}

/// Run one slow client; `Err` says how it was not closed in time.
async fn slow_client(addr: SocketAddr, kind: Slow) -> Outcome {
    let outcome = match kind {
        Slow::Head => {
            let took = slowloris(connect(addr).await?, HEADLINE_HEADER).await;
            in_time("slow head", took, HEADLINE_HEADER).map(|()| Box::new(()) as Held)
        }
        Slow::Body => stalled_body(addr).await,
        Slow::Idle => idle_after_one_request(addr).await,
        Slow::NoRead => never_reads(addr).await,
    };
    outcome.map_err(|e| format!("{kind:?}: {e}"))
}

/// A well-behaved client requesting `/` until `stop`; returns (ok, total).
async fn normal_client(url: String, stop: tokio::sync::watch::Receiver<bool>) -> (u32, u32) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (mut ok, mut total) = (0, 0);
    while !*stop.borrow() {
        total += 1;
        let good = match client.get(&url).send().await {
            Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|b| b == "probe ok\n"),
            _ => false,
        };
        ok += u32::from(good);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (ok, total)
}

/// 500 slow clients of every kind at once; returns what they hold, the
/// failures, and the server's peak RSS while they ran.
async fn five_hundred_slow_clients(s: &Setup) -> (Vec<Held>, Vec<String>, u64) {
    let kinds = [Slow::Head, Slow::Head, Slow::Body, Slow::Idle, Slow::NoRead];
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..500 {
        slow.spawn(slow_client(s.http(), kinds[i % kinds.len()]));
        // They arrive over about a second, as a crowd would.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (mut held, mut failures, mut peak) = (Vec::new(), Vec::new(), 0);
    while let Some(done) = slow.join_next().await {
        peak = peak.max(rss_kib(s.sigil.pid()));
        match done.expect("slow client task") {
            Ok(h) => held.push(h),
            Err(e) => failures.push(e),
        }
    }
    (held, failures, peak)
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_slow_clients_do_not_starve_a_normal_client_or_keep_memory() {
    let s = start(&[(
        "header_read_timeout_ms",
        &HEADLINE_HEADER.as_millis().to_string(),
    )]);
    let pid = s.sigil.pid();
    let warm = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..3 {
        let body = warm
            .get(s.sigil.http_url(&format!("/big?{HEADLINE_BIG}")))
            .send()
            .await
            .unwrap();
        assert_eq!(body.bytes().await.unwrap().len(), HEADLINE_BIG);
    }
    drop(warm);
    let baseline = rss_kib(pid);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let normal = tokio::spawn(normal_client(s.sigil.http_url("/"), stopped));
    // The slow clients keep their sockets until the end, as real ones would.
    let (_held, failures, peak) = five_hundred_slow_clients(&s).await;
    let _ = stop.send(true);
    let (ok, total) = normal.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} slow clients were not closed in time: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        total >= 50 && f64::from(ok) >= 0.99 * f64::from(total),
        "normal client: {ok} of {total} succeeded"
    );
    for (reason, count) in [
        ("header_timeout", 200.0),
        ("body_timeout", 100.0),
        ("idle_timeout", 100.0),
        ("write_timeout", 100.0),
    ] {
        let labels = [("listener", "http"), ("reason", reason)];
        let closed = s
            .metric("sigil_inbound_connections_closed_total", &labels)
            .await;
        assert!(
            closed >= count,
            "{closed} connections closed for {reason}, expected {count}"
        );
    }
    let open = s.metric("sigil_inbound_connections", &[]).await;
    assert!(open <= 1.0, "{open} connections still open");
    assert_memory_released(&s, baseline, peak).await;
}

/// After a wave of slow clients (RSS `baseline` before, `peak` during) the
/// memory they cost is given back: resident memory returns to near the
/// baseline (Sigil returns its allocator's free memory once a burst of
/// connections has closed), and a second wave does not add to the first. (Before the
/// timeouts every wave's connections stayed open and each added its whole
/// cost; before the trimming, RSS stayed at the peak.)
async fn assert_memory_released(s: &Setup, baseline: u64, peak: u64) {
    let pid = s.sigil.pid();
    let grown = peak.saturating_sub(baseline);
    assert!(
        grown >= 24 * 1024,
        "the slow clients should cost memory: {baseline} -> {peak} KiB"
    );
    let near_baseline = baseline + (grown / 5).max(8 * 1024);
    let settled = settle_rss(pid, near_baseline).await;
    let (_held, failures, second_peak) = five_hundred_slow_clients(s).await;
    let after_second = settle_rss(pid, near_baseline).await;
    eprintln!(
        "RSS without instance slots, KiB: baseline {baseline}, peak {peak}, after {settled}; second wave: peak {second_peak}, after {after_second}"
    );
    assert!(failures.is_empty(), "second wave: {failures:?}");
    assert!(
        settled <= near_baseline && after_second <= near_baseline,
        "RSS did not return to near its baseline: {baseline} KiB before, {peak} KiB at the peak, {settled} KiB after, {after_second} KiB after a second wave"
    );
    assert!(
        second_peak <= peak + grown / 4,
        "a second wave added to the first: peaks {peak} KiB then {second_peak} KiB"
    );
}

/// RSS once it is at most `target` KiB, or after 10 s, whichever comes first
/// (Sigil looks at its connection count every 2 s, and releases memory once
/// the count has fallen and held still for a look).
async fn settle_rss(pid: u32, target: u64) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = rss_kib(pid);
        if now <= target || std::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
