//! The child side: start the server of a [`ServerSpec`], print
//! `SERVING {json}`, answer commands on stdin, stop at `stop` or end of
//! input.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use super::spec::ServerSpec;
use super::{COUNTERS, Ready, SERVING};
use crate::baseline::bare_server::{self, BareServer};
use crate::baseline::mtls_origin::{self, MtlsOrigin};
use crate::baseline::{ServerHandle, bare_proxy};
use crate::sigil::{self, SigilServer};

/// A server running in this (child) process.
enum Running {
    Sigil(SigilServer),
    Bare(BareServer),
    Proxy(ServerHandle),
    Origin(MtlsOrigin),
}

impl Running {
    /// Starts the server of `spec` and describes it.
    async fn start(spec: ServerSpec) -> Result<(Running, Ready)> {
        let (running, info) = match spec {
            ServerSpec::Sigil { manifest } => {
                let s = sigil::start_file(&manifest).await?;
                let generation = s.runtime.current();
                let info = json!({
                    "load_s": s.load_time.as_secs_f64(),
                    "ready_s": s.ready_time.as_secs_f64(),
                    "workers": generation.workers.len(),
                    "hostnames": generation.hostnames.len(),
                    "pools": s.pools,
                });
                drop(generation);
                (Running::Sigil(s), info)
            }
            ServerSpec::BareServer(spec) => {
                let s = bare_server::start(spec.to_config()).await?;
                let info = json!({ "hostnames": s.hostnames() });
                (Running::Bare(s), info)
            }
            ServerSpec::BareProxy(spec) => (
                Running::Proxy(bare_proxy::start(spec.to_config()).await?),
                json!({}),
            ),
            ServerSpec::Origin(spec) => (
                Running::Origin(mtls_origin::start(spec.to_config()).await?),
                json!({}),
            ),
        };
        let addr = running.addr()?;
        Ok((running, Ready { addr, info }))
    }

    /// The address clients connect to.
    fn addr(&self) -> Result<SocketAddr> {
        Ok(match self {
            Running::Sigil(s) => s.https()?,
            Running::Bare(s) => s.addr(),
            Running::Proxy(h) => h.addr(),
            Running::Origin(o) => o.addr(),
        })
    }

    /// What the `counters` command reports: the origin's counters, the
    /// bare server's handshakes, nothing for the others.
    fn counters(&self) -> serde_json::Value {
        match self {
            Running::Origin(o) => json!(o.counters()),
            Running::Bare(s) => json!({ "handshakes": s.handshakes() }),
            Running::Sigil(_) | Running::Proxy(_) => json!({}),
        }
    }

    async fn shutdown(self) {
        match self {
            Running::Sigil(s) => s.shutdown().await,
            Running::Bare(s) => s.shutdown().await,
            Running::Proxy(h) => h.shutdown().await,
            Running::Origin(o) => o.shutdown().await,
        }
    }
}

/// Prints one protocol line and flushes it.
fn say(prefix: &str, value: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{prefix} {}", serde_json::to_string(value)?)?;
    out.flush()?;
    Ok(())
}

/// The child's `main`: serve the [`ServerSpec`] in the JSON file `spec`
/// until stdin says `stop` or closes (the parent dropped it or died).
pub fn child_main(spec: &Path) -> Result<()> {
    sigil_runtime::install_crypto_provider();
    crate::install_crypto_provider();
    let text =
        std::fs::read_to_string(spec).with_context(|| format!("reading {}", spec.display()))?;
    let spec: ServerSpec = serde_json::from_str(&text).context("parsing the server spec")?;
    // Sigil logs as `sigil serve` does by default (`info`, or `RUST_LOG`),
    // to the child's stderr file: what a worker logs per request is part of
    // the cost measured.
    let _log = matches!(spec, ServerSpec::Sigil { .. }).then(|| {
        sigil_runtime::telemetry::logging::init(sigil_runtime::telemetry::logging::LogFormat::Text)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // As `sigil serve` does (see `sigil_runtime::allocator`).
        .on_thread_park(sigil_runtime::allocator::on_thread_idle)
        .build()?;
    let result: Result<()> = rt.block_on(async {
        let (running, ready) = Running::start(spec).await?;
        say(SERVING, &ready)?;
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            match line.trim() {
                "counters" => say(COUNTERS, &running.counters())?,
                "stop" => break,
                _ => {}
            }
        }
        running.shutdown().await;
        Ok(())
    });
    // The blocking read of stdin may still be pending: do not wait for it.
    rt.shutdown_background();
    result
}
