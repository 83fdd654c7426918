//! Self-check of the load generator and the baselines, loopback only and
//! bounded in time (about 1 s per run) and request count.

use std::path::Path;
use std::time::Duration;

use sigil_bench::baseline::bare_proxy::{self, BareProxyConfig};
use sigil_bench::baseline::bare_server::{self, BareServerConfig};
use sigil_bench::baseline::mtls_origin::{self, MtlsOriginConfig};
use sigil_bench::child::{BareServerSpec, ChildServer, ServerSpec};
use sigil_bench::loadgen::{self, ClientTls, LoadConfig, LoadReport, Mode, Stop};
use sigil_bench::pki::TestPki;
use sigil_bench::procstat::{self, CpuUse};

const HOST: &str = "pay.alpha.example";
/// Per-run bounds: about a second, never more than this many requests.
const RUN: Duration = Duration::from_millis(1000);
const MAX_REQUESTS: u64 = 50_000;
/// Hard bound on a whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

fn pki() -> TestPki {
    sigil_bench::install_crypto_provider();
    TestPki::generate(&[HOST], &["bench-client", "proxy-client"]).expect("test PKI")
}

fn load(
    pki: &TestPki,
    url: &str,
    addr: std::net::SocketAddr,
    mode: Mode,
    concurrency: usize,
) -> LoadConfig {
    let tls = ClientTls::from_pem(pki.ca_pem(), pki.client("bench-client"));
    let mut cfg = LoadConfig::new(url, tls).expect("load config");
    cfg.connect = Some(addr);
    cfg.mode = mode;
    cfg.concurrency = concurrency;
    cfg.stop = Stop::First(RUN, MAX_REQUESTS);
    cfg.warmup = Duration::ZERO;
    cfg.request_timeout = Duration::from_secs(5);
    cfg.label = format!("test {mode}");
    cfg
}

async fn run(cfg: &LoadConfig) -> LoadReport {
    let report = tokio::time::timeout(TEST_TIMEOUT, loadgen::run(cfg))
        .await
        .expect("load run timed out")
        .expect("load run");
    println!("{}", report.table_row());
    report
}

fn assert_clean(r: &LoadReport) {
    assert!(r.requests > 0, "no requests: {r:?}");
    assert_eq!(r.errors, 0, "errors: {:?}", r.errors_by_kind);
    assert!(r.requests <= MAX_REQUESTS);
    assert!(r.latency_us.p50 > 0 && r.latency_us.p50 <= r.latency_us.max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_modes_against_bare_server() {
    let pki = pki();
    let cfg = BareServerConfig::from_pki(&pki, &[HOST])
        .with_extra_hostnames(&pki, 200, false)
        .expect("extra hostnames");
    let server = bare_server::start(cfg).await.expect("bare server");
    assert_eq!(server.hostnames(), 201);
    let url = format!("https://{HOST}/hello");
    println!("{}", LoadReport::table_header());

    // HTTP/1.1 keep-alive: one handshake per worker, no more.
    let r = run(&load(&pki, &url, server.addr(), Mode::H1KeepAlive, 4)).await;
    assert_clean(&r);
    assert_eq!(r.handshakes, 4, "h1 keep-alive must reuse its connections");
    assert_eq!(
        r.body_bytes,
        r.requests * bare_server::HELLO.len() as u64,
        "every body is the hello text"
    );

    // HTTP/2: all workers on the configured connections.
    let mut cfg = load(&pki, &url, server.addr(), Mode::H2, 8);
    cfg.h2_connections = 2;
    let r = run(&cfg).await;
    assert_clean(&r);
    assert_eq!(r.handshakes, 2, "h2 workers must share the connections");

    // New connection per request: a full handshake each time.
    let r = run(&load(
        &pki,
        &url,
        server.addr(),
        Mode::NewConnectionPerRequest,
        4,
    ))
    .await;
    assert_clean(&r);
    assert_eq!(r.handshakes, r.requests, "one handshake per request");

    // An extra hostname chosen by SNI through the lazy acceptor.
    let mut cfg = load(
        &pki,
        "https://localhost/",
        server.addr(),
        Mode::H1KeepAlive,
        2,
    );
    cfg.server_name = Some("h123.extra.bench.example".into());
    cfg.stop = Stop::Requests(50);
    let r = run(&cfg).await;
    assert_clean(&r);
    assert_eq!(r.requests, 50);

    // Warm-up is excluded from the measured counts.
    let mut cfg = load(&pki, &url, server.addr(), Mode::H1KeepAlive, 2);
    cfg.warmup = Duration::from_millis(200);
    cfg.stop = Stop::Requests(100);
    let r = run(&cfg).await;
    assert_clean(&r);
    assert_eq!(r.requests, 100);
    assert!(r.warmup_requests > 0);
    assert_eq!(r.warmup_handshakes + r.handshakes, 2);

    // No client certificate: refused, reported as errors, bounded.
    let mut cfg = load(&pki, &url, server.addr(), Mode::NewConnectionPerRequest, 2);
    cfg.tls = ClientTls::from_pem(pki.ca_pem(), None);
    cfg.stop = Stop::Requests(10);
    let r = run(&cfg).await;
    assert_eq!(r.requests, 0);
    assert_eq!(r.errors, 10, "{:?}", r.errors_by_kind);

    server.shutdown().await;
}

async fn proxy_keeps_origin_connections(origin_http2: bool) {
    let pki = pki();
    let origin = mtls_origin::start(MtlsOriginConfig::from_pki(&pki))
        .await
        .expect("origin");
    let mut cfg =
        BareProxyConfig::from_pki(&pki, &origin.url(), "proxy-client").expect("proxy config");
    cfg.origin_http2 = origin_http2;
    let pool = cfg.pool_max_idle_per_host as u64;
    let proxy = bare_proxy::start(cfg).await.expect("proxy");
    let url = format!("https://{HOST}/data");
    let concurrency = 4;

    let mut warm = load(&pki, &url, proxy.addr(), Mode::H1KeepAlive, concurrency);
    warm.warmup = Duration::from_millis(300);
    warm.stop = Stop::First(Duration::from_millis(500), MAX_REQUESTS);
    let r = run(&warm).await;
    assert_clean(&r);
    let after_warmup = origin.counters();
    assert!(after_warmup.handshakes >= 1);
    assert!(
        after_warmup.handshakes <= pool,
        "origin saw {} handshakes, pool is {pool}",
        after_warmup.handshakes
    );
    // Not asserted: with ALPN-negotiated h2, reqwest (hyper-util's legacy
    // pool) opens one connection per concurrent request until the first
    // handshake tells it the origin speaks h2, and with HTTP/1.1 it may race
    // a new connection against an idle one; so the count after warm-up is
    // between 1 and about the concurrency, but bounded by the pool.
    println!(
        "origin handshakes after warm-up: {} (h2 offered: {origin_http2})",
        after_warmup.handshakes
    );

    let r = run(&load(
        &pki,
        &url,
        proxy.addr(),
        Mode::H1KeepAlive,
        concurrency,
    ))
    .await;
    assert_clean(&r);
    let after = origin.counters();
    assert_eq!(
        after.handshakes, after_warmup.handshakes,
        "no new origin handshakes once the pool is warm"
    );
    assert_eq!(after.failed_handshakes, 0);
    // Every origin request carried the proxy's one identity.
    assert_eq!(after.requests_by_cn.len(), 1, "{:?}", after.requests_by_cn);
    assert_eq!(
        after.requests_by_cn.get("proxy-client"),
        Some(&after.requests)
    );
    assert!(after.requests >= r.requests);

    proxy.shutdown().await;
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_proxy_reuses_origin_connections_h2() {
    proxy_keeps_origin_connections(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_proxy_reuses_origin_connections_h1() {
    proxy_keeps_origin_connections(false).await;
}

/// A bare server in a child process (the suite binary with
/// `--serve-child`), its CPU read around the measured window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_server_in_a_child_process_with_its_cpu_read() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("temp dir");
    let spec =
        BareServerSpec::from_config(&BareServerConfig::from_pki(&pki, &[HOST])).expect("spec");
    let exe = Path::new(env!("CARGO_BIN_EXE_suite"));
    let child = tokio::time::timeout(
        TEST_TIMEOUT,
        ChildServer::spawn(exe, dir.path(), "bare", &ServerSpec::BareServer(spec)),
    )
    .await
    .expect("child start timed out")
    .expect("child server");
    let pid = child.pid();
    assert_ne!(pid, std::process::id());

    let url = format!("https://{HOST}/hello");
    let mut cfg = load(&pki, &url, child.addr(), Mode::H1KeepAlive, 4);
    cfg.warmup = Duration::from_millis(200);
    let probe = move || async move { procstat::sample(pid).expect("the child's /proc entry") };
    let w = tokio::time::timeout(TEST_TIMEOUT, loadgen::run_with_window(&cfg, probe))
        .await
        .expect("load run timed out")
        .expect("load run");
    println!("{}", w.report.table_row());
    assert_clean(&w.report);
    assert!(w.report.warmup_requests > 0);
    let start = w.start.expect("a reading at the start of the window");
    assert!(w.end.at > start.at);
    let cpu = CpuUse::between(&start, &w.end, w.report.requests_per_sec);
    println!("child: {cpu:?}");
    assert!(cpu.cpu_s > 0.0, "the server used no CPU: {cpu:?}");
    assert!(cpu.us_per_response > 0.0 && cpu.us_per_response.is_finite());
    assert!(cpu.threads >= 2, "a multi-threaded runtime: {cpu:?}");

    let counters = child.control().counters().await.expect("counters");
    assert_eq!(counters["handshakes"], 4u64, "{counters}");
    child.stop().await.expect("the child stops cleanly");
}
