//! A generation: everything one version of the manifest becomes once its
//! files are loaded — compiled workers, routes, hostname policies, outbound
//! pools and worker identities. Requests hold the generation they started
//! with; a reload builds a new one and swaps it in whole.

use crate::certs;
use crate::engine::{Engine, WorkerModule};
use crate::inbound::policy::{HostnamePolicies, HostnamePolicy, HostnamePolicySpec};
use crate::limits::Limits;
use crate::manifest::{
    IDENTITY_CERTIFICATE, LoadedManifest, ManifestError, ManifestErrors, parse_allowed_origin,
};
use crate::outbound::{IdentityClient, OutboundSettings, SwappableClientCert, WorkerOutbound, tls};
use crate::routing::Router;
use rustls_pki_types::CertificateDer;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Certificates expiring sooner than this produce a warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// A worker ready to serve.
pub struct Worker {
    /// Its name.
    pub name: Arc<str>,
    /// Its compiled module.
    pub module: WorkerModule,
    /// Its limits.
    pub limits: Limits,
    /// Its outbound view.
    pub outbound: Arc<WorkerOutbound>,
    /// Its variables (WASI environment).
    pub vars: Arc<[(String, String)]>,
}

/// A worker's Sigil-issued identity, renewed in place.
pub struct IdentityEntry {
    /// The worker.
    pub worker: Arc<str>,
    /// The pool presenting the identity (rotated on renewal).
    pub pool: Arc<IdentityClient>,
    /// When to renew (unix seconds).
    pub renew_at: AtomicI64,
    /// When the current certificate expires (unix seconds).
    pub not_after: AtomicI64,
}

/// An outbound pool and the fingerprint of what it was built from.
pub struct PooledClient {
    /// SHA-256 over the pool's input files and settings.
    pub key: String,
    /// The pool.
    pub pool: Arc<IdentityClient>,
}

/// SHA-256 over `settings` and the contents of `files` (missing files hash as empty).
fn fingerprint(settings: &str, files: &[PathBuf]) -> String {
    let mut bytes = settings.as_bytes().to_vec();
    for f in files {
        bytes.extend_from_slice(f.to_string_lossy().as_bytes());
        bytes.push(0);
        bytes.extend(std::fs::read(f).unwrap_or_default());
        bytes.push(0);
    }
    certs::fingerprint_sha256_hex(&bytes)
}

/// The pool `name` of `previous`, if it was built from the same inputs.
fn reuse(previous: Option<&Generation>, name: &str, key: &str) -> Option<Arc<IdentityClient>> {
    previous?
        .pools
        .get(name)
        .filter(|pc| pc.key == key)
        .map(|pc| pc.pool.clone())
}

/// A certificate whose expiry is reported in metrics.
pub struct CertificateExpiry {
    /// `certificate:<name>`, `hostname:<name>` or `identity:<worker>`.
    pub label: String,
    /// Not-after, unix seconds.
    pub not_after: i64,
}

/// One loaded version of the configuration.
pub struct Generation {
    /// Workers by name.
    pub workers: HashMap<Arc<str>, Arc<Worker>>,
    /// The route table.
    pub router: Router,
    /// Hostname policies by SNI.
    pub hostnames: HostnamePolicies,
    /// Worker identities to renew.
    pub identities: Vec<Arc<IdentityEntry>>,
    /// Outbound pools by `none`, `certificate:<name>` or `identity:<worker>`,
    /// with the fingerprint of their inputs (for reuse across reloads).
    pub pools: HashMap<String, PooledClient>,
    /// The identity issuer, if `[identity]` is configured.
    pub issuer: Option<Arc<certs::identity::IdentityIssuer>>,
    /// Identity certificate lifetime.
    pub identity_ttl: Duration,
    /// Certificates whose expiry is exported.
    pub expiries: Vec<CertificateExpiry>,
    /// Every file this generation was built from (for reload polling).
    pub files: Vec<PathBuf>,
    /// Warnings found while loading (e.g. certificates close to expiry).
    pub warnings: Vec<String>,
}

/// Load every file `m` names and build a generation, or report every problem.
///
/// Connection pools (and worker identities) whose inputs did not change since
/// `previous` are carried over, so a reload keeps their warm connections;
/// pools of replaced certificates start afresh.
pub fn build(
    m: &LoadedManifest,
    engine: &Engine,
    previous: Option<&Generation>,
) -> Result<Generation, ManifestErrors> {
    let man = &m.manifest;
    let now = crate::certs::details::unix_now();
    let mut errors: Vec<ManifestError> = Vec::new();
    let mut warnings = Vec::new();
    let mut files = vec![m.path.clone()];
    let mut expiries = Vec::new();

    let settings = OutboundSettings {
        connect_timeout: Duration::from_millis(man.outbound.connect_timeout_ms.unwrap_or(5000)),
        pool_idle: Duration::from_secs(man.outbound.pool_idle_secs.unwrap_or(90)),
    };

    // Roots for subrequests without a certificate-specific CA bundle.
    let mut outbound_cas: Vec<CertificateDer<'static>> = Vec::new();
    for path in &man.outbound.ca {
        files.push(path.clone());
        match certs::pem::load_ca_bundle(path) {
            Ok(cas) => outbound_cas.extend(cas),
            Err(e) => errors.push(m.error("outbound.ca", e.to_string())),
        }
    }
    let outbound_roots = tls::root_store(&outbound_cas, man.outbound.system_roots.unwrap_or(true));
    let outbound_key = fingerprint(
        &format!(
            "{:?} {:?} {:?}",
            man.outbound.system_roots, settings.connect_timeout, settings.pool_idle
        ),
        &man.outbound.ca,
    );
    let mut pools: HashMap<String, PooledClient> = HashMap::new();
    let anonymous = match reuse(previous, "none", &outbound_key) {
        Some(pool) => pool,
        None => match IdentityClient::new("none", outbound_roots.clone(), None, &settings) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                return Err(ManifestErrors(vec![m.error(
                    "outbound",
                    format!("cannot build the outbound client: {e:#}"),
                )]));
            }
        },
    };
    pools.insert(
        "none".into(),
        PooledClient {
            key: outbound_key.clone(),
            pool: anonymous.clone(),
        },
    );

    // Named certificates → one pool each.
    for c in &man.certificates {
        let item = format!("certificate \"{}\"", c.name);
        files.extend([c.cert.clone(), c.key.clone()]);
        let loaded = match certs::check::load_certified_key(&c.cert, &c.key, now) {
            Ok(l) => l,
            Err(e) => {
                errors.push(m.error(&item, e.to_string()));
                continue;
            }
        };
        if loaded.expires_within(EXPIRY_WARNING.as_secs() as i64, now) {
            warnings.push(format!(
                "{}: {item}: {} expires on {}; renew it soon",
                m.path.display(),
                c.cert.display(),
                certs::details::format_rfc3339(loaded.validity.not_after)
            ));
        }
        expiries.push(CertificateExpiry {
            label: format!("certificate:{}", c.name),
            not_after: loaded.validity.not_after,
        });
        let roots = match &c.ca {
            Some(ca) => {
                files.push(ca.clone());
                match certs::pem::load_ca_bundle(ca) {
                    Ok(cas) => tls::root_store(&cas, c.system_roots.unwrap_or(false)),
                    Err(e) => {
                        errors.push(m.error(&item, e.to_string()));
                        continue;
                    }
                }
            }
            None if c.system_roots == Some(false) => tls::root_store(&outbound_cas, false),
            None => outbound_roots.clone(),
        };
        let mut inputs = vec![c.cert.clone(), c.key.clone()];
        inputs.extend(c.ca.clone());
        let key = fingerprint(&format!("{:?} {outbound_key}", c.system_roots), &inputs);
        let pool_name = format!("certificate:{}", c.name);
        if let Some(pool) = reuse(previous, &pool_name, &key) {
            pools.insert(pool_name, PooledClient { key, pool });
            continue;
        }
        let cert = Arc::new(SwappableClientCert::new(loaded.certified_key.clone()));
        match IdentityClient::new(&c.name, roots, Some(cert), &settings) {
            Ok(pool) => {
                pools.insert(
                    pool_name,
                    PooledClient {
                        key,
                        pool: Arc::new(pool),
                    },
                );
            }
            Err(e) => errors.push(m.error(&item, format!("cannot build its client: {e:#}"))),
        }
    }

    // The identity issuer.
    let identity_ttl = Duration::from_secs(
        man.identity
            .as_ref()
            .and_then(|i| i.ttl_secs)
            .unwrap_or(3600),
    );
    let issuer = match &man.identity {
        Some(id) => {
            files.extend([id.ca_cert.clone(), id.ca_key.clone()]);
            match certs::issue::CertificateAuthority::load(&id.ca_cert, &id.ca_key)
                .and_then(|ca| certs::identity::IdentityIssuer::new(ca, &id.trust_domain))
            {
                Ok(i) => Some(Arc::new(i)),
                Err(e) => {
                    errors.push(m.error("identity", e.to_string()));
                    None
                }
            }
        }
        None => None,
    };

    // Hostname policies.
    let mut policies = Vec::new();
    for h in &man.hostnames {
        let item = format!("hostname \"{}\"", h.name);
        files.extend([h.cert.clone(), h.key.clone()]);
        let server = match certs::check::load_certified_key(&h.cert, &h.key, now) {
            Ok(l) => l,
            Err(e) => {
                errors.push(m.error(&item, e.to_string()));
                continue;
            }
        };
        expiries.push(CertificateExpiry {
            label: format!("hostname:{}", h.name),
            not_after: server.validity.not_after,
        });
        let mut client_cas = Vec::new();
        for ca in &h.client_ca {
            files.push(ca.clone());
            match certs::pem::load_ca_bundle(ca) {
                Ok(cas) => client_cas.extend(cas),
                Err(e) => errors.push(m.error(&item, e.to_string())),
            }
        }
        let mut crls = Vec::new();
        for crl in &h.crl {
            files.push(crl.clone());
            match certs::pem::load_crls(crl) {
                Ok(c) => crls.extend(c),
                Err(e) => errors.push(m.error(&item, e.to_string())),
            }
        }
        let spec = HostnamePolicySpec {
            name: h.name.to_ascii_lowercase(),
            server_cert: server.certified_key.clone(),
            client_cas,
            crls,
            mode: h.client_cert,
            max_chain_depth: h.max_chain_depth.unwrap_or(4) as usize,
            forward_client_cert: h.forward_client_cert,
        };
        match HostnamePolicy::build(spec) {
            Ok(p) => policies.push(p),
            Err(e) => errors.push(m.error(&item, e)),
        }
    }

    let identity_key = match &man.identity {
        Some(id) => fingerprint(
            &format!("{} {:?} {outbound_key}", id.trust_domain, identity_ttl),
            &[id.ca_cert.clone(), id.ca_key.clone()],
        ),
        None => String::new(),
    };

    // Workers.
    let defaults = Limits::default().with(&man.limits);
    let mut workers = HashMap::new();
    let mut identities = Vec::new();
    for w in &man.workers {
        let item = format!("worker \"{}\"", w.name);
        files.push(w.module.clone());
        let module = match engine.load_module(&w.module) {
            Ok(module) => Some(module),
            Err(e) => {
                errors.push(m.error(&item, e.to_string()));
                None
            }
        };
        let name: Arc<str> = w.name.as_str().into();
        let identity_on = man.identity.is_some() && w.identity != Some(false);
        let mut identity_pool = None;
        if identity_on && let Some(issuer) = &issuer {
            let pool_name = format!("identity:{}", w.name);
            let previous_entry = previous
                .filter(|p| {
                    p.pools
                        .get(&pool_name)
                        .is_some_and(|pc| pc.key == identity_key)
                })
                .and_then(|p| p.identities.iter().find(|e| *e.worker == *w.name));
            if let Some(entry) = previous_entry {
                identity_pool = Some(entry.pool.clone());
                identities.push(entry.clone());
                pools.insert(
                    pool_name,
                    PooledClient {
                        key: identity_key.clone(),
                        pool: entry.pool.clone(),
                    },
                );
            } else {
                match issuer.issue_for_worker(&w.name, identity_ttl) {
                    Ok((key, validity, _details)) => {
                        let cert = Arc::new(SwappableClientCert::new(key));
                        match IdentityClient::new(
                            &pool_name,
                            outbound_roots.clone(),
                            Some(cert),
                            &settings,
                        ) {
                            Ok(pool) => {
                                let pool = Arc::new(pool);
                                identity_pool = Some(pool.clone());
                                pools.insert(
                                    pool_name,
                                    PooledClient {
                                        key: identity_key.clone(),
                                        pool: pool.clone(),
                                    },
                                );
                                identities.push(Arc::new(IdentityEntry {
                                    worker: name.clone(),
                                    pool,
                                    renew_at: AtomicI64::new(certs::identity::renew_at(&validity)),
                                    not_after: AtomicI64::new(validity.not_after),
                                }));
                            }
                            Err(e) => errors.push(
                                m.error(&item, format!("cannot build its identity client: {e:#}")),
                            ),
                        }
                    }
                    Err(e) => {
                        errors.push(m.error(&item, format!("cannot issue its identity: {e}")))
                    }
                }
            }
        }
        let mut bindings = HashMap::new();
        for b in &w.mtls_certificates {
            let pool = if b.certificate == IDENTITY_CERTIFICATE {
                identity_pool.clone()
            } else {
                pools
                    .get(&format!("certificate:{}", b.certificate))
                    .map(|pc| pc.pool.clone())
            };
            if let Some(pool) = pool {
                bindings.insert(b.binding.clone(), pool);
            }
        }
        // With an identity and no explicit default, the identity is the default.
        let default = match &w.default_binding {
            Some(name) => bindings.get(name).map(|pool| (name.clone(), pool.clone())),
            None => identity_pool.map(|pool| (IDENTITY_CERTIFICATE.to_string(), pool)),
        };
        let allowed = w
            .allowed_outbound_hosts
            .iter()
            .filter_map(|e| parse_allowed_origin(e).ok())
            .collect();
        let outbound = Arc::new(WorkerOutbound {
            bindings,
            default,
            anonymous: anonymous.clone(),
            allowed,
        });
        if let Some(module) = module {
            workers.insert(
                name.clone(),
                Arc::new(Worker {
                    name,
                    module,
                    limits: defaults.with(&w.limits),
                    outbound,
                    vars: w.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                }),
            );
        }
    }

    let mut router = Router::default();
    for r in &man.routes {
        router.add(
            r.host.as_deref(),
            r.path.as_deref().unwrap_or("/"),
            &r.worker,
        );
    }

    if !errors.is_empty() {
        return Err(ManifestErrors(errors));
    }
    for e in &identities {
        expiries.push(CertificateExpiry {
            label: format!("identity:{}", e.worker),
            not_after: e.not_after.load(Ordering::Relaxed),
        });
    }
    Ok(Generation {
        pools,
        workers,
        router,
        hostnames: HostnamePolicies::new(policies, man.server.default_hostname.as_deref()),
        identities,
        issuer,
        identity_ttl,
        expiries,
        files,
        warnings,
    })
}
