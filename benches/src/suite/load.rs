//! The HTTPS load scenarios: H1 (keep-alive), H2 (new connection per
//! request, 1 and N hostnames) and S1 (subrequest through a binding).

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use super::{Options, Row, median, module_cache_dir, temp_dir};
use crate::baseline::bare_proxy::{self, BareProxyConfig};
use crate::baseline::bare_server::{self, BareServerConfig, EXTRA_SUFFIX};
use crate::baseline::mtls_origin::{self, MtlsOrigin, MtlsOriginConfig};
use crate::loadgen::{self, ClientTls, LoadConfig, LoadReport, Mode, Stop};
use crate::pki::{CertKeyPem, TestPki};
use crate::report::Comparison;
use crate::sigil::{self, module_path, toml_path, toml_str, write_cert};

/// The hostname every scenario's clients ask for.
const HOST: &str = "pay.alpha.example";

/// Both sides of a comparison, round by round.
struct Rounds {
    bare: Vec<LoadReport>,
    sigil: Vec<LoadReport>,
    /// Origin handshakes during each measured run (S1 only).
    bare_origin_hs: Vec<u64>,
    sigil_origin_hs: Vec<u64>,
}

/// Runs `base` against the bare server and Sigil, alternating which goes
/// first, `opts.rounds` times. With `origin`, each measured run is preceded
/// by a separate warm-up run and the origin's handshake counter is read
/// around the measured run.
async fn interleaved(
    opts: &Options,
    name: &str,
    base: &LoadConfig,
    bare: SocketAddr,
    sigil: SocketAddr,
    origin: Option<&MtlsOrigin>,
) -> Result<Rounds> {
    let mut rounds = Rounds {
        bare: Vec::new(),
        sigil: Vec::new(),
        bare_origin_hs: Vec::new(),
        sigil_origin_hs: Vec::new(),
    };
    println!("{}", LoadReport::table_header());
    for round in 0..opts.rounds {
        let order: [bool; 2] = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let (mut b, mut s) = (None, None);
        for is_sigil in order {
            let mut cfg = base.clone();
            cfg.connect = Some(if is_sigil { sigil } else { bare });
            cfg.label = format!(
                "{} {name} r{}",
                if is_sigil { "sigil" } else { "bare" },
                round + 1
            );
            let mut hs = None;
            let report = match origin {
                None => run_bounded(&cfg).await?,
                Some(origin) => {
                    let mut warm = cfg.clone();
                    warm.warmup = std::time::Duration::ZERO;
                    warm.stop = Stop::Duration(opts.warmup);
                    warm.label = format!("{} (warm-up)", cfg.label);
                    run_bounded(&warm).await?;
                    let before = origin.counters().handshakes;
                    cfg.warmup = std::time::Duration::ZERO;
                    let r = run_bounded(&cfg).await?;
                    hs = Some(origin.counters().handshakes - before);
                    r
                }
            };
            println!(
                "{}{}",
                report.table_row(),
                hs.map(|h| format!("  origin handshakes: {h}"))
                    .unwrap_or_default()
            );
            if is_sigil {
                rounds.sigil_origin_hs.extend(hs);
                s = Some(report);
            } else {
                rounds.bare_origin_hs.extend(hs);
                b = Some(report);
            }
        }
        let (b, s) = (b.context("no bare run")?, s.context("no sigil run")?);
        let cmp = Comparison::new(format!("{name} r{}", round + 1), b.clone(), s.clone());
        println!(
            "{:<28} throughput x{:.3}  p50 x{:.3}  p99 x{:.3}",
            cmp.scenario, cmp.throughput_ratio, cmp.p50_ratio, cmp.p99_ratio
        );
        rounds.bare.push(b);
        rounds.sigil.push(s);
    }
    Ok(rounds)
}

/// One load run with a hard bound of four times its nominal length + 60 s.
async fn run_bounded(cfg: &LoadConfig) -> Result<LoadReport> {
    let nominal = cfg.warmup
        + match cfg.stop {
            Stop::Duration(d) | Stop::First(d, _) => d,
            Stop::Requests(_) => std::time::Duration::from_secs(60),
        };
    tokio::time::timeout(
        nominal * 4 + std::time::Duration::from_secs(60),
        loadgen::run(cfg),
    )
    .await
    .with_context(|| format!("load run {} did not finish in time", cfg.label))?
}

/// The throughput row of a comparison, and its detail.
fn throughput_row(
    id: &str,
    measure: &str,
    unit: &str,
    min_ratio: f64,
    r: &Rounds,
) -> (Row, serde_json::Value) {
    let b: Vec<f64> = r.bare.iter().map(|x| x.requests_per_sec).collect();
    let s: Vec<f64> = r.sigil.iter().map(|x| x.requests_per_sec).collect();
    let per_round: Vec<f64> = b.iter().zip(&s).map(|(b, s)| s / b).collect();
    let (mb, ms) = (median(&b), median(&s));
    let ratio = ms / mb;
    let p50 = |v: &[LoadReport]| {
        median(
            &v.iter()
                .map(|x| x.latency_us.p50 as f64)
                .collect::<Vec<_>>(),
        )
    };
    let p99 = |v: &[LoadReport]| {
        median(
            &v.iter()
                .map(|x| x.latency_us.p99 as f64)
                .collect::<Vec<_>>(),
        )
    };
    let errors: u64 = r.bare.iter().chain(&r.sigil).map(|x| x.errors).sum();
    let lo = per_round.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = per_round.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut note = format!(
        "rounds {lo:.2}-{hi:.2}x; p50 {:.0}/{:.0} us, p99 {:.0}/{:.0} us (bare/sigil)",
        p50(&r.bare),
        p50(&r.sigil),
        p99(&r.bare),
        p99(&r.sigil)
    );
    if errors > 0 {
        note.push_str(&format!("; {errors} ERRORS"));
    }
    let row = Row {
        id: id.into(),
        measure: measure.into(),
        unit: unit.into(),
        baseline: Some(mb),
        sigil: ms,
        ratio: Some(ratio),
        target: format!(">= {min_ratio:.2}x"),
        pass: Some(ratio >= min_ratio && errors == 0),
        note,
    };
    let detail = json!({
        "bare": r.bare,
        "sigil": r.sigil,
        "per_round_ratio": per_round,
        "bare_origin_handshakes_after_warmup": r.bare_origin_hs,
        "sigil_origin_handshakes_after_warmup": r.sigil_origin_hs,
    });
    (row, detail)
}

/// A test PKI with the server names and clients every load scenario uses.
fn pki() -> Result<TestPki> {
    crate::install_crypto_provider();
    TestPki::generate(&[HOST], &["device", "proxy-client"])
}

/// The `[server]` section and the primary hostname of a Sigil manifest.
fn manifest_head(dir: &Path, pki: &TestPki) -> Result<String> {
    let (cert, key) = write_cert(dir, "server", pki.server())?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pki.ca_pem())?;
    Ok(format!(
        r#"[server]
https = "127.0.0.1:0"
reload_poll_secs = 0
module_cache = {cache}

[[hostnames]]
name = "{HOST}"
cert = {cert}
key = {key}
client_cert = "require"
client_ca = [{ca}]
"#,
        cache = toml_path(&module_cache_dir()),
        cert = toml_path(&cert),
        key = toml_path(&key),
        ca = toml_path(&ca),
    ))
}

fn load_config(opts: &Options, pki: &TestPki, url: &str, mode: Mode) -> Result<LoadConfig> {
    let mut cfg = LoadConfig::new(url, ClientTls::from_pem(pki.ca_pem(), pki.client("device")))?;
    cfg.mode = mode;
    cfg.concurrency = match mode {
        Mode::NewConnectionPerRequest => opts.handshake_concurrency,
        _ => opts.concurrency,
    };
    cfg.warmup = opts.warmup;
    cfg.stop = Stop::Duration(opts.measure);
    cfg.request_timeout = std::time::Duration::from_secs(10);
    Ok(cfg)
}

const HELLO_WORKER: &str = r#"
[[workers]]
name = "hello"
module = {module}

[[routes]]
worker = "hello"
"#;

/// H1: the hello worker behind inbound mTLS, HTTP/1.1 keep-alive, against
/// the bare hyper + rustls mTLS server.
pub(super) async fn h1(opts: &Options) -> Result<(Vec<Row>, serde_json::Value)> {
    let pki = pki()?;
    let dir = temp_dir("h1")?;
    let manifest = manifest_head(dir.path(), &pki)?
        + &HELLO_WORKER.replace("{module}", &toml_path(&module_path("hello")));
    let bare = bare_server::start(BareServerConfig::from_pki(&pki, &[HOST])).await?;
    let sigil = sigil::start(dir.path(), &manifest).await?;
    let cfg = load_config(
        opts,
        &pki,
        &format!("https://{HOST}/hello"),
        Mode::H1KeepAlive,
    )?;
    let rounds = interleaved(opts, "h1", &cfg, bare.addr(), sigil.https()?, None).await;
    sigil.shutdown().await;
    bare.shutdown().await;
    let rounds = rounds?;
    let (row, detail) = throughput_row(
        "H1",
        &format!("hello, mTLS keep-alive, c{}", cfg.concurrency),
        "req/s",
        0.8,
        &rounds,
    );
    Ok((vec![row], detail))
}

/// H2: a new mTLS connection (full handshake, no resumption) per request,
/// with `hostnames` hostnames configured on both sides. With more than one,
/// the extra names share one wildcard certificate (each still has its own
/// TLS configuration and client verifier) and the clients ask for one of
/// the extra names.
pub(super) async fn h2(opts: &Options, hostnames: usize) -> Result<(Vec<Row>, serde_json::Value)> {
    let pki = pki()?;
    let dir = temp_dir("h2")?;
    let extra = hostnames.saturating_sub(1);
    let bare_cfg =
        BareServerConfig::from_pki(&pki, &[HOST]).with_extra_hostnames(&pki, extra, false)?;
    let mut manifest = manifest_head(dir.path(), &pki)?;
    let mut target_host = HOST.to_string();
    if let Some((_, wildcard)) = bare_cfg.extra.first() {
        let (cert, key) = write_cert(dir.path(), "wildcard", wildcard)?;
        let ca = toml_path(&dir.path().join("ca.pem"));
        let (cert, key) = (toml_path(&cert), toml_path(&key));
        for (name, _) in &bare_cfg.extra {
            manifest.push_str(&format!(
                "\n[[hostnames]]\nname = {}\ncert = {cert}\nkey = {key}\nclient_cert = \"require\"\nclient_ca = [{ca}]\n",
                toml_str(name)
            ));
        }
        target_host = format!("h{}.{EXTRA_SUFFIX}", extra / 2);
    }
    manifest.push_str(&HELLO_WORKER.replace("{module}", &toml_path(&module_path("hello"))));
    let bare = bare_server::start(bare_cfg).await?;
    let sigil = sigil::start(dir.path(), &manifest).await?;
    let configured = sigil.runtime.current().hostnames.len();
    println!(
        "hostnames configured: bare {}, sigil {configured}; clients use SNI {target_host}; sigil loaded in {:.2} s",
        bare.hostnames(),
        sigil.load_time.as_secs_f64()
    );
    let cfg = load_config(
        opts,
        &pki,
        &format!("https://{target_host}/hello"),
        Mode::NewConnectionPerRequest,
    )?;
    let rounds = interleaved(
        opts,
        &format!("h2-{hostnames}"),
        &cfg,
        bare.addr(),
        sigil.https()?,
        None,
    )
    .await;
    sigil.shutdown().await;
    bare.shutdown().await;
    let rounds = rounds?;
    let label = if hostnames >= 1000 && hostnames.is_multiple_of(1000) {
        format!("{}k", hostnames / 1000)
    } else {
        hostnames.to_string()
    };
    let (mut row, detail) = throughput_row(
        &format!("H2-{label}"),
        &format!(
            "new mTLS conn/request, {hostnames} hostname{}, c{}",
            if hostnames == 1 { "" } else { "s" },
            cfg.concurrency
        ),
        "hs/s",
        0.9,
        &rounds,
    );
    row.note
        .push_str(&format!("; sigil hostnames {configured}"));
    Ok((vec![row], detail))
}

/// S1: the `records` example worker relaying to a loopback mTLS origin with
/// its default binding (a `[[certificates]]` entry), against the bare
/// proxy presenting the same certificate; origin handshakes counted after
/// warm-up.
pub(super) async fn s1(opts: &Options) -> Result<(Vec<Row>, serde_json::Value)> {
    let pki = pki()?;
    let dir = temp_dir("s1")?;
    let origin = mtls_origin::start(MtlsOriginConfig::from_pki(&pki)).await?;
    let origin_url = origin.url();
    let proxy_client: &CertKeyPem = pki.client("proxy-client").context("proxy-client")?;
    let (ccert, ckey) = write_cert(dir.path(), "proxy-client", proxy_client)?;
    let mut manifest = manifest_head(dir.path(), &pki)?;
    let ca = toml_path(&dir.path().join("ca.pem"));
    manifest.push_str(&format!(
        r#"
[outbound]
ca = [{ca}]
system_roots = false

[[certificates]]
name = "proxy-client"
cert = {ccert}
key = {ckey}
ca = {ca}

[[workers]]
name = "relay"
module = {module}
allowed_outbound_hosts = [{origin}]
default_binding = "origin"
vars = {{ RECORDS_ORIGIN = {origin} }}

[[workers.mtls_certificates]]
binding = "origin"
certificate = "proxy-client"

[[routes]]
worker = "relay"
"#,
        ccert = toml_path(&ccert),
        ckey = toml_path(&ckey),
        module = toml_path(&module_path("records")),
        origin = toml_str(&origin_url),
    ));
    let proxy_cfg = BareProxyConfig::from_pki(&pki, &origin_url, "proxy-client")?;
    let proxy = bare_proxy::start(proxy_cfg).await?;
    let sigil = sigil::start(dir.path(), &manifest).await?;
    let cfg = load_config(
        opts,
        &pki,
        &format!("https://{HOST}/data"),
        Mode::H1KeepAlive,
    )?;
    let rounds = interleaved(
        opts,
        "s1",
        &cfg,
        proxy.addr(),
        sigil.https()?,
        Some(&origin),
    )
    .await;
    let counters = origin.counters();
    sigil.shutdown().await;
    proxy.shutdown().await;
    origin.shutdown().await;
    let rounds = rounds?;
    let (row, mut detail) = throughput_row(
        "S1",
        &format!("subrequest via binding, keep-alive, c{}", cfg.concurrency),
        "req/s",
        0.7,
        &rounds,
    );
    let sigil_hs: u64 = rounds.sigil_origin_hs.iter().sum();
    let bare_hs: u64 = rounds.bare_origin_hs.iter().sum();
    let hs_row = Row {
        id: "S1".into(),
        measure: "origin handshakes after warm-up (all rounds)".into(),
        unit: "count".into(),
        baseline: Some(bare_hs as f64),
        sigil: sigil_hs as f64,
        ratio: None,
        target: "= 0".into(),
        pass: Some(sigil_hs == 0),
        note: format!(
            "origin saw {} requests, {} handshakes in all (warm-ups included), by CN {:?}",
            counters.requests, counters.handshakes, counters.requests_by_cn
        ),
    };
    detail["origin"] = json!(counters);
    Ok((vec![row, hs_row], detail))
}
