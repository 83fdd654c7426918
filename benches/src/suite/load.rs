//! The HTTPS load scenarios: H1 (keep-alive), H2 (new connection per
//! request, 1 and N hostnames) and S1 (subrequest through a binding).
//!
//! Every server runs in a child process of its own (see [`crate::child`]);
//! the load generator runs in this process. See [`super::measure`] for how
//! each window's CPU is read and [`super::summary`] for the figures.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use super::measure::{Rounds, Side, interleaved};
use super::summary::{LoadLine, Targets};
use super::{Options, Outcome, Row, module_cache_dir, temp_dir};
use crate::baseline::bare_proxy::BareProxyConfig;
use crate::baseline::bare_server::{BareServerConfig, EXTRA_SUFFIX};
use crate::baseline::mtls_origin::MtlsOriginConfig;
use crate::child::{BareProxySpec, BareServerSpec, ChildServer, OriginSpec, ServerSpec};
use crate::loadgen::{ClientTls, LoadConfig, Mode, Stop};
use crate::pki::{CertKeyPem, TestPki};
use crate::sigil::{module_path, toml_path, toml_str, write_cert};

/// The hostname every scenario's clients ask for.
const HOST: &str = "pay.alpha.example";

/// Issue 13: H1 hello over mTLS keep-alive.
const H1_TARGETS: Targets = Targets {
    min_rate_ratio: 0.5,
    max_cpu_ratio: Some(3.0),
    max_p999_us: Some(10_000.0),
};

/// Issue 13: H2, a new mTLS connection per request.
const H2_TARGETS: Targets = Targets {
    min_rate_ratio: 0.95,
    max_cpu_ratio: None,
    max_p999_us: None,
};

/// Issue 13: S1, a subrequest through a binding (handshakes: a row of its own).
const S1_TARGETS: Targets = Targets {
    min_rate_ratio: 0.7,
    max_cpu_ratio: Some(2.0),
    max_p999_us: None,
};

/// Starts the server of `spec` in a child process (this binary with
/// `--serve-child`), its files in `dir`.
async fn spawn(dir: &Path, name: &str, spec: ServerSpec) -> Result<ChildServer> {
    let exe = std::env::current_exe().context("locating the suite binary")?;
    ChildServer::spawn(&exe, dir, name, &spec).await
}

/// Stops every child (in order), then reports the first failure.
async fn stop_all(children: Vec<ChildServer>) -> Result<()> {
    let mut first = Ok(());
    for c in children {
        let r = c.stop().await;
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// Writes Sigil's manifest as `dir/sigil.toml`.
fn write_manifest(dir: &Path, manifest: &str) -> Result<PathBuf> {
    let path = dir.join("sigil.toml");
    std::fs::write(&path, manifest).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
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
pub(super) async fn h1(opts: &Options) -> Result<Outcome> {
    let pki = pki()?;
    let dir = temp_dir("h1")?;
    let manifest = manifest_head(dir.path(), &pki)?
        + &HELLO_WORKER.replace("{module}", &toml_path(&module_path("hello")));
    let manifest = write_manifest(dir.path(), &manifest)?;
    let bare_spec = BareServerSpec::from_config(&BareServerConfig::from_pki(&pki, &[HOST]))?;
    let bare = spawn(dir.path(), "bare-server", ServerSpec::BareServer(bare_spec)).await?;
    let sigil = spawn(dir.path(), "sigil", ServerSpec::Sigil { manifest }).await?;
    let cfg = load_config(
        opts,
        &pki,
        &format!("https://{HOST}/hello"),
        Mode::H1KeepAlive,
    )?;
    let rounds = interleaved(opts, "h1", &cfg, &Side::of(&bare), &Side::of(&sigil)).await;
    let stopped = stop_all(vec![sigil, bare]).await;
    let rounds = rounds?;
    stopped?;
    let measure = format!("hello, mTLS keep-alive, c{}", cfg.concurrency);
    let line = LoadLine::new("H1", &measure, "req/s", &rounds);
    Ok(Outcome {
        rows: line.rows(&H1_TARGETS),
        load: vec![line],
        detail: json!(rounds),
    })
}

/// The bare server's configuration and Sigil's manifest for H2 with
/// `hostnames` hostnames, and the name the clients ask for. With more than
/// one, the extra names share one wildcard certificate (each still has its
/// own TLS configuration and client verifier) and the clients ask for one
/// of the extra names.
fn h2_servers(
    dir: &Path,
    pki: &TestPki,
    hostnames: usize,
) -> Result<(BareServerConfig, String, String)> {
    let extra = hostnames.saturating_sub(1);
    let bare_cfg =
        BareServerConfig::from_pki(pki, &[HOST]).with_extra_hostnames(pki, extra, false)?;
    let mut manifest = manifest_head(dir, pki)?;
    let mut target_host = HOST.to_string();
    if let Some((_, wildcard)) = bare_cfg.extra.first() {
        let (cert, key) = write_cert(dir, "wildcard", wildcard)?;
        let ca = toml_path(&dir.join("ca.pem"));
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
    Ok((bare_cfg, manifest, target_host))
}

/// H2: a new mTLS connection (full handshake, no resumption) per request,
/// with `hostnames` hostnames configured on both sides.
pub(super) async fn h2(opts: &Options, hostnames: usize) -> Result<Outcome> {
    let pki = pki()?;
    let dir = temp_dir("h2")?;
    let (bare_cfg, manifest, target_host) = h2_servers(dir.path(), &pki, hostnames)?;
    let manifest = write_manifest(dir.path(), &manifest)?;
    let bare_spec = BareServerSpec::from_config(&bare_cfg)?;
    drop(bare_cfg);
    let bare = spawn(dir.path(), "bare-server", ServerSpec::BareServer(bare_spec)).await?;
    let sigil = spawn(dir.path(), "sigil", ServerSpec::Sigil { manifest }).await?;
    let configured = sigil.info()["hostnames"].as_u64().unwrap_or(0);
    println!(
        "hostnames configured: bare {}, sigil {configured}; clients use SNI {target_host}; sigil loaded in {:.2} s",
        bare.info()["hostnames"],
        sigil.info()["load_s"].as_f64().unwrap_or(f64::NAN)
    );
    let url = format!("https://{target_host}/hello");
    let cfg = load_config(opts, &pki, &url, Mode::NewConnectionPerRequest)?;
    let name = format!("h2-{hostnames}");
    let rounds = interleaved(opts, &name, &cfg, &Side::of(&bare), &Side::of(&sigil)).await;
    let stopped = stop_all(vec![sigil, bare]).await;
    let rounds = rounds?;
    stopped?;
    let label = if hostnames >= 1000 && hostnames.is_multiple_of(1000) {
        format!("{}k", hostnames / 1000)
    } else {
        hostnames.to_string()
    };
    let measure = format!(
        "new mTLS conn/request, {hostnames} hostname{}, c{}",
        if hostnames == 1 { "" } else { "s" },
        cfg.concurrency
    );
    let line = LoadLine::new(&format!("H2-{label}"), &measure, "hs/s", &rounds);
    let mut rows = line.rows(&H2_TARGETS);
    rows[0]
        .note
        .push_str(&format!("; sigil hostnames {configured}"));
    Ok(Outcome {
        rows,
        load: vec![line],
        detail: json!(rounds),
    })
}

/// Sigil's manifest for S1: the `records` worker relaying to `origin_url`
/// with its default binding, a `[[certificates]]` entry with `client`.
fn s1_manifest(dir: &Path, pki: &TestPki, client: &CertKeyPem, origin_url: &str) -> Result<String> {
    let (ccert, ckey) = write_cert(dir, "proxy-client", client)?;
    let mut manifest = manifest_head(dir, pki)?;
    let ca = toml_path(&dir.join("ca.pem"));
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
        origin = toml_str(origin_url),
    ));
    Ok(manifest)
}

/// S1: the `records` example worker relaying to an mTLS origin with its
/// default binding (a `[[certificates]]` entry), against the bare proxy
/// presenting the same certificate; the origin (a third process) counts its
/// handshakes during each measured window.
pub(super) async fn s1(opts: &Options) -> Result<Outcome> {
    let pki = pki()?;
    let dir = temp_dir("s1")?;
    let origin_spec = OriginSpec::from_config(&MtlsOriginConfig::from_pki(&pki));
    let origin = spawn(dir.path(), "origin", ServerSpec::Origin(origin_spec)).await?;
    let origin_url = format!("https://localhost:{}", origin.addr().port());
    let client = pki.client("proxy-client").context("proxy-client")?;
    let manifest = s1_manifest(dir.path(), &pki, client, &origin_url)?;
    let manifest = write_manifest(dir.path(), &manifest)?;
    let proxy_spec = BareProxySpec::from_config(&BareProxyConfig::from_pki(
        &pki,
        &origin_url,
        "proxy-client",
    )?)?;
    let proxy = spawn(dir.path(), "bare-proxy", ServerSpec::BareProxy(proxy_spec)).await?;
    let sigil = spawn(dir.path(), "sigil", ServerSpec::Sigil { manifest }).await?;
    let cfg = load_config(
        opts,
        &pki,
        &format!("https://{HOST}/data"),
        Mode::H1KeepAlive,
    )?;
    let (bare_side, sigil_side) = (
        Side::of(&proxy).with_origin(&origin),
        Side::of(&sigil).with_origin(&origin),
    );
    let rounds = interleaved(opts, "s1", &cfg, &bare_side, &sigil_side).await;
    let counters = origin.control().counters().await;
    let stopped = stop_all(vec![sigil, proxy, origin]).await;
    let (rounds, counters) = (rounds?, counters?);
    stopped?;
    let measure = format!("subrequest via binding, keep-alive, c{}", cfg.concurrency);
    let line = LoadLine::new("S1", &measure, "req/s", &rounds);
    let mut rows = line.rows(&S1_TARGETS);
    rows.push(handshake_row(&rounds, &counters));
    Ok(Outcome {
        rows,
        load: vec![line],
        detail: json!({ "rounds": rounds, "origin": counters }),
    })
}

/// S1's row: origin handshakes during the measured windows (after warm-up).
fn handshake_row(rounds: &Rounds, counters: &serde_json::Value) -> Row {
    let sum = |runs: &[super::measure::Run]| -> u64 {
        runs.iter().filter_map(|r| r.origin_handshakes).sum()
    };
    let (bare_hs, sigil_hs) = (sum(&rounds.bare), sum(&rounds.sigil));
    Row {
        baseline: Some(bare_hs as f64),
        target: "= 0".into(),
        pass: Some(sigil_hs == 0),
        ..Row::info(
            "S1",
            "origin handshakes after warm-up (all rounds)",
            "count",
            sigil_hs as f64,
            format!(
                "origin saw {} requests, {} handshakes in all (warm-ups included), by CN {}",
                counters["requests"], counters["handshakes"], counters["requests_by_cn"]
            ),
        )
    }
}
