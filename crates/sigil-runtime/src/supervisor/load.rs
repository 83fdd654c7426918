//! Building a generation from a loaded manifest: each part has its own
//! builder (outbound pools, the identity CA, hostname policies, workers,
//! routes); this module puts them together and reports every problem at
//! once.

use super::kinds::Engines;
use crate::config::{
    Findings, IDENTITY_CERTIFICATE, LoadedManifest, ManifestErrors, WorkerSection, fingerprint,
    parse_allowed_origin,
};
use crate::engine::{CompileLimits, Engine, EngineSettings};
use crate::identity;
use crate::inbound::tls::{PolicyCache, build_policies};
use crate::outbound::in_flight::InFlight;
use crate::outbound::{ClientPool, PoolCache, Pools, WorkerOutbound};
use crate::state::{Generation, HostnamePolicies, IdentityEntry, Router, Worker};
use crate::telemetry::metrics::WorkerSeries;
use sigil_pki::IdentityIssuer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `server.max_hops` when not set.
pub const DEFAULT_MAX_HOPS: u32 = 16;

/// `server.worker_share` when not set.
pub const DEFAULT_WORKER_SHARE: f64 = 0.5;

/// How many instance slots one worker may hold at once: its share of
/// `server.max_instances`, at least one.
fn worker_slots(m: &crate::config::Manifest) -> usize {
    let instances = m
        .server
        .max_instances
        .unwrap_or(crate::engine::DEFAULT_MAX_INSTANCES);
    let share = m.server.worker_share.unwrap_or(DEFAULT_WORKER_SHARE);
    ((f64::from(instances) * share).floor() as usize).max(1)
}

/// A generation and the pools it holds, ready to be swapped in.
pub struct Built {
    /// The generation.
    pub generation: Generation,
    /// What it was built from, for reuse by the next reload (see [`Loader::commit`]).
    pub parts: Parts,
    /// The manifest's `[server]` section (only some of it applies on reload).
    pub server: crate::config::ServerSection,
}

/// The parts of the generation being served that the next build may reuse.
#[derive(Clone, Default)]
pub struct Parts {
    /// Outbound pools and identities.
    pub pools: PoolCache,
    /// Hostname policies.
    pub policies: PolicyCache,
}

/// Builds generations, carrying unchanged pools and identities over from
/// the generation being served.
pub struct Loader {
    engines: Engines,
    serving: Mutex<Parts>,
    /// The files the last build named (read or tried to read), refused
    /// or not: after a refused reload the poller watches them too.
    named: Mutex<Vec<PathBuf>>,
}

/// What every worker of a generation is built with.
struct WorkerParts<'a> {
    pools: &'a mut Pools,
    issuer: Option<&'a Arc<IdentityIssuer>>,
    ttl: Duration,
    identity_key: String,
    previous: &'a PoolCache,
    identities: Vec<Arc<IdentityEntry>>,
}

impl Loader {
    /// A loader compiling SDK workers with `engine`, and component workers
    /// on a component engine made with `settings` when a manifest has one.
    pub fn new(engine: Arc<Engine>, settings: EngineSettings) -> Self {
        Loader {
            engines: Engines::new(engine, settings),
            serving: Mutex::new(Parts::default()),
            named: Mutex::new(Vec::new()),
        }
    }

    /// The files the last build named, the manifest first.
    pub fn named_files(&self) -> Vec<PathBuf> {
        self.named.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Before a build: only `manifest` is named so far (a manifest that
    /// does not parse names nothing else).
    pub fn naming(&self, manifest: &Path) {
        *self.named.lock().unwrap_or_else(|p| p.into_inner()) = vec![manifest.to_path_buf()];
    }

    /// The wasm engine of SDK workers.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engines.sdk
    }

    /// Record that `parts` are now served (after the generation holding them
    /// was swapped in), so the next build can reuse them.
    pub fn commit(&self, parts: Parts) {
        *self.serving.lock().unwrap_or_else(|p| p.into_inner()) = parts;
    }

    /// Load every file `m` names and build a generation, or report every problem.
    pub fn build(&self, m: &LoadedManifest) -> Result<Built, ManifestErrors> {
        let previous = self
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut findings = Findings::new(m);
        warn_if_admin_is_exposed(&mut findings);
        let mut expiries = Vec::new();
        let mut pools = Pools::build(&mut findings, &previous.pools, &mut expiries);
        let issuer = identity::load_issuer(&mut findings);
        let ttl = identity::ttl(&findings);
        let (hostnames, policies) =
            build_policies(&mut findings, &mut expiries, &previous.policies);
        let identity_key = match &m.manifest.identity {
            Some(id) => fingerprint(
                &format!("{} {ttl:?} {}", id.trust_domain, pools.outbound_key),
                &[id.ca_cert.clone(), id.ca_key.clone()],
            ),
            None => String::new(),
        };
        let mut parts = WorkerParts {
            pools: &mut pools,
            issuer: issuer.as_ref(),
            ttl,
            identity_key,
            previous: &previous.pools,
            identities: Vec::new(),
        };
        let mut workers = HashMap::new();
        for w in &m.manifest.workers {
            if let Some(worker) = self.worker(w, &mut parts, &mut findings) {
                workers.insert(worker.name.clone(), Arc::new(worker));
            }
        }
        let identities = parts.identities;
        *self.named.lock().unwrap_or_else(|p| p.into_inner()) = findings.files.clone();
        findings.check()?;
        Ok(Built {
            generation: Generation {
                id: 0,
                workers,
                router: Router::from_routes(&m.manifest.routes),
                hostnames: HostnamePolicies::new(
                    hostnames,
                    m.manifest.server.default_hostname.as_deref(),
                ),
                identities,
                issuer,
                identity_ttl: ttl,
                expiries,
                files_seen: Vec::new(),
                files: findings.files,
                warnings: findings.warnings,
                max_hops: m.manifest.server.max_hops.unwrap_or(DEFAULT_MAX_HOPS),
                access_log: m.manifest.server.access_log.unwrap_or(false),
            },
            parts: Parts {
                pools: pools.next,
                policies,
            },
            server: m.manifest.server.clone(),
        })
    }

    /// Build one worker: its module, identity, bindings and limits.
    fn worker(
        &self,
        w: &WorkerSection,
        parts: &mut WorkerParts<'_>,
        findings: &mut Findings<'_>,
    ) -> Option<Worker> {
        let item = format!("worker \"{}\"", w.name);
        findings.read(&w.module);
        let manifest = findings.manifest();
        let limits = crate::config::Limits::default()
            .with(&manifest.manifest.limits)
            .with(&w.limits);
        let compile = CompileLimits::from_server(&manifest.manifest.server);
        let module = self
            .engines
            .load(w, &compile, &limits)
            .map_err(|e| findings.error(&item, e))
            .ok();
        let name: Arc<str> = w.name.as_str().into();
        let identity = identity_pool(w, &name, parts)
            .map_err(|e| findings.error(&item, e))
            .ok()
            .flatten();
        let anonymous = parts
            .pools
            .anonymous(w, parts.previous)
            .map_err(|e| findings.error(&item, format!("cannot build its outbound client: {e:#}")))
            .ok()?;
        let share = manifest
            .manifest
            .server
            .worker_share
            .unwrap_or(DEFAULT_WORKER_SHARE);
        let outbound = worker_outbound(w, identity, anonymous, parts.pools, share);
        let slots = worker_slots(&manifest.manifest);
        let handler = self.engines.handler(w, module?, limits, Arc::new(outbound));
        Some(Worker {
            series: WorkerSeries::new(name.clone()),
            name,
            limits,
            handler,
            slots: Arc::new(tokio::sync::Semaphore::new(slots)),
        })
    }
}

/// The pool presenting a worker's identity (`None` without one), carried
/// over from the previous generation when the identity CA did not change.
fn identity_pool(
    w: &WorkerSection,
    name: &Arc<str>,
    parts: &mut WorkerParts<'_>,
) -> Result<Option<Arc<ClientPool>>, String> {
    let Some(issuer) = parts.issuer else {
        return Ok(None);
    };
    if w.identity == Some(false) {
        return Ok(None);
    }
    let key = &parts.identity_key;
    let cached = parts
        .previous
        .reuse(&format!("identity:{}", w.name), key)
        .and_then(|c| Some((c.pool.clone(), c.identity.clone()?)));
    let (pool, entry) = match cached {
        Some((pool, entry)) => {
            parts
                .pools
                .keep_identity(&w.name, key, pool.clone(), entry.clone());
            (pool, entry)
        }
        None => {
            let entry = identity::issue(issuer, name, parts.ttl)
                .map_err(|e| format!("cannot issue its identity: {e}"))?;
            let pool = parts
                .pools
                .add_identity(w, key, entry.clone())
                .map_err(|e| format!("cannot build its identity client: {e:#}"))?;
            (pool, entry)
        }
    };
    parts.identities.push(entry);
    Ok(Some(pool))
}

/// A worker's bindings, default and allowed origins.
fn worker_outbound(
    w: &WorkerSection,
    identity: Option<Arc<ClientPool>>,
    anonymous: Arc<ClientPool>,
    pools: &Pools,
    share: f64,
) -> WorkerOutbound {
    let mut bindings = HashMap::new();
    for b in &w.mtls_certificates {
        let pool = if b.certificate == IDENTITY_CERTIFICATE {
            identity.clone()
        } else {
            pools.certificates.get(&b.certificate).cloned()
        };
        if let Some(pool) = pool {
            bindings.insert(Arc::from(b.binding.as_str()), pool);
        }
    }
    // With an identity and no explicit default, the identity is the default.
    let default = match &w.default_binding {
        Some(name) => bindings
            .get_key_value(name.as_str())
            .map(|(name, pool)| (name.clone(), pool.clone())),
        None => identity.map(|pool| (Arc::from(IDENTITY_CERTIFICATE), pool)),
    };
    WorkerOutbound {
        in_flight: InFlight::for_worker(share),
        bindings,
        default,
        anonymous,
        allowed: w
            .allowed_outbound_hosts
            .iter()
            .filter_map(|e| parse_allowed_origin(e).ok())
            .collect(),
    }
}

/// The admin endpoints have no authentication: say so when `server.admin`
/// listens beyond loopback.
fn warn_if_admin_is_exposed(findings: &mut Findings<'_>) {
    let admin = findings.manifest().manifest.server.admin.clone();
    let Some(addr) = admin.and_then(|a| a.parse::<std::net::SocketAddr>().ok()) else {
        return;
    };
    if !addr.ip().to_canonical().is_loopback() {
        findings.warn(
            "server.admin",
            format_args!(
                "{addr} is reachable beyond this machine, and anyone who reaches it can read /metrics and POST /reload (there is no authentication); bind it to 127.0.0.1, or to an interface only operators and your metrics scraper reach"
            ),
        );
    }
}
