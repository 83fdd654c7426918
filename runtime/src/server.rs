//! The running server: the current generation (swapped whole on reload),
//! the listeners, the admin endpoint, identity renewal, reload triggers and
//! graceful shutdown.

use crate::engine::{Engine, EngineSettings};
use crate::generation::{self, Generation};
use crate::inbound::listener::{self, Protocol};
use crate::manifest::{self, ManifestErrors};
use crate::metrics::metrics;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The live state shared by every connection.
pub struct Runtime {
    manifest_path: PathBuf,
    engine: Arc<Engine>,
    current: ArcSwap<Generation>,
    request_seq: AtomicU64,
    request_prefix: u32,
    reload_lock: tokio::sync::Mutex<()>,
}

/// Load the manifest at `path` and build the first generation.
pub fn load(path: &Path) -> Result<(Arc<Runtime>, manifest::LoadedManifest), ManifestErrors> {
    let loaded = manifest::load(path)?;
    let server = &loaded.manifest.server;
    let cache_dir = match server.module_cache.as_deref() {
        Some("") => None,
        Some(dir) => Some(loaded.base_dir.join(dir)),
        None => Some(loaded.base_dir.join(".sigil-cache")),
    };
    let settings = EngineSettings {
        max_instances: server.max_instances.unwrap_or(1000),
        module_cache: cache_dir,
    };
    let engine = Engine::new(&settings).map_err(|e| {
        ManifestErrors(vec![
            loaded.error("server", format!("cannot create the wasm engine: {e:#}")),
        ])
    })?;
    let generation = generation::build(&loaded, &engine, None)?;
    for w in &generation.warnings {
        tracing::warn!("{w}");
    }
    let runtime = Arc::new(Runtime {
        manifest_path: path.to_path_buf(),
        engine: Arc::new(engine),
        current: ArcSwap::from_pointee(generation),
        request_seq: AtomicU64::new(0),
        request_prefix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0)
            ^ std::process::id(),
        reload_lock: tokio::sync::Mutex::new(()),
    });
    runtime.export_expiry_metrics();
    Ok((runtime, loaded))
}

impl Runtime {
    /// The generation new requests and handshakes use.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// The wasm engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A new request id, unique within this process and unlikely to repeat across restarts.
    pub fn next_request_id(&self) -> String {
        let n = self.request_seq.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n:x}", self.request_prefix)
    }

    /// Re-read the manifest and every file it names, validate everything, and
    /// swap in the new generation; on any error keep serving the current one.
    pub async fn reload(&self, trigger: &str) -> Result<(), ManifestErrors> {
        let _guard = self.reload_lock.lock().await;
        let path = self.manifest_path.clone();
        let engine = self.engine.clone();
        let previous = self.current();
        let built = tokio::task::spawn_blocking(move || {
            let loaded = manifest::load(&path)?;
            generation::build(&loaded, &engine, Some(&previous))
        })
        .await
        .unwrap_or_else(|e| {
            Err(ManifestErrors(vec![manifest::ManifestError {
                file: self.manifest_path.clone(),
                item: String::new(),
                message: format!("reload task failed: {e}"),
            }]))
        });
        match built {
            Ok(generation) => {
                for w in &generation.warnings {
                    tracing::warn!("{w}");
                }
                self.current.store(Arc::new(generation));
                self.export_expiry_metrics();
                metrics().inc(
                    "sigil_reloads_total",
                    "Configuration reloads by result.",
                    &[("result", "ok")],
                );
                tracing::info!(trigger, "configuration reloaded");
                Ok(())
            }
            Err(errors) => {
                metrics().inc(
                    "sigil_reloads_total",
                    "Configuration reloads by result.",
                    &[("result", "failed")],
                );
                tracing::error!(
                    trigger,
                    "reload refused; still serving the previous configuration:\n{errors}"
                );
                Err(errors)
            }
        }
    }

    /// Renew worker identities that reached their renewal time.
    pub fn renew_identities(&self) {
        let generation = self.current();
        let Some(issuer) = &generation.issuer else {
            return;
        };
        let now = crate::certs::details::unix_now();
        for entry in &generation.identities {
            if now < entry.renew_at.load(Ordering::Relaxed) {
                continue;
            }
            match issuer.issue_for_worker(&entry.worker, generation.identity_ttl) {
                Ok((key, validity, _)) => {
                    if let Err(e) = entry.pool.rotate(key) {
                        tracing::error!(worker = %entry.worker, "identity renewal failed: {e:#}");
                        continue;
                    }
                    entry.renew_at.store(
                        crate::certs::identity::renew_at(&validity),
                        Ordering::Relaxed,
                    );
                    entry.not_after.store(validity.not_after, Ordering::Relaxed);
                    metrics().inc(
                        "sigil_identity_renewals_total",
                        "Worker identity renewals by worker.",
                        &[("worker", &entry.worker)],
                    );
                    tracing::debug!(worker = %entry.worker, "identity renewed");
                }
                Err(e) => tracing::error!(worker = %entry.worker, "identity renewal failed: {e}"),
            }
        }
        self.export_expiry_metrics();
    }

    fn export_expiry_metrics(&self) {
        let generation = self.current();
        let m = metrics();
        let name = "sigil_certificate_expiry_seconds";
        let help = "Seconds until each certificate expires.";
        m.clear(name);
        let now = crate::certs::details::unix_now();
        for e in &generation.expiries {
            m.set(
                name,
                help,
                &[("certificate", &e.label)],
                (e.not_after - now) as f64,
            );
        }
        for e in &generation.identities {
            let label = format!("identity:{}", e.worker);
            m.set(
                name,
                help,
                &[("certificate", &label)],
                (e.not_after.load(Ordering::Relaxed) - now) as f64,
            );
        }
    }

    /// A fingerprint of every file of the current generation (size and mtime).
    fn files_fingerprint(&self) -> Vec<(PathBuf, Option<(u64, SystemTime)>)> {
        self.current()
            .files
            .iter()
            .map(|p| {
                let meta = std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.len(), m.modified().ok()?)));
                (p.clone(), meta)
            })
            .collect()
    }
}

/// Addresses the server listens on.
#[derive(Debug, Clone, Default)]
pub struct BoundAddresses {
    /// Plain HTTP.
    pub http: Option<SocketAddr>,
    /// HTTPS.
    pub https: Option<SocketAddr>,
    /// Admin (metrics, health).
    pub admin: Option<SocketAddr>,
}

async fn bind(addr: &Option<String>, what: &str) -> anyhow::Result<Option<TcpListener>> {
    use anyhow::Context as _;
    match addr {
        Some(a) => Ok(Some(TcpListener::bind(a.as_str()).await.with_context(
            || format!("cannot listen on server.{what} = \"{a}\" (is another process using it?)"),
        )?)),
        None => Ok(None),
    }
}

/// Serve until `shutdown` completes (the `sigil` binary passes
/// [`shutdown_signal`]), then stop accepting and drain requests in flight for
/// up to `drain`. `on_ready` receives the bound addresses once every listener
/// is up.
pub async fn serve(
    runtime: Arc<Runtime>,
    loaded: &manifest::LoadedManifest,
    drain: Duration,
    on_ready: impl FnOnce(&BoundAddresses),
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let server = &loaded.manifest.server;
    let http = bind(&server.http, "http").await?;
    let https = bind(&server.https, "https").await?;
    let admin = bind(&server.admin, "admin").await?;
    let bound = BoundAddresses {
        http: http.as_ref().and_then(|l| l.local_addr().ok()),
        https: https.as_ref().and_then(|l| l.local_addr().ok()),
        admin: admin.as_ref().and_then(|l| l.local_addr().ok()),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(l) = https {
        tasks.push(tokio::spawn(listener::run(
            l,
            Protocol::Https,
            runtime.clone(),
            stop_rx.clone(),
            drain,
        )));
    }
    if let Some(l) = http {
        tasks.push(tokio::spawn(listener::run(
            l,
            Protocol::Http,
            runtime.clone(),
            stop_rx.clone(),
            drain,
        )));
    }
    if let Some(l) = admin {
        tokio::spawn(crate::admin::run(l, runtime.clone(), stop_rx.clone()));
    }

    // Identity renewal.
    let renewer = runtime.clone();
    let mut stop = stop_rx.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tick.tick() => renewer.renew_identities(),
                _ = stop.changed() => return,
            }
        }
    });

    // Reload on SIGHUP and by polling files.
    spawn_reload_triggers(
        runtime.clone(),
        server.reload_poll_secs.unwrap_or(2),
        stop_rx.clone(),
    );

    on_ready(&bound);
    shutdown.await;
    tracing::info!(
        "shutting down: no new connections; draining requests in flight for up to {drain:?}"
    );
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    tracing::info!("stopped");
    Ok(())
}

fn spawn_reload_triggers(runtime: Arc<Runtime>, poll_secs: u64, stop: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        let rt = runtime.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            loop {
                tokio::select! {
                    got = hup.recv() => {
                        if got.is_none() { return; }
                        let _ = rt.reload("SIGHUP").await;
                    }
                    _ = stop.changed() => return,
                }
            }
        });
    }
    if poll_secs == 0 {
        return;
    }
    let mut stop = stop;
    tokio::spawn(async move {
        let mut last = runtime.files_fingerprint();
        let mut tick = tokio::time::interval(Duration::from_millis(poll_secs * 1000));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now = runtime.files_fingerprint();
            if now != last {
                let _ = runtime.reload("file change").await;
                // Whether it succeeded or not, wait for the next change.
                last = runtime.files_fingerprint();
            }
        }
    });
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
