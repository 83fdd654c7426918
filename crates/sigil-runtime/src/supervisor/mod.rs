//! The running server: loading the first generation, starting the
//! listeners, the admin endpoint, identity renewal and the reload loop,
//! and stopping them all on shutdown.
//!
//! This is the top of the runtime: it wires the layers together and
//! nothing below imports it.

mod file_stamps;
mod kinds;
mod load;
mod reload;

pub use load::{Built, Loader};

use crate::config::{self, ConnectionSettings, LoadedManifest, ManifestErrors, ServerSection};
use crate::engine::{Engine, EngineSettings};
use crate::inbound::limit::{ConnectionLimit, raise_descriptor_limit};
use crate::inbound::{Inbound, Protocol, listener};
use crate::state::{ReloadRequest, Runtime};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

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

/// A loaded configuration, ready to serve.
pub struct Server {
    runtime: Arc<Runtime>,
    loader: Arc<Loader>,
    manifest: LoadedManifest,
    reloads: mpsc::Receiver<ReloadRequest>,
}

/// How the embedding runs the server, beyond what the manifest says.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The `sigil` binary that compiles modules in a child process with a
    /// memory limit (`sigil __compile`); the `sigil` command passes itself
    /// (`std::env::current_exe()`). `None` compiles in this process.
    pub compiler: Option<std::path::PathBuf>,
    /// The caller prints the generation's warnings itself (`sigil check`),
    /// so loading does not also log them.
    pub caller_prints_warnings: bool,
}

fn engine_settings(loaded: &LoadedManifest, options: &LoadOptions) -> EngineSettings {
    let server = &loaded.manifest.server;
    let module_cache = match server.module_cache.as_deref() {
        Some("") => None,
        Some(dir) => Some(loaded.base_dir.join(dir)),
        None => Some(loaded.base_dir.join(".sigil-cache")),
    };
    EngineSettings {
        max_instances: server
            .max_instances
            .unwrap_or(crate::engine::DEFAULT_MAX_INSTANCES),
        module_cache,
        compiler: options.compiler.clone(),
    }
}

impl Server {
    /// Load the manifest at `path` and build the first generation, reporting
    /// every problem at once.
    pub fn load(path: &Path) -> Result<Server, ManifestErrors> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// Like [`load`](Self::load), with the embedding's [`LoadOptions`].
    pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Server, ManifestErrors> {
        let manifest = config::load(path)?;
        // Subrequests in flight get the other half of the descriptors
        // (before any worker is built: each takes its share of it).
        let server = &manifest.manifest.server;
        let max_connections = ConnectionSettings::resolve(server, raise_descriptor_limit());
        crate::outbound::in_flight::set_process_limit(max_connections.max_connections as usize);
        let settings = engine_settings(&manifest, options);
        let engine = Engine::new(&settings).map_err(|e| {
            ManifestErrors(vec![
                manifest.error("server", format!("cannot create the wasm engine: {e:#}")),
            ])
        })?;
        let loader = Arc::new(Loader::new(Arc::new(engine), settings));
        let mut built = loader.build(&manifest)?;
        built.generation.files_seen = file_stamps::stamps(&built.generation.files);
        if !options.caller_prints_warnings {
            for w in &built.generation.warnings {
                tracing::warn!("{w}");
            }
        }
        built.generation.export_not_after(None);
        loader.commit(built.parts);
        let (tx, reloads) = mpsc::channel(16);
        Ok(Server {
            runtime: Arc::new(Runtime::new(built.generation, tx)),
            loader,
            manifest,
            reloads,
        })
    }

    /// The live state.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The wasm engine.
    pub fn engine(&self) -> &Arc<Engine> {
        self.loader.engine()
    }

    /// The manifest as first loaded.
    pub fn manifest(&self) -> &LoadedManifest {
        &self.manifest
    }

    /// Serve until `shutdown` completes (the `sigil` binary passes
    /// [`shutdown_signal`]), then stop accepting and drain requests in flight
    /// for up to `drain`. `on_ready` receives the bound addresses once every
    /// listener is up.
    pub async fn serve(
        self,
        drain: Duration,
        on_ready: impl FnOnce(&BoundAddresses),
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let server = &self.manifest.manifest.server;
        let http = bind(&server.http, "http").await?;
        let https = bind(&server.https, "https").await?;
        let admin = bind(&server.admin, "admin").await?;
        let bound = BoundAddresses {
            http: http.as_ref().and_then(|l| l.local_addr().ok()),
            https: https.as_ref().and_then(|l| l.local_addr().ok()),
            admin: admin.as_ref().and_then(|l| l.local_addr().ok()),
        };
        let (stop_tx, stop) = watch::channel(false);
        // Workers never reach the admin listener (outbound::blocking).
        crate::outbound::blocking::admin_addresses()
            .store(Arc::new(bound.admin.into_iter().collect()));
        let inbound = inbound(server, self.runtime.clone());
        let mut listeners = Vec::new();
        for (l, protocol) in [(https, Protocol::Https), (http, Protocol::Http)] {
            if let Some(l) = l {
                let task = listener::run(l, protocol, inbound.clone(), stop.clone(), drain);
                listeners.push(tokio::spawn(task));
            }
        }
        if let Some(l) = admin {
            tokio::spawn(crate::admin::run(l, self.runtime.clone(), stop.clone()));
        }
        spawn_renewal(self.runtime.clone(), stop.clone());
        let limit = inbound.limit.clone();
        crate::memory::spawn_trimmer(Arc::new(move || limit.open()), stop.clone());
        let poll_secs = server.reload_poll_secs.unwrap_or(2);
        reload::spawn_triggers(
            self.runtime.clone(),
            self.loader.clone(),
            poll_secs,
            stop.clone(),
        );
        tokio::spawn(reload::run(
            self.runtime.clone(),
            self.loader.clone(),
            self.manifest.path.clone(),
            self.manifest.manifest.server.clone(),
            self.reloads,
            stop.clone(),
        ));

        on_ready(&bound);
        shutdown.await;
        tracing::info!(
            "shutting down: no new connections; draining requests in flight for up to {drain:?}"
        );
        let _ = stop_tx.send(true);
        for t in listeners {
            let _ = t.await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// What the inbound listeners share: the connection settings of `server`,
/// with `max_connections` derived from the descriptor limit (raised to the
/// hard limit first) unless the manifest sets it.
fn inbound(server: &ServerSection, runtime: Arc<Runtime>) -> Inbound {
    let nofile = raise_descriptor_limit();
    let settings = ConnectionSettings::resolve(server, nofile);
    let room = nofile.saturating_sub(config::connections::DESCRIPTOR_RESERVE);
    if settings.max_connections > room {
        tracing::warn!(
            "server.max_connections = {} leaves fewer than {} of the {nofile} file descriptors for outbound connections, the admin listener and files; accept will fail with EMFILE first",
            settings.max_connections,
            config::connections::DESCRIPTOR_RESERVE
        );
    }
    tracing::info!(
        nofile,
        max_connections = settings.max_connections,
        "inbound connections limited to {} (file-descriptor limit {nofile})",
        settings.max_connections
    );
    Inbound {
        runtime,
        settings,
        limit: ConnectionLimit::new(settings.max_connections),
    }
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

/// Renew identities that are due, every half second, off the async threads
/// (issuing signs certificates: CPU work that must not stall requests).
fn spawn_renewal(runtime: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let generation = runtime.current();
            let _ =
                tokio::task::spawn_blocking(move || crate::identity::renew_due(&generation)).await;
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
