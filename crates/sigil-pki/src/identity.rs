//! Short-lived worker identities: X.509-SVIDs issued in-process from the
//! identity CA.
//!
//! Each identity carries exactly one URI SAN,
//! `spiffe://<trust-domain>/worker/<worker-name>`, the worker name as CN, the
//! `clientAuth` EKU, and is not a CA. The chain presented is just the leaf:
//! origins trust the identity CA directly.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use super::CertError;
use super::ca::{CLOCK_SKEW_SECS, CertUsage, CertificateAuthority, IssueRequest};
use super::check::{Validity, certified_key_from_der};
use super::details::CertificateDetails;
use super::spiffe::{SpiffeId, validate_trust_domain};

/// Issues worker identities from an identity CA.
#[derive(Debug)]
pub struct IdentityIssuer {
    ca: CertificateAuthority,
    trust_domain: String,
}

impl IdentityIssuer {
    /// Creates an issuer for `trust_domain` (validated as a SPIFFE trust domain).
    pub fn new(ca: CertificateAuthority, trust_domain: &str) -> Result<Self, CertError> {
        validate_trust_domain(trust_domain).map_err(|rule| CertError::Spiffe {
            what: format!("trust domain {trust_domain:?}"),
            rule,
        })?;
        Ok(Self {
            ca,
            trust_domain: trust_domain.to_string(),
        })
    }

    /// The identity CA (origins use its certificate as trust anchor).
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The SPIFFE trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The SPIFFE ID a worker's identity carries.
    pub fn spiffe_id(&self, worker_name: &str) -> Result<SpiffeId, CertError> {
        SpiffeId::for_worker(&self.trust_domain, worker_name).map_err(|rule| CertError::Spiffe {
            what: format!("worker {worker_name:?}"),
            rule,
        })
    }

    /// Issues an identity for `worker_name`, valid from one minute ago until
    /// `ttl` from now. The returned key's chain is `[leaf]`.
    pub fn issue_for_worker(
        &self,
        worker_name: &str,
        ttl: Duration,
    ) -> Result<(Arc<CertifiedKey>, Validity, CertificateDetails), CertError> {
        self.issue_for_worker_at(worker_name, ttl, OffsetDateTime::now_utc())
    }

    /// Like [`Self::issue_for_worker`], at an explicit time (for tests).
    pub fn issue_for_worker_at(
        &self,
        worker_name: &str,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<(Arc<CertifiedKey>, Validity, CertificateDetails), CertError> {
        let id = self.spiffe_id(worker_name)?;
        if ttl.as_secs() == 0 {
            return Err(CertError::invalid(
                worker_name,
                "identity lifetime must be at least one second",
            ));
        }
        let mut req = IssueRequest::new(worker_name, CertUsage::ClientAuth, ttl);
        req.not_before = now - time::Duration::seconds(CLOCK_SKEW_SECS);
        req.not_after = now + ttl;
        req.uri_sans = vec![id.to_string()];
        let issued = self.ca.issue(&req)?;
        let label = format!("identity of worker {worker_name:?}");
        let loaded = certified_key_from_der(
            vec![issued.cert_der.clone()],
            issued.private_key_der(),
            Path::new(&label),
            Path::new(&label),
            now.unix_timestamp(),
        )?;
        Ok((loaded.certified_key, loaded.validity, loaded.leaf_details))
    }
}

/// When to renew the identity of `worker`: between one half and two thirds
/// of its lifetime since issuance (`not_before` is backdated by
/// [`CLOCK_SKEW_SECS`], which does not count), at a point that depends on the
/// worker and the certificate, so identities issued together are not all
/// renewed in the same tick (a handshake storm at every origin).
pub fn renew_at(validity: &Validity, worker: &str) -> i64 {
    let issued = validity.not_before + CLOCK_SKEW_SECS;
    let lifetime = (validity.not_after - issued).max(0);
    let window = lifetime / 6;
    let jitter = if window > 0 {
        // FNV-1a over the worker name and the certificate's start: stable
        // for one certificate, different across workers and renewals.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in worker.bytes().chain(validity.not_before.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h % (window as u64 + 1)) as i64
    } else {
        0
    };
    issued + lifetime * 2 / 3 - jitter
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::UnixTime;

    fn issuer() -> IdentityIssuer {
        let ca = CertificateAuthority::generate("Identity CA", 30).unwrap();
        IdentityIssuer::new(ca, "sigil.local").unwrap()
    }

    #[test]
    fn identity_is_an_x509_svid() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let issuer = issuer();
        let (key, validity, details) = issuer
            .issue_for_worker("writer", Duration::from_secs(3600))
            .unwrap();
        assert_eq!(key.cert.len(), 1, "chain is [leaf]");
        assert_eq!(details.uri_sans, ["spiffe://sigil.local/worker/writer"]);
        assert_eq!(
            details.spiffe_id.as_deref(),
            Some("spiffe://sigil.local/worker/writer")
        );
        assert_eq!(details.common_name.as_deref(), Some("writer"));
        assert_eq!(details.extended_key_usages, ["clientAuth"]);
        assert!(!details.is_ca);
        assert!(details.dns_sans.is_empty() && details.ip_sans.is_empty());
        assert_eq!(validity.lifetime_secs(), 3600 + 60);
        // Renewal between one half and two thirds of the lifetime since
        // issuance (skew excluded), spread across workers.
        let issued = validity.not_before + 60;
        let times: std::collections::BTreeSet<i64> = (0..100)
            .map(|i| renew_at(&validity, &format!("worker-{i}")))
            .collect();
        assert!(
            times
                .iter()
                .all(|t| (issued + 1800..=issued + 2400).contains(t))
        );
        assert!(
            times.len() > 50,
            "renewals spread: {} distinct times",
            times.len()
        );

        let roots = Arc::new(issuer.ca().root_store().unwrap());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots,
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .unwrap();
        verifier
            .verify_client_cert(&key.cert[0], &[], UnixTime::now())
            .unwrap();

        // Another CA's verifier refuses it.
        let other = CertificateAuthority::generate("Other", 30).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(other.root_store().unwrap()),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .unwrap();
        assert!(
            verifier
                .verify_client_cert(&key.cert[0], &[], UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn bad_names_and_domains() {
        let issuer = issuer();
        let err = issuer
            .issue_for_worker("a/b", Duration::from_secs(60))
            .unwrap_err();
        assert!(err.to_string().contains("worker name \"a/b\""), "{err}");
        assert!(
            issuer
                .issue_for_worker("w", Duration::from_secs(0))
                .is_err()
        );
        let ca = CertificateAuthority::generate("Identity CA", 30).unwrap();
        assert!(IdentityIssuer::new(ca, "Sigil.Local").is_err());
    }
}
