//! Workers, connections and the run loop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::Resumption;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::report::{LatencyUs, LoadReport};
use super::{LoadConfig, Mode, Stop};
use crate::tls::client_config;

/// Why a request failed.
#[derive(Clone, Copy, Debug)]
enum Fail {
    Connect,
    Tls,
    Alpn,
    HttpHandshake,
    Request,
    Body,
    Timeout,
    Status(u16),
}

impl Fail {
    fn kind(self) -> String {
        match self {
            Fail::Connect => "connect".into(),
            Fail::Tls => "tls".into(),
            Fail::Alpn => "alpn".into(),
            Fail::HttpHandshake => "http-handshake".into(),
            Fail::Request => "request".into(),
            Fail::Body => "body".into(),
            Fail::Timeout => "timeout".into(),
            Fail::Status(s) => format!("status-{s}"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Measure,
}

/// Where to connect and what to send.
struct Target {
    addr: SocketAddr,
    server_name: ServerName<'static>,
    /// `Host` header value (HTTP/1.1).
    host: http::HeaderValue,
    /// Origin-form request target (HTTP/1.1).
    path: http::Uri,
    /// Absolute URI (HTTP/2: scheme + `:authority`).
    absolute: http::Uri,
}

/// State shared by all workers.
struct Shared {
    target: Target,
    connector: TlsConnector,
    mode: Mode,
    timeout: Duration,
    measure_start: Instant,
    deadline: Option<Instant>,
    budget: Option<u64>,
    issued: AtomicU64,
    h2_slots: Vec<Mutex<Option<http2::SendRequest<Empty<Bytes>>>>>,
}

impl Shared {
    /// May a worker start another request, and in which phase?
    fn ticket(&self) -> Option<Phase> {
        let now = Instant::now();
        if now < self.measure_start {
            return Some(Phase::Warmup);
        }
        if let Some(deadline) = self.deadline
            && now >= deadline
        {
            return None;
        }
        if let Some(budget) = self.budget
            && self.issued.fetch_add(1, Ordering::Relaxed) >= budget
        {
            return None;
        }
        Some(Phase::Measure)
    }

    async fn connect_tls(&self) -> Result<TlsStream<TcpStream>, Fail> {
        let tcp = TcpStream::connect(self.target.addr)
            .await
            .map_err(|_| Fail::Connect)?;
        let _ = tcp.set_nodelay(true);
        self.connector
            .connect(self.target.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "TLS handshake failed");
                Fail::Tls
            })
    }

    async fn connect_h1(&self) -> Result<http1::SendRequest<Empty<Bytes>>, Fail> {
        let tls = self.connect_tls().await?;
        let (sender, conn) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|_| Fail::HttpHandshake)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn connect_h2(&self) -> Result<http2::SendRequest<Empty<Bytes>>, Fail> {
        let tls = self.connect_tls().await?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(Fail::Alpn);
        }
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|_| Fail::HttpHandshake)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn h1_request(&self, close: bool) -> Request<Empty<Bytes>> {
        let mut req = Request::new(Empty::new());
        *req.uri_mut() = self.target.path.clone();
        let headers = req.headers_mut();
        headers.insert(http::header::HOST, self.target.host.clone());
        if close {
            headers.insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        req
    }

    fn h2_request(&self) -> Request<Empty<Bytes>> {
        let mut req = Request::new(Empty::new());
        *req.uri_mut() = self.target.absolute.clone();
        *req.version_mut() = http::Version::HTTP_2;
        req
    }
}

/// Reads the whole body; a non-2xx status is a failure (after the body is
/// drained, so the connection stays usable).
async fn finish(resp: Response<Incoming>) -> Result<u64, Fail> {
    let status = resp.status();
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Fail::Body)?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
        }
    }
    if status.is_success() {
        Ok(bytes)
    } else {
        Err(Fail::Status(status.as_u16()))
    }
}

/// One worker's counters.
struct Stats {
    hist: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    handshakes: u64,
    warmup_ok: u64,
    warmup_handshakes: u64,
    body_bytes: u64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            // 1 µs .. 60 s, 3 significant figures.
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            ok: 0,
            errors: BTreeMap::new(),
            handshakes: 0,
            warmup_ok: 0,
            warmup_handshakes: 0,
            body_bytes: 0,
        }
    }

    fn handshake(&mut self, phase: Phase) {
        match phase {
            Phase::Warmup => self.warmup_handshakes += 1,
            Phase::Measure => self.handshakes += 1,
        }
    }

    fn record(&mut self, phase: Phase, started: Instant, result: Result<u64, Fail>) {
        match (phase, result) {
            (Phase::Warmup, Ok(_)) => self.warmup_ok += 1,
            (Phase::Warmup, Err(_)) => {}
            (Phase::Measure, Ok(bytes)) => {
                let us = started.elapsed().as_micros().max(1) as u64;
                self.hist.saturating_record(us);
                self.ok += 1;
                self.body_bytes += bytes;
            }
            (Phase::Measure, Err(f)) => *self.errors.entry(f.kind()).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Stats) {
        let _ = self.hist.add(&other.hist);
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.handshakes += other.handshakes;
        self.warmup_ok += other.warmup_ok;
        self.warmup_handshakes += other.warmup_handshakes;
        self.body_bytes += other.body_bytes;
    }
}

/// Runs `fut` under the request timeout.
async fn timed<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, Fail>>,
) -> Result<T, Fail> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(Fail::Timeout))
}

async fn h1_worker(shared: Arc<Shared>) -> Stats {
    let mut stats = Stats::new();
    let mut conn: Option<http1::SendRequest<Empty<Bytes>>> = None;
    while let Some(phase) = shared.ticket() {
        let started = Instant::now();
        let mut handshook = false;
        let result = timed(shared.timeout, async {
            if conn.as_ref().is_none_or(|c| c.is_closed()) {
                conn = Some(shared.connect_h1().await?);
                handshook = true;
            }
            let sender = conn.as_mut().ok_or(Fail::Request)?;
            sender.ready().await.map_err(|_| Fail::Request)?;
            let resp = sender
                .send_request(shared.h1_request(false))
                .await
                .map_err(|_| Fail::Request)?;
            finish(resp).await
        })
        .await;
        if handshook {
            stats.handshake(phase);
        }
        if matches!(result, Err(f) if !matches!(f, Fail::Status(_))) {
            conn = None;
        }
        stats.record(phase, started, result);
    }
    stats
}

async fn new_conn_worker(shared: Arc<Shared>) -> Stats {
    let mut stats = Stats::new();
    while let Some(phase) = shared.ticket() {
        let started = Instant::now();
        let mut handshook = false;
        let result = timed(shared.timeout, async {
            let mut sender = shared.connect_h1().await?;
            handshook = true;
            let resp = sender
                .send_request(shared.h1_request(true))
                .await
                .map_err(|_| Fail::Request)?;
            finish(resp).await
        })
        .await;
        if handshook {
            stats.handshake(phase);
        }
        stats.record(phase, started, result);
    }
    stats
}

async fn h2_worker(shared: Arc<Shared>, slot: usize) -> Stats {
    let mut stats = Stats::new();
    let mut conn: Option<http2::SendRequest<Empty<Bytes>>> = None;
    while let Some(phase) = shared.ticket() {
        let started = Instant::now();
        let mut handshook = false;
        let result = timed(shared.timeout, async {
            if conn.as_ref().is_none_or(|c| c.is_closed()) {
                // One connection per slot: the first worker to find it
                // missing or closed reconnects, the others clone it.
                let mut guard = shared.h2_slots[slot].lock().await;
                if guard.as_ref().is_none_or(|c| c.is_closed()) {
                    *guard = Some(shared.connect_h2().await?);
                    handshook = true;
                }
                conn = guard.clone();
            }
            let sender = conn.as_mut().ok_or(Fail::Request)?;
            sender.ready().await.map_err(|_| Fail::Request)?;
            let resp = sender
                .send_request(shared.h2_request())
                .await
                .map_err(|_| Fail::Request)?;
            finish(resp).await
        })
        .await;
        if handshook {
            stats.handshake(phase);
        }
        if matches!(result, Err(f) if !matches!(f, Fail::Status(_))) {
            conn = None;
        }
        stats.record(phase, started, result);
    }
    stats
}

async fn resolve_target(cfg: &LoadConfig) -> Result<Target> {
    let host = cfg.url.host().context("URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = cfg.url.port_u16().unwrap_or(443);
    let addr = match cfg.connect {
        Some(a) => a,
        None => tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("resolving {host}:{port}"))?
            .next()
            .with_context(|| format!("{host}:{port} resolved to no address"))?,
    };
    let sni = cfg.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(sni.to_string())
        .with_context(|| format!("invalid server name {sni:?}"))?;
    let authority = match (&cfg.server_name, cfg.url.authority()) {
        (Some(name), _) => name.clone(),
        (None, Some(a)) => a.as_str().to_string(),
        (None, None) => host.to_string(),
    };
    let path = cfg
        .url
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    Ok(Target {
        addr,
        server_name,
        host: http::HeaderValue::from_str(&authority).context("invalid Host value")?,
        path: path.parse().context("invalid request path")?,
        absolute: format!("https://{authority}{path}")
            .parse()
            .context("invalid absolute URI")?,
    })
}

/// Runs the load described by `cfg` and reports the measured phase.
///
/// Needs a Tokio runtime (multi-threaded for meaningful numbers) and an
/// installed rustls crypto provider.
pub async fn run(cfg: &LoadConfig) -> Result<LoadReport> {
    Ok(run_with_window(cfg, || async {}).await?.report)
}

/// A load run with what `probe` read at both ends of its measured phase.
#[derive(Clone, Debug)]
pub struct Windowed<S> {
    /// The load generator's report of the measured phase.
    pub report: LoadReport,
    /// The probe's reading as the measured phase began (after warm-up);
    /// `None` if that reading failed (its task panicked).
    pub start: Option<S>,
    /// The probe's reading once every measured request had completed.
    pub end: S,
}

/// [`run`], calling `probe` when the measured phase begins (a task waiting
/// for the end of warm-up) and again right after the last measured request
/// completed, e.g. to read a server's CPU time around exactly the requests
/// the report counts.
pub async fn run_with_window<S, P, F>(cfg: &LoadConfig, probe: P) -> Result<Windowed<S>>
where
    P: Fn() -> F + Send + Sync + 'static,
    F: Future<Output = S> + Send + 'static,
    S: Send + 'static,
{
    let shared = prepare(cfg).await?;
    let measure_start = shared.measure_start;
    let probe = Arc::new(probe);
    let first = {
        let probe = probe.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_start.into()).await;
            probe().await
        })
    };
    let total = drive(cfg, &shared).await?;
    let elapsed_s = Instant::now()
        .saturating_duration_since(measure_start)
        .as_secs_f64();
    let end = probe().await;
    let start = first.await.ok();
    Ok(Windowed {
        report: report(cfg, total, elapsed_s),
        start,
        end,
    })
}

/// The state every worker shares: TLS client, target, phase boundaries.
async fn prepare(cfg: &LoadConfig) -> Result<Arc<Shared>> {
    anyhow::ensure!(cfg.concurrency > 0, "concurrency must be at least 1");
    let alpn = match cfg.mode {
        Mode::H2 => vec![b"h2".to_vec()],
        Mode::H1KeepAlive | Mode::NewConnectionPerRequest => vec![b"http/1.1".to_vec()],
    };
    let mut tls = client_config(&cfg.tls.ca_pem, cfg.tls.identity.as_ref(), alpn)?;
    if !cfg.tls_resumption {
        tls.resumption = Resumption::disabled();
    }
    let target = resolve_target(cfg).await?;
    let h2_connections = cfg.h2_connections.clamp(1, cfg.concurrency);
    let measure_start = Instant::now() + cfg.warmup;
    let (deadline, budget) = match cfg.stop {
        Stop::Duration(d) => (Some(measure_start + d), None),
        Stop::Requests(n) => (None, Some(n)),
        Stop::First(d, n) => (Some(measure_start + d), Some(n)),
    };
    Ok(Arc::new(Shared {
        target,
        connector: TlsConnector::from(Arc::new(tls)),
        mode: cfg.mode,
        timeout: cfg.request_timeout,
        measure_start,
        deadline,
        budget,
        issued: AtomicU64::new(0),
        h2_slots: (0..h2_connections).map(|_| Mutex::new(None)).collect(),
    }))
}

/// Runs `cfg.concurrency` workers to the end and merges their counters.
async fn drive(cfg: &LoadConfig, shared: &Arc<Shared>) -> Result<Stats> {
    let h2_connections = shared.h2_slots.len();
    let workers: Vec<_> = (0..cfg.concurrency)
        .map(|i| {
            let shared = shared.clone();
            match shared.mode {
                Mode::H1KeepAlive => tokio::spawn(h1_worker(shared)),
                Mode::H2 => tokio::spawn(h2_worker(shared, i % h2_connections)),
                Mode::NewConnectionPerRequest => tokio::spawn(new_conn_worker(shared)),
            }
        })
        .collect();
    let mut total = Stats::new();
    for w in workers {
        total.merge(w.await.context("load worker panicked")?);
    }
    Ok(total)
}

/// The report of a finished run whose measured phase lasted `elapsed_s`.
fn report(cfg: &LoadConfig, total: Stats, elapsed_s: f64) -> LoadReport {
    LoadReport {
        label: cfg.label.clone(),
        mode: cfg.mode.to_string(),
        concurrency: cfg.concurrency,
        requests: total.ok,
        errors: total.errors.values().sum(),
        errors_by_kind: total.errors,
        handshakes: total.handshakes,
        warmup_requests: total.warmup_ok,
        warmup_handshakes: total.warmup_handshakes,
        body_bytes: total.body_bytes,
        elapsed_s,
        requests_per_sec: if elapsed_s > 0.0 {
            total.ok as f64 / elapsed_s
        } else {
            0.0
        },
        latency_us: LatencyUs::from_histogram(&total.hist),
    }
}
