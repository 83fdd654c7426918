//! C2: Sigil's startup with many workers (cold and with the on-disk
//! compiled-module cache), resident memory per idle worker, and memory with
//! thousands of certificates and hostnames.
//!
//! Each measurement starts Sigil in a fresh child process (this binary with
//! `--c2-child <manifest>`), so start-up time and resident memory are not
//! skewed by what the suite itself allocated; the child loads and serves
//! the manifest in-process and prints one `C2CHILD {json}` line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Options, Row, median, temp_dir};
use crate::pki::TestPki;
use crate::sigil::{self, module_path, rss_bytes, toml_path, toml_str, write_cert};

/// Longest one child may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);

/// What a child reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildReport {
    /// Seconds in `server::load`.
    pub load_s: f64,
    /// Seconds from the child's `main` to every listener bound.
    pub ready_s: f64,
    /// Resident memory when `main` started, KiB.
    pub rss_start_kib: u64,
    /// Resident memory once serving and idle, KiB.
    pub rss_ready_kib: u64,
    /// Workers loaded.
    pub workers: usize,
    /// Hostnames loaded.
    pub hostnames: usize,
    /// Outbound pools built.
    pub pools: usize,
}

/// The child side: load and serve `manifest`, report, stop.
pub fn child_main(manifest: &Path) -> Result<()> {
    let t0 = Instant::now();
    let rss_start = rss_bytes().unwrap_or(0) / 1024;
    sigil_runtime::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = sigil::start_file(manifest).await?;
        let ready_s = t0.elapsed().as_secs_f64();
        // Let background tasks settle (first renewal tick, allocator).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let generation = server.runtime.current();
        let report = ChildReport {
            load_s: server.load_time.as_secs_f64(),
            ready_s,
            rss_start_kib: rss_start,
            rss_ready_kib: rss_bytes().unwrap_or(0) / 1024,
            workers: generation.workers.len(),
            hostnames: generation.hostnames.len(),
            pools: server.pools,
        };
        drop(generation);
        println!("C2CHILD {}", serde_json::to_string(&report)?);
        server.shutdown().await;
        Ok(())
    })
}

/// Runs this binary as a C2 child on `manifest`.
async fn child(manifest: &Path) -> Result<ChildReport> {
    let exe = std::env::current_exe().context("locating the suite binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("--c2-child")
        .arg(manifest)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(CHILD_TIMEOUT, cmd.output())
        .await
        .with_context(|| {
            format!(
                "Sigil child on {} ran over {CHILD_TIMEOUT:?}",
                manifest.display()
            )
        })?
        .context("running the Sigil child")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("C2CHILD "))
        .with_context(|| {
            format!(
                "the Sigil child on {} reported nothing ({}):\n{}{}",
                manifest.display(),
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    Ok(serde_json::from_str(line)?)
}

fn workers_manifest(cache: &Path, workers: usize, extra: &str) -> String {
    let mut m = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nreload_poll_secs = 0\nmodule_cache = {}\n{extra}\n",
        toml_path(cache)
    );
    let module = toml_path(&module_path("hello"));
    for i in 0..workers {
        let _ = write!(m, "\n[[workers]]\nname = \"w{i}\"\nmodule = {module}\n");
    }
    m.push_str("\n[[routes]]\nworker = \"w0\"\n");
    m
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

pub(super) async fn run(opts: &Options) -> Result<(Vec<Row>, serde_json::Value)> {
    crate::install_crypto_provider();
    let dir = temp_dir("c2")?;
    let n = opts.c2_workers;
    let mut rows = Vec::new();

    // Start-up with n workers: cold (fresh cache) then cached, interleaved.
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    let warm_cache = dir.path().join("cache-warm");
    for round in 0..opts.rounds {
        let cache = dir.path().join(format!("cache-cold-{round}"));
        let m = write(
            dir.path(),
            &format!("cold-{round}.toml"),
            &workers_manifest(&cache, n, ""),
        )?;
        let r = child(&m).await?;
        println!(
            "c2 r{} cold:   {} workers ready in {:.3} s (load {:.3} s), RSS {:.1} MiB",
            round + 1,
            r.workers,
            r.ready_s,
            r.load_s,
            mib(r.rss_ready_kib as f64)
        );
        cold.push(r);
        if round == 0 {
            // Fill the shared cache once.
            let fill = write(
                dir.path(),
                "fill.toml",
                &workers_manifest(&warm_cache, 1, ""),
            )?;
            child(&fill).await?;
        }
        let m = write(
            dir.path(),
            "cached.toml",
            &workers_manifest(&warm_cache, n, ""),
        )?;
        let r = child(&m).await?;
        println!(
            "c2 r{} cached: {} workers ready in {:.3} s (load {:.3} s), RSS {:.1} MiB",
            round + 1,
            r.workers,
            r.ready_s,
            r.load_s,
            mib(r.rss_ready_kib as f64)
        );
        cached.push(r);
    }
    let cold_s = median(&cold.iter().map(|r| r.ready_s).collect::<Vec<_>>());
    let cached_s = median(&cached.iter().map(|r| r.ready_s).collect::<Vec<_>>());
    rows.push(Row::info(
        "C2",
        &format!("start, {n} workers, cold module cache"),
        "s",
        cold_s,
        format!(
            "rounds {}",
            cold.iter()
                .map(|r| format!("{:.2}", r.ready_s))
                .collect::<Vec<_>>()
                .join("/")
        ),
    ));
    rows.push(Row::at_most(
        "C2",
        &format!("start, {n} workers, cached modules"),
        "s",
        cached_s,
        2.0,
        format!(
            "rounds {}",
            cached
                .iter()
                .map(|r| format!("{:.2}", r.ready_s))
                .collect::<Vec<_>>()
                .join("/")
        ),
    ));

    // Resident memory per idle worker: 1 worker vs n workers, cached.
    let one_m = write(
        dir.path(),
        "one.toml",
        &workers_manifest(&warm_cache, 1, ""),
    )?;
    let mut one = Vec::new();
    for _ in 0..opts.rounds {
        one.push(child(&one_m).await?);
    }
    let rss_one = median(
        &one.iter()
            .map(|r| r.rss_ready_kib as f64)
            .collect::<Vec<_>>(),
    );
    let rss_n = median(
        &cached
            .iter()
            .map(|r| r.rss_ready_kib as f64)
            .collect::<Vec<_>>(),
    );
    let per_worker_kib = (rss_n - rss_one) / (n.saturating_sub(1).max(1)) as f64;
    println!(
        "c2 RSS: 1 worker {:.1} MiB, {n} workers {:.1} MiB -> {per_worker_kib:.1} KiB per idle worker",
        mib(rss_one),
        mib(rss_n)
    );
    rows.push(Row::info(
        "C2",
        "RSS, 1 worker (baseline process)",
        "MiB",
        mib(rss_one),
        String::new(),
    ));
    rows.push(Row {
        target: "<= 1 MiB".into(),
        pass: Some(per_worker_kib <= 1024.0),
        ..Row::info(
            "C2",
            "RSS per idle worker",
            "KiB",
            per_worker_kib,
            format!("({:.1} - {:.1}) MiB / {}", mib(rss_n), mib(rss_one), n - 1),
        )
    });

    // Many certificates and hostnames, each with its own key.
    let k = opts.c2_certs;
    let pki_dir = dir.path().join("pki");
    std::fs::create_dir_all(&pki_dir)?;
    let t = Instant::now();
    let (certs_toml, hosts_toml) = {
        let pki_dir = pki_dir.clone();
        tokio::task::spawn_blocking(move || generate(&pki_dir, k))
            .await
            .context("generation task")??
    };
    println!(
        "c2: generated {k} client certificates and {k} hostname certificates in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // An HTTPS listener needs at least one hostname: only with hostnames.
    let https = "https = \"127.0.0.1:0\"\n";
    let variants = [
        ("certificates", "", certs_toml.clone()),
        ("hostnames", https, hosts_toml.clone()),
        (
            "certificates+hostnames",
            https,
            format!("{certs_toml}{hosts_toml}"),
        ),
    ];
    let mut many = serde_json::Map::new();
    for (what, keys, tables) in variants {
        let mut m = workers_manifest(&warm_cache, 1, keys);
        m.push_str(&tables);
        let path = write(dir.path(), &format!("many-{what}.toml"), &m)?;
        let r = child(&path).await?;
        let delta = r.rss_ready_kib as f64 - rss_one;
        println!(
            "c2 {k} {what}: ready in {:.2} s, RSS {:.1} MiB (+{:.1} MiB over 1 worker), {} hostnames, {} pools",
            r.ready_s,
            mib(r.rss_ready_kib as f64),
            mib(delta),
            r.hostnames,
            r.pools
        );
        let label = what.replace("certificates", "certs");
        rows.push(Row::info(
            "C2",
            &format!("RSS with {k} {label}"),
            "MiB",
            mib(r.rss_ready_kib as f64),
            format!(
                "+{:.1} MiB over 1 worker ({:.1} KiB each); ready in {:.2} s",
                mib(delta),
                delta / k as f64,
                r.ready_s
            ),
        ));
        many.insert(what.into(), json!(r));
    }

    let detail = json!({
        "workers": n,
        "cold": cold,
        "cached": cached,
        "one_worker": one,
        "per_worker_kib": per_worker_kib,
        "many": many,
    });
    Ok((rows, detail))
}

/// Writes `k` client certificates and `k` hostname certificates (one key
/// each, all from one CA that is also every hostname's client CA) and
/// returns the `[[certificates]]` and `[[hostnames]]` TOML.
fn generate(dir: &Path, k: usize) -> Result<(String, String)> {
    let pki = TestPki::generate(&[], &[])?;
    let ca = write(dir, "ca.pem", pki.ca_pem())?;
    let ca = toml_path(&ca);
    let mut certs = String::new();
    let mut hosts = String::new();
    for i in 0..k {
        let c = pki.issue_client(&format!("client-{i}"))?;
        let (cert, key) = write_cert(dir, &format!("client-{i}"), &c)?;
        let _ = write!(
            certs,
            "\n[[certificates]]\nname = \"c{i}\"\ncert = {}\nkey = {}\n",
            toml_path(&cert),
            toml_path(&key)
        );
        let name = format!("h{i}.many.bench.example");
        let s = pki.issue_server(std::slice::from_ref(&name))?;
        let (cert, key) = write_cert(dir, &format!("host-{i}"), &s)?;
        let _ = write!(
            hosts,
            "\n[[hostnames]]\nname = {}\ncert = {}\nkey = {}\nclient_cert = \"require\"\nclient_ca = [{ca}]\n",
            toml_str(&name),
            toml_path(&cert),
            toml_path(&key)
        );
    }
    Ok((certs, hosts))
}
