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
    /// The certificate new handshakes present.
    pub cert: Arc<SwappableClientCert>,
    /// When to renew (unix seconds).
    pub renew_at: AtomicI64,
    /// When the current certificate expires (unix seconds).
    pub not_after: AtomicI64,
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

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Load every file `m` names and build a generation, or report every problem.
pub fn build(m: &LoadedManifest, engine: &Engine) -> Result<Generation, ManifestErrors> {
    let man = &m.manifest;
    let now = now_unix();
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
    let anonymous = match IdentityClient::new("none", outbound_roots.clone(), None, &settings) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            return Err(ManifestErrors(vec![m.error(
                "outbound",
                format!("cannot build the outbound client: {e:#}"),
            )]));
        }
    };

    // Named certificates → one pool each.
    let mut pools: HashMap<String, Arc<IdentityClient>> = HashMap::new();
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
        let cert = Arc::new(SwappableClientCert::new(loaded.certified_key.clone()));
        match IdentityClient::new(&c.name, roots, Some(cert), &settings) {
            Ok(pool) => {
                pools.insert(c.name.clone(), Arc::new(pool));
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
            match issuer.issue_for_worker(&w.name, identity_ttl) {
                Ok((key, validity, _details)) => {
                    let cert = Arc::new(SwappableClientCert::new(key));
                    let roots = outbound_roots.clone();
                    match IdentityClient::new(
                        &format!("identity:{}", w.name),
                        roots,
                        Some(cert.clone()),
                        &settings,
                    ) {
                        Ok(pool) => identity_pool = Some(Arc::new(pool)),
                        Err(e) => errors.push(
                            m.error(&item, format!("cannot build its identity client: {e:#}")),
                        ),
                    }
                    identities.push(Arc::new(IdentityEntry {
                        worker: name.clone(),
                        cert,
                        renew_at: AtomicI64::new(certs::identity::renew_at(&validity)),
                        not_after: AtomicI64::new(validity.not_after),
                    }));
                }
                Err(e) => errors.push(m.error(&item, format!("cannot issue its identity: {e}"))),
            }
        }
        let mut bindings = HashMap::new();
        for b in &w.mtls_certificates {
            let pool = if b.certificate == IDENTITY_CERTIFICATE {
                identity_pool.clone()
            } else {
                pools.get(&b.certificate).cloned()
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
