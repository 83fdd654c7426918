//! Building the outbound pools of a generation: one without a client
//! certificate, one per `[[certificates]]` entry, one per worker identity.
//!
//! A pool whose inputs (files and settings) did not change since the last
//! generation is carried over from the [`PoolCache`], so a reload keeps its
//! warm connections; pools of replaced certificates start afresh.

use super::pool::{ClientPool, OutboundSettings};
use super::tls;
use crate::config::{CertificateSection, Findings, fingerprint};
use crate::state::{CertificateExpiry, IdentityEntry};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use sigil_pki::RotatingCert;
use std::collections::HashMap;
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
    /// The pool without a client certificate.
    pub anonymous: Arc<ClientPool>,
    /// One pool per `[[certificates]]` name.
    pub certificates: HashMap<String, Arc<ClientPool>>,
    /// Every pool built or carried over, for the next reload.
    pub next: PoolCache,
}

impl Pools {
    /// Build the anonymous pool and one pool per certificate, reusing what
    /// `previous` holds when nothing changed. Problems go to `findings`;
    /// certificate expiries to `expiries`.
    pub fn build(
        findings: &mut Findings<'_>,
        previous: &PoolCache,
        expiries: &mut Vec<CertificateExpiry>,
    ) -> Option<Pools> {
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
        let mut next = PoolCache::default();
        let anonymous = match previous.reuse("none", &outbound_key) {
            Some(c) => c.pool.clone(),
            None => match ClientPool::new("none", roots.clone(), None, &settings) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    findings.error(
                        "outbound",
                        format!("cannot build the outbound client: {e:#}"),
                    );
                    return None;
                }
            },
        };
        next.0.insert(
            "none".into(),
            CachedPool {
                key: outbound_key.clone(),
                pool: anonymous.clone(),
                identity: None,
            },
        );
        let mut pools = Pools {
            settings,
            roots,
            outbound_cas,
            outbound_key,
            anonymous,
            certificates: HashMap::new(),
            next,
        };
        for c in &findings.manifest().manifest.certificates {
            pools.add_certificate(c, findings, previous, expiries);
        }
        Some(pools)
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
        let roots = match &c.ca {
            Some(ca) => {
                findings.read(ca);
                match sigil_pki::load_ca_bundle(ca) {
                    Ok(cas) => tls::root_store(&cas, c.system_roots.unwrap_or(false)),
                    Err(e) => return findings.error(&item, e.to_string()),
                }
            }
            None if c.system_roots == Some(false) => tls::root_store(&self.outbound_cas, false),
            None => self.roots.clone(),
        };
        let mut inputs = vec![c.cert.clone(), c.key.clone()];
        inputs.extend(c.ca.clone());
        let key = fingerprint(
            &format!("{:?} {}", c.system_roots, self.outbound_key),
            &inputs,
        );
        let name = format!("certificate:{}", c.name);
        let pool = match previous.reuse(&name, &key) {
            Some(cached) => cached.pool.clone(),
            None => {
                let cert = Arc::new(RotatingCert::new(loaded.certified_key.clone()));
                match ClientPool::new(&c.name, roots, Some(cert), &self.settings) {
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
        worker: &str,
        key: &str,
        identity: Arc<IdentityEntry>,
    ) -> anyhow::Result<Arc<ClientPool>> {
        let name = format!("identity:{worker}");
        let pool = Arc::new(ClientPool::new(
            &name,
            self.roots.clone(),
            Some(identity.cert.clone()),
            &self.settings,
        )?);
        self.keep_identity(worker, key, pool.clone(), identity);
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
