//! Sigil itself, started in-process for a benchmark: a manifest written to a
//! temporary directory, [`sigil_runtime::Server::load`] and
//! [`sigil_runtime::Server::serve`] on `127.0.0.1:0`, and the bound
//! addresses from `on_ready`.
//!
//! Also: building the guest modules the scenarios use, writing PEM files,
//! and reading the process's resident memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sigil_runtime::state::Runtime;
use sigil_runtime::{BoundAddresses, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::pki::CertKeyPem;

/// Longest a Sigil start (load + bind) may take before the scenario fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(300);

/// The repository root (the parent of `benches/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ has a parent")
        .to_path_buf()
}

/// Where guest modules are built (`target/wasm/wasm32-wasip1/guest`).
pub fn wasm_dir() -> PathBuf {
    workspace_root().join("target/wasm/wasm32-wasip1/guest")
}

/// Path of a built guest module, e.g. `module_path("hello")`.
pub fn module_path(name: &str) -> PathBuf {
    wasm_dir().join(format!("{name}.wasm"))
}

/// Builds the guests the scenarios run (`examples/hello` and
/// `examples/records`) with [`sigil_build::build`]; cargo
/// makes this a no-op when they are up to date.
pub fn build_guests(progress: &mut dyn FnMut(&str)) -> Result<()> {
    let root = workspace_root();
    let crates: Vec<_> = [("examples/hello", "hello"), ("examples/records", "records")]
        .iter()
        .map(|(dir, name)| sigil_build::GuestCrate {
            dir: root.join(dir),
            module: module_path(name),
        })
        .collect();
    sigil_build::build(&crates, progress)
}

/// Writes a certificate chain and key as `<dir>/<stem>.pem` / `.key` and
/// returns both paths.
pub fn write_cert(dir: &Path, stem: &str, cert: &CertKeyPem) -> Result<(PathBuf, PathBuf)> {
    let c = dir.join(format!("{stem}.pem"));
    let k = dir.join(format!("{stem}.key"));
    std::fs::write(&c, &cert.cert_pem).with_context(|| format!("writing {}", c.display()))?;
    std::fs::write(&k, &cert.key_pem).with_context(|| format!("writing {}", k.display()))?;
    Ok((c, k))
}

/// A path as a TOML basic string (quoted, backslashes and quotes escaped).
pub fn toml_str(s: impl AsRef<str>) -> String {
    let s = s.as_ref();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// [`toml_str`] of a path.
pub fn toml_path(p: &Path) -> String {
    toml_str(p.display().to_string())
}

/// Resident set size of this process (`VmRSS` in `/proc/self/status`), bytes.
pub fn rss_bytes() -> Option<u64> {
    status_kib("/proc/self/status", "VmRSS:").map(|k| k * 1024)
}

/// Reads a `kB` field (e.g. `VmRSS:`) of a `/proc/<pid>/status` file, in KiB.
pub fn status_kib(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Sigil running in this process.
pub struct SigilServer {
    /// The bound listeners.
    pub addrs: BoundAddresses,
    /// The runtime (its engine and current generation).
    pub runtime: Arc<Runtime>,
    /// Outbound pools built: one without a certificate, one per
    /// certificate, one per worker identity.
    pub pools: usize,
    /// Time spent in `Server::load` (manifest, certificates, modules).
    pub load_time: Duration,
    /// Time from the start of `load` until every listener was bound.
    pub ready_time: Duration,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl SigilServer {
    /// The HTTPS listener's address.
    pub fn https(&self) -> Result<SocketAddr> {
        self.addrs.https.context("Sigil has no HTTPS listener")
    }

    /// Stops serving (no drain) and waits for the server task, at most 10 s.
    pub async fn shutdown(mut self) {
        self.stop_now().await;
    }

    async fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for SigilServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Writes `manifest` to `dir/sigil.toml` and starts Sigil on it in-process
/// (needs a multi-threaded Tokio runtime). Paths in the manifest should be
/// absolute or relative to `dir`; listen addresses should be
/// `127.0.0.1:0`.
pub async fn start(dir: &Path, manifest: &str) -> Result<SigilServer> {
    let path = dir.join("sigil.toml");
    std::fs::write(&path, manifest).with_context(|| format!("writing {}", path.display()))?;
    start_file(&path).await
}

/// Starts Sigil in-process on an existing manifest file.
pub async fn start_file(path: &Path) -> Result<SigilServer> {
    let t0 = Instant::now();
    let p = path.to_path_buf();
    let server = tokio::task::spawn_blocking(move || Server::load(&p))
        .await
        .context("load task panicked")?
        .map_err(|e| anyhow::anyhow!("Sigil refused the manifest:\n{e}"))?;
    let load_time = t0.elapsed();
    let (ready_tx, ready_rx) = oneshot::channel::<BoundAddresses>();
    let (stop, stopped) = oneshot::channel::<()>();
    let runtime = server.runtime().clone();
    let pools =
        1 + server.manifest().manifest.certificates.len() + runtime.current().identities.len();
    let task = tokio::spawn(async move {
        server
            .serve(
                Duration::ZERO,
                move |addrs| {
                    let _ = ready_tx.send(addrs.clone());
                },
                async move {
                    let _ = stopped.await;
                },
            )
            .await
    });
    let addrs = match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
        Ok(Ok(a)) => a,
        Ok(Err(_)) => {
            let err = match task.await {
                Ok(Err(e)) => format!("{e:#}"),
                Ok(Ok(())) => "serve returned before it was ready".into(),
                Err(e) => format!("serve task failed: {e}"),
            };
            anyhow::bail!("Sigil did not start: {err}");
        }
        Err(_) => {
            task.abort();
            anyhow::bail!("Sigil did not start within {START_TIMEOUT:?}");
        }
    };
    Ok(SigilServer {
        addrs,
        runtime,
        pools,
        load_time,
        ready_time: t0.elapsed(),
        stop: Some(stop),
        task: Some(task),
    })
}
