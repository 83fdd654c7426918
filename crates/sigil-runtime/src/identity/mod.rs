//! Worker identities: the identity CA of `[identity]`, the first
//! certificate of each worker, and renewal before expiry. The certificate
//! lives in a [`RotatingCert`]; a renewal replaces it, and the worker's
//! identity pool notices and retires its connections.

use crate::config::Findings;
use crate::state::{Generation, IdentityEntry};
use crate::telemetry::metrics::{CertificateLabel, WorkerLabel, metrics};
use sigil_pki::{CertificateAuthority, IdentityIssuer, RotatingCert};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Lifetime of identity certificates when `ttl_secs` is not set.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// The identity CA of `[identity]`, if configured and usable.
pub fn load_issuer(findings: &mut Findings<'_>) -> Option<Arc<IdentityIssuer>> {
    let id = findings.manifest().manifest.identity.as_ref()?;
    findings.read(&id.ca_cert);
    findings.read(&id.ca_key);
    let loaded = CertificateAuthority::load(&id.ca_cert, &id.ca_key).and_then(|ca| {
        let ends = ca.not_after();
        Ok((IdentityIssuer::new(ca, &id.trust_domain)?, ends))
    });
    match loaded {
        Ok((issuer, ends)) => {
            let ttl = i64::try_from(ttl(findings).as_secs()).unwrap_or(i64::MAX);
            let soon = sigil_pki::EXPIRY_WARNING_SECS.max(ttl);
            if ends.saturating_sub(sigil_pki::unix_now()) <= soon {
                let cert = id.ca_cert.display().to_string();
                findings.warn(
                    "identity",
                    format_args!(
                        "{cert}: the identity CA expires on {}, and worker certificates end with it; renew the CA soon",
                        sigil_pki::format_rfc3339(ends)
                    ),
                );
            }
            Some(Arc::new(issuer))
        }
        Err(e) => {
            findings.error("identity", e.to_string());
            None
        }
    }
}

/// The identity lifetime configured in `[identity] ttl_secs`.
pub fn ttl(findings: &Findings<'_>) -> Duration {
    findings
        .manifest()
        .manifest
        .identity
        .as_ref()
        .and_then(|i| i.ttl_secs)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TTL)
}

/// Issue `worker`'s first identity certificate.
pub fn issue(
    issuer: &IdentityIssuer,
    worker: &Arc<str>,
    ttl: Duration,
) -> Result<Arc<IdentityEntry>, sigil_pki::CertError> {
    let (key, validity, _details) = issuer.issue_for_worker(worker, ttl)?;
    Ok(Arc::new(IdentityEntry {
        worker: worker.clone(),
        cert: Arc::new(RotatingCert::new(key)),
        renew_at: AtomicI64::new(sigil_pki::renew_at(&validity, worker)),
        not_after: AtomicI64::new(validity.not_after),
    }))
}

/// How long after a failed renewal it is tried again.
pub const RENEWAL_RETRY_SECS: i64 = 30;

/// Renew the identities of `generation` that reached their renewal time.
pub fn renew_due(generation: &Generation) {
    let Some(issuer) = &generation.issuer else {
        return;
    };
    let now = sigil_pki::unix_now();
    for entry in &generation.identities {
        if now < entry.renew_at.load(Ordering::Relaxed) {
            continue;
        }
        match issuer.issue_for_worker(&entry.worker, generation.identity_ttl) {
            Ok((key, validity, _)) => {
                entry.cert.replace(key);
                entry.renew_at.store(
                    sigil_pki::renew_at(&validity, &entry.worker),
                    Ordering::Relaxed,
                );
                entry.not_after.store(validity.not_after, Ordering::Relaxed);
                metrics()
                    .certificate_not_after
                    .get_or_create(&CertificateLabel {
                        certificate: format!("identity:{}", entry.worker).into(),
                    })
                    .set(validity.not_after);
                metrics()
                    .identity_renewals
                    .get_or_create(&WorkerLabel {
                        worker: entry.worker.clone(),
                    })
                    .inc();
                tracing::debug!(worker = %entry.worker, "identity renewed");
            }
            Err(e) => {
                // Tried again later, not at every tick: a CA that expired
                // while Sigil runs would otherwise fill the log.
                entry
                    .renew_at
                    .store(now + RENEWAL_RETRY_SECS, Ordering::Relaxed);
                tracing::error!(
                    worker = %entry.worker,
                    "identity renewal failed (next try in {RENEWAL_RETRY_SECS} s): {e}"
                );
            }
        }
    }
}
