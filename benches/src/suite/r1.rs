//! R1: reloads at scale. With 10,000 hostnames configured and one of them
//! changed before each reload, how long a reload takes and whether resident
//! memory stays flat over 20 reloads (issue 11 §5: ≤ 1 s per reload, RSS
//! after 20 reloads within 10% of RSS after the first).
//!
//! Runs in a fresh child process (this binary with `--r1-child <dir>`), so
//! resident memory is Sigil's own. Before each reload the child swaps the
//! first hostname's certificate between two files issued for it, so every
//! reload really changes one policy and keeps the others.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Options, Row, median, temp_dir};
use crate::pki::TestPki;
use crate::sigil::{self, module_path, rss_bytes, toml_path, toml_str, write_cert};

/// Reloads measured in the child.
const RELOADS: usize = 20;

/// Longest the child may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(900);

/// What the child reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Hostnames configured.
    pub hostnames: usize,
    /// Seconds each reload took, in order.
    pub reload_s: Vec<f64>,
    /// Resident memory after each reload, KiB.
    pub rss_kib: Vec<u64>,
}

/// Write the PKI and the manifest for `k` hostnames into `dir`.
fn prepare(dir: &Path, k: usize) -> Result<()> {
    let pki = TestPki::generate(&[], &[])?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pki.ca_pem())?;
    let mut m = format!(
        "[server]\nhttps = \"127.0.0.1:0\"\nreload_poll_secs = 0\nmodule_cache = {}\n\n[[workers]]\nname = \"hello\"\nmodule = {}\n\n[[routes]]\nworker = \"hello\"\n",
        toml_path(&super::module_cache_dir()),
        toml_path(&module_path("hello"))
    );
    for i in 0..k {
        let name = format!("h{i}.reload.bench.example");
        let s = pki.issue_server(std::slice::from_ref(&name))?;
        let (cert, key) = write_cert(dir, &format!("host-{i}"), &s)?;
        if i == 0 {
            // A second certificate for the same key pair's hostname: swapped
            // in before each reload.
            let alt = pki.issue_server(std::slice::from_ref(&name))?;
            write_cert(dir, "host-0-alt", &alt)?;
        }
        let _ = write!(
            m,
            "\n[[hostnames]]\nname = {}\ncert = {}\nkey = {}\nclient_cert = \"require\"\nclient_ca = [{}]\n",
            toml_str(&name),
            toml_path(&cert),
            toml_path(&key),
            toml_path(&ca)
        );
    }
    std::fs::write(dir.join("sigil.toml"), m)?;
    Ok(())
}

/// Swap host-0's certificate and key with the alternative pair.
fn swap_first(dir: &Path) -> Result<()> {
    for ext in ["pem", "key"] {
        let a = dir.join(format!("host-0.{ext}"));
        let b = dir.join(format!("host-0-alt.{ext}"));
        let tmp = dir.join(format!("host-0-tmp.{ext}"));
        std::fs::rename(&a, &tmp)?;
        std::fs::rename(&b, &a)?;
        std::fs::rename(&tmp, &b)?;
    }
    Ok(())
}

/// The child side: serve `dir/sigil.toml`, reload [`RELOADS`] times, report.
pub fn child_main(dir: &Path) -> Result<()> {
    sigil_runtime::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = sigil::start_file(&dir.join("sigil.toml")).await?;
        let hostnames = server.runtime.current().hostnames.len();
        let mut report = ReloadReport {
            hostnames,
            reload_s: Vec::new(),
            rss_kib: Vec::new(),
        };
        for _ in 0..RELOADS {
            swap_first(dir)?;
            let t = Instant::now();
            server
                .runtime
                .reload("benchmark")
                .await
                .map_err(|e| anyhow::anyhow!("reload refused: {e}"))?;
            report.reload_s.push(t.elapsed().as_secs_f64());
            report.rss_kib.push(rss_bytes().unwrap_or(0) / 1024);
        }
        println!("R1CHILD {}", serde_json::to_string(&report)?);
        server.shutdown().await;
        Ok(())
    })
}

pub(super) async fn run(opts: &Options) -> Result<(Vec<Row>, serde_json::Value)> {
    let dir = temp_dir("r1")?;
    let k = opts.many_hostnames;
    let t = Instant::now();
    {
        let d = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || prepare(&d, k))
            .await
            .context("generation task")??;
    }
    println!(
        "r1: wrote {k} hostnames in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let exe = std::env::current_exe().context("locating the suite binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("--r1-child").arg(dir.path()).kill_on_drop(true);
    let out = tokio::time::timeout(CHILD_TIMEOUT, cmd.output())
        .await
        .context("the R1 child ran too long")?
        .context("running the R1 child")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("R1CHILD "))
        .with_context(|| {
            format!(
                "the R1 child reported nothing ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let r: ReloadReport = serde_json::from_str(line)?;
    let reload = median(&r.reload_s);
    let first = r.rss_kib.first().copied().unwrap_or(0) as f64;
    let last = r.rss_kib.last().copied().unwrap_or(0) as f64;
    let growth = if first > 0.0 { last / first } else { 0.0 };
    println!(
        "r1: {} hostnames, reload median {:.3} s (min {:.3}, max {:.3}); RSS {:.1} MiB after the first, {:.1} MiB after the {RELOADS}th",
        r.hostnames,
        reload,
        r.reload_s.iter().copied().fold(f64::MAX, f64::min),
        r.reload_s.iter().copied().fold(0.0, f64::max),
        first / 1024.0,
        last / 1024.0
    );
    let rows = vec![
        Row::at_most(
            "R1",
            &format!("reload, {} hostnames, one changed", r.hostnames),
            "s",
            reload,
            1.0,
            format!("median of {RELOADS}"),
        ),
        Row {
            target: "<= 1.10x".into(),
            pass: Some(growth <= 1.10),
            ..Row::info(
                "R1",
                &format!("RSS after {RELOADS} reloads / after the first"),
                "x",
                growth,
                format!("{:.1} -> {:.1} MiB", first / 1024.0, last / 1024.0),
            )
        },
    ];
    Ok((rows, json!(r)))
}
