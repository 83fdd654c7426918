//! Building the outbound pools of a generation: one without a client
//! certificate, one per `[[certificates]]` entry, one per worker identity.
//!
//! A pool whose inputs (files and settings) did not change since the last
//! generation is carried over from the [`PoolCache`], so a reload keeps its
//! warm connections; pools of replaced certificates start afresh.

use super::pool::{ClientPool, OutboundSettings};
use super::tls;
use crate::config::{
    CertificateSection, Findings, WorkerSection, fingerprint, parse_allowed_origin,
};
use crate::state::{CertificateExpiry, IdentityEntry};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use sigil_pki::RotatingCert;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// A pool and the fingerprint of what it was built from.
#[derive(Clone)]
pub struct CachedPool {
    /// SHA-256 over the pool's input files and settings.
    pub key: String,
    /// The pool.
    pub pool: Arc<ClientPool>,
    /// The identity it presents, for `identity:<worker>` pools.
    pub identity: Option<Arc<IdentityEntry>>,
}

/// The pools of the generation being served, by `none`,
/// `certificate:<name>` or `identity:<worker>`.
#[derive(Clone, Default)]
pub struct PoolCache(pub HashMap<String, CachedPool>);

impl PoolCache {
    /// The pool `name`, if it was built from the same inputs.
    pub fn reuse(&self, name: &str, key: &str) -> Option<&CachedPool> {
        self.0.get(name).filter(|c| c.key == key)
    }
}

/// The host names `workers` allow explicitly (lower case): the names a pool
/// they use may resolve to internal addresses.
pub fn explicit_names<'w>(
    workers: impl IntoIterator<Item = &'w WorkerSection>,
) -> Arc<HashSet<String>> {
    let names = workers
        .into_iter()
        .flat_map(|w| w.allowed_outbound_hosts.iter())
        .filter_map(|entry| parse_allowed_origin(entry).ok())
        .filter_map(|origin| origin.explicit_name().map(str::to_string))
        .collect();
    Arc::new(names)
}

/// A stable text of `names`, for pool fingerprints.
fn names_key(names: &HashSet<String>) -> String {
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.join(",")
}

/// The pools every worker can draw from.
pub struct Pools {
    /// Settings every pool shares.
    pub settings: OutboundSettings,
    /// Roots for subrequests without a certificate-specific CA bundle.
    pub roots: Arc<RootCertStore>,
    /// The CAs of `[outbound] ca`.
    outbound_cas: Vec<CertificateDer<'static>>,
    /// Fingerprint of the `[outbound]` settings (part of every pool's key).
    pub outbound_key: String,
    /// One pool per `[[certificates]]` name.
    pub certificates: HashMap<String, Arc<ClientPool>>,
    /// Every pool built or carried over, for the next reload.
    pub next: PoolCache,
}

impl Pools {
    /// Build one pool per certificate, reusing what `previous` holds when
    /// nothing changed. Problems go to `findings`; certificate expiries to
    /// `expiries`.
    pub fn build(
        findings: &mut Findings<'_>,
        previous: &PoolCache,
        expiries: &mut Vec<CertificateExpiry>,
    ) -> Pools {
        let outbound = &findings.manifest().manifest.outbound;
        let settings = OutboundSettings {
            connect_timeout: Duration::from_millis(outbound.connect_timeout_ms.unwrap_or(5000)),
            pool_idle: Duration::from_secs(outbound.pool_idle_secs.unwrap_or(90)),
        };
        let mut outbound_cas = Vec::new();
        for path in &outbound.ca {
            findings.read(path);
            match sigil_pki::load_ca_bundle(path) {
                Ok(cas) => outbound_cas.extend(cas),
                Err(e) => findings.error("outbound.ca", e.to_string()),
            }
        }
        let roots = tls::root_store(&outbound_cas, outbound.system_roots.unwrap_or(true));
        let outbound_key = fingerprint(
            &format!(
                "{:?} {:?} {:?}",
                outbound.system_roots, settings.connect_timeout, settings.pool_idle
            ),
            &outbound.ca,
        );
        let mut pools = Pools {
            settings,
            roots,
            outbound_cas,
            outbound_key,
            certificates: HashMap::new(),
            next: PoolCache::default(),
        };
        for c in &findings.manifest().manifest.certificates {
            pools.add_certificate(c, findings, previous, expiries);
        }
        pools
    }

    /// `worker`'s pool without a client certificate (one per worker, so it
    /// resolves internal addresses only for the names this worker allows
    /// explicitly).
    pub fn anonymous(
        &mut self,
        worker: &WorkerSection,
        previous: &PoolCache,
    ) -> anyhow::Result<Arc<ClientPool>> {
        let explicit = explicit_names([worker]);
        let name = format!("none:{}", worker.name);
        let key = format!("{} {}", self.outbound_key, names_key(&explicit));
        let pool = match previous.reuse(&name, &key) {
            Some(cached) => cached.pool.clone(),
            None => Arc::new(ClientPool::new(
                "none",
                self.roots.clone(),
                None,
                &self.settings,
                explicit,
            )?),
        };
        let cached = CachedPool {
            key,
            pool: pool.clone(),
            identity: None,
        };
        self.next.0.insert(name, cached);
        Ok(pool)
    }

    /// The roots that verify origins reached with certificate `c`: its own
    /// `ca` bundle, or the outbound roots.
    fn certificate_roots(
        &self,
        c: &CertificateSection,
        item: &str,
        findings: &mut Findings<'_>,
    ) -> Option<Arc<RootCertStore>> {
        match &c.ca {
            Some(ca) => {
                findings.read(ca);
                match sigil_pki::load_ca_bundle(ca) {
                    Ok(cas) => Some(tls::root_store(&cas, c.system_roots.unwrap_or(false))),
                    Err(e) => {
                        findings.error(item, e.to_string());
                        None
                    }
                }
            }
            None if c.system_roots == Some(false) => {
                Some(tls::root_store(&self.outbound_cas, false))
            }
            None => Some(self.roots.clone()),
        }
    }

    /// Load one `[[certificates]]` entry and build (or reuse) its pool.
    fn add_certificate(
        &mut self,
        c: &CertificateSection,
        findings: &mut Findings<'_>,
        previous: &PoolCache,
        expiries: &mut Vec<CertificateExpiry>,
    ) {
        let item = format!("certificate \"{}\"", c.name);
        findings.read(&c.cert);
        findings.read(&c.key);
        let now = sigil_pki::unix_now();
        let loaded = match sigil_pki::load_certified_key(&c.cert, &c.key, now) {
            Ok(l) => l,
            Err(e) => return findings.error(&item, e.to_string()),
        };
        if loaded
            .validity
            .expires_within(sigil_pki::EXPIRY_WARNING_SECS, now)
        {
            findings.warn(
                &item,
                format_args!(
                    "{} expires on {}; renew it soon",
                    c.cert.display(),
                    sigil_pki::format_rfc3339(loaded.validity.not_after)
                ),
            );
        }
        expiries.push(CertificateExpiry {
            label: format!("certificate:{}", c.name),
            not_after: loaded.validity.not_after,
        });
        let Some(roots) = self.certificate_roots(c, &item, findings) else {
            return;
        };
        let mut inputs = vec![c.cert.clone(), c.key.clone()];
        inputs.extend(c.ca.clone());
        let manifest = findings.manifest();
        let explicit = explicit_names(
            manifest
                .manifest
                .workers
                .iter()
                .filter(|w| w.mtls_certificates.iter().any(|b| b.certificate == c.name)),
        );
        let key = fingerprint(
            &format!(
                "{:?} {} {}",
                c.system_roots,
                self.outbound_key,
                names_key(&explicit)
            ),
            &inputs,
        );
        let name = format!("certificate:{}", c.name);
        let pool = match previous.reuse(&name, &key) {
            Some(cached) => cached.pool.clone(),
            None => {
                let cert = Arc::new(RotatingCert::new(loaded.certified_key.clone()));
                match ClientPool::new(&c.name, roots, Some(cert), &self.settings, explicit) {
                    Ok(pool) => Arc::new(pool),
                    Err(e) => {
                        return findings.error(&item, format!("cannot build its client: {e:#}"));
                    }
                }
            }
        };
        self.certificates.insert(c.name.clone(), pool.clone());
        self.next.0.insert(
            name,
            CachedPool {
                key,
                pool,
                identity: None,
            },
        );
    }

    /// The pool presenting `identity`, the identity of `worker`; `key`
    /// fingerprints the identity CA and settings.
    pub fn add_identity(
        &mut self,
        worker: &WorkerSection,
        key: &str,
        identity: Arc<IdentityEntry>,
    ) -> anyhow::Result<Arc<ClientPool>> {
        let name = format!("identity:{}", worker.name);
        let pool = Arc::new(ClientPool::new(
            &name,
            self.roots.clone(),
            Some(identity.cert.clone()),
            &self.settings,
            explicit_names([worker]),
        )?);
        self.keep_identity(&worker.name, key, pool.clone(), identity);
        Ok(pool)
    }

    /// Carry an identity pool over into the next cache.
    pub fn keep_identity(
        &mut self,
        worker: &str,
        key: &str,
        pool: Arc<ClientPool>,
        identity: Arc<IdentityEntry>,
    ) {
        self.next.0.insert(
            format!("identity:{worker}"),
            CachedPool {
                key: key.to_string(),
                pool,
                identity: Some(identity),
            },
        );
    }
}
