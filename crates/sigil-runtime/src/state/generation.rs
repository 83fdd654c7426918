//! A generation: everything one version of the manifest becomes once its
//! files are loaded — workers, routes, hostname policies and worker
//! identities. Requests hold the generation they started with; a reload
//! builds a new one and swaps it in whole.

use super::{HostnamePolicies, Router, Worker};
use crate::telemetry::metrics::{CertificateLabel, metrics};
use sigil_pki::{IdentityIssuer, RotatingCert};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

/// A file's size and modification time (`None` when it cannot be read):
/// what the reload poller compares.
pub type FileStamp = Option<(u64, SystemTime)>;

/// A worker's Sigil-issued identity, renewed in place.
pub struct IdentityEntry {
    /// The worker.
    pub worker: Arc<str>,
    /// The certificate its identity pool presents (replaced on renewal).
    pub cert: Arc<RotatingCert>,
    /// When to renew (unix seconds).
    pub renew_at: AtomicI64,
    /// When the current certificate expires (unix seconds).
    pub not_after: AtomicI64,
}

/// A certificate whose expiry is reported in metrics.
pub struct CertificateExpiry {
    /// `certificate:<name>` or `hostname:<name>`.
    pub label: String,
    /// Not-after, unix seconds.
    pub not_after: i64,
}

/// One loaded version of the configuration.
pub struct Generation {
    /// Which generation this is: 1 for the first, one more per reload
    /// (set by [`super::Runtime`]; 0 until it is served).
    pub id: u64,
    /// Workers by name.
    pub workers: HashMap<Arc<str>, Arc<Worker>>,
    /// The route table.
    pub router: Router,
    /// Hostname policies by SNI.
    pub hostnames: HostnamePolicies,
    /// Worker identities to renew.
    pub identities: Vec<Arc<IdentityEntry>>,
    /// The identity issuer, if `[identity]` is configured.
    pub issuer: Option<Arc<IdentityIssuer>>,
    /// Identity certificate lifetime.
    pub identity_ttl: Duration,
    /// Certificates (other than identities) whose expiry is exported.
    pub expiries: Vec<CertificateExpiry>,
    /// Every file this generation was built from (for reload polling).
    pub files: Vec<PathBuf>,
    /// Their stamps when they were read (taken before the build started,
    /// for the files the previous generation had too); the poller reloads
    /// when a file no longer matches.
    pub files_seen: Vec<(PathBuf, FileStamp)>,
    /// Warnings found while loading (e.g. certificates close to expiry).
    pub warnings: Vec<String>,
    /// Most times a request may pass through Sigil (`server.max_hops`).
    pub max_hops: u32,
    /// Whether every request gets an access-log line (`server.access_log`).
    pub access_log: bool,
}

impl Generation {
    /// The `certificate` labels of this generation with their notAfter.
    fn not_afters(&self) -> Vec<(String, i64)> {
        let mut all: Vec<(String, i64)> = self
            .expiries
            .iter()
            .map(|e| (e.label.clone(), e.not_after))
            .collect();
        all.extend(self.identities.iter().map(|e| {
            (
                format!("identity:{}", e.worker),
                e.not_after.load(Ordering::Relaxed),
            )
        }));
        all
    }

    /// Set `sigil_certificate_not_after_seconds` for every certificate of
    /// this generation, and remove the series of certificates `previous`
    /// had and this one has not. Called once per load, reload and renewal:
    /// a scrape never finds the family empty.
    pub fn export_not_after(&self, previous: Option<&Generation>) {
        let gauge = &metrics().certificate_not_after;
        let now = self.not_afters();
        for (label, not_after) in &now {
            gauge
                .get_or_create(&CertificateLabel {
                    certificate: label.as_str().into(),
                })
                .set(*not_after);
        }
        for (label, _) in previous.map(Generation::not_afters).unwrap_or_default() {
            if !now.iter().any(|(l, _)| *l == label) {
                gauge.remove(&CertificateLabel {
                    certificate: label.as_str().into(),
                });
            }
        }
    }
}
