//! Loading a certificate chain with its private key into a rustls
//! [`CertifiedKey`], with the checks an operator needs: the key matches the
//! leaf, and the leaf is within its validity period.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use super::CertError;
use super::details::{CertificateDetails, format_rfc3339};
use super::load::{load_chain, load_private_key};

/// Warn when a certificate expires within this many seconds (14 days).
pub const EXPIRY_WARNING_SECS: i64 = 14 * 24 * 60 * 60;

/// The aws-lc-rs crypto provider, built once.
pub fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// A certificate's validity period, in unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Validity {
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds.
    pub not_after: i64,
}

impl Validity {
    /// Reads the validity of a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| CertError::BadCertificate {
                path: "certificate".into(),
                index: 1,
                detail: e.to_string(),
            })?;
        Ok(Self {
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// True if `now` lies within `[not_before, not_after]`.
    pub fn contains(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// True if the certificate expires within `secs` seconds of `now` (or has
    /// already expired). Use with [`EXPIRY_WARNING_SECS`] for the warning.
    pub fn expires_within(&self, secs: i64, now: i64) -> bool {
        self.not_after.saturating_sub(now) <= secs
    }

    /// Total lifetime in seconds.
    pub fn lifetime_secs(&self) -> i64 {
        self.not_after.saturating_sub(self.not_before)
    }

    /// Fails with [`CertError::Expired`] or [`CertError::NotYetValid`] (naming
    /// `path` and the dates in RFC 3339) when `now` is outside the period.
    pub fn check(&self, path: &Path, now: i64) -> Result<(), CertError> {
        if now < self.not_before {
            return Err(CertError::NotYetValid {
                path: path.to_path_buf(),
                not_before: format_rfc3339(self.not_before),
                now: format_rfc3339(now),
            });
        }
        if now > self.not_after {
            return Err(CertError::Expired {
                path: path.to_path_buf(),
                not_after: format_rfc3339(self.not_after),
                now: format_rfc3339(now),
            });
        }
        Ok(())
    }
}

/// A checked certificate chain and key, ready for rustls.
#[derive(Clone, Debug)]
pub struct LoadedCertificate {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The chain plus signing key, for a rustls resolver.
    pub certified_key: Arc<CertifiedKey>,
    /// The leaf's validity.
    pub validity: Validity,
    /// Facts about the leaf.
    pub leaf_details: CertificateDetails,
}

impl LoadedCertificate {
    /// True if the leaf expires within `secs` seconds of `now`.
    pub fn expires_within(&self, secs: i64, now: i64) -> bool {
        self.validity.expires_within(secs, now)
    }
}

/// Loads `cert_path` (PEM chain, leaf first) and `key_path` (PEM key) and
/// checks that the key matches the leaf and the leaf is valid at `now`.
pub fn load_certified_key(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
    now: i64,
) -> Result<LoadedCertificate, CertError> {
    let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
    let chain = load_chain(cert_path)?;
    let key = load_private_key(key_path)?;
    certified_key_from_der(chain, key, cert_path, key_path, now)
}

/// Like [`load_certified_key`], for a chain and key already in memory;
/// `cert_path` and `key_path` are only used in error messages.
pub fn certified_key_from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
    now: i64,
) -> Result<LoadedCertificate, CertError> {
    let Some(leaf) = chain.first() else {
        return Err(CertError::NoCertificates {
            path: cert_path.to_path_buf(),
            hint: String::new(),
        });
    };
    let leaf_details = CertificateDetails::from_der(leaf).map_err(|e| match e {
        CertError::BadCertificate { index, detail, .. } => CertError::BadCertificate {
            path: cert_path.to_path_buf(),
            index,
            detail,
        },
        other => other,
    })?;
    let signing_key =
        provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| CertError::UnsupportedKey {
                path: key_path.to_path_buf(),
                detail: e.to_string(),
            })?;
    let certified_key = CertifiedKey::new(chain.clone(), signing_key);
    match certified_key.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            tracing::warn!(
                key = %key_path.display(),
                "cannot check that the private key matches the certificate"
            );
        }
        Err(rustls::Error::InconsistentKeys(_)) if leaf_details.is_ca => {
            return Err(CertError::ChainOutOfOrder {
                cert_path: cert_path.to_path_buf(),
                key_path: key_path.to_path_buf(),
                subject: leaf_details.subject_dn.clone(),
            });
        }
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(CertError::KeyMismatch {
                key_path: key_path.to_path_buf(),
                cert_path: cert_path.to_path_buf(),
            });
        }
        Err(e) => {
            return Err(CertError::BadCertificate {
                path: cert_path.to_path_buf(),
                index: 1,
                detail: e.to_string(),
            });
        }
    }
    let validity = Validity {
        not_before: leaf_details.not_before,
        not_after: leaf_details.not_after,
    };
    validity.check(cert_path, now)?;
    Ok(LoadedCertificate {
        chain,
        certified_key: Arc::new(certified_key),
        validity,
        leaf_details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{CertUsage, CertificateAuthority, IssueRequest};
    use crate::details::unix_now;
    use crate::test_util::TempDir;
    use std::time::Duration;
    use time::OffsetDateTime;

    fn write_pair(
        dir: &TempDir,
        name: &str,
        req: &IssueRequest,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let ca = CertificateAuthority::generate("Check CA", 30).unwrap();
        let issued = ca.issue(req).unwrap();
        (
            dir.write(&format!("{name}.pem"), &issued.cert_pem),
            dir.write(&format!("{name}.key"), &issued.key_pem),
        )
    }

    #[test]
    fn loads_a_good_pair() {
        let dir = TempDir::new("check-good");
        let req = IssueRequest::new("good", CertUsage::ClientAuth, Duration::from_secs(86400));
        let (cert, key) = write_pair(&dir, "good", &req);
        let loaded = load_certified_key(&cert, &key, unix_now()).unwrap();
        assert_eq!(loaded.chain.len(), 1);
        assert_eq!(loaded.leaf_details.common_name.as_deref(), Some("good"));
        assert!(loaded.expires_within(EXPIRY_WARNING_SECS, unix_now()));
        assert!(!loaded.expires_within(60, unix_now()));
    }

    #[test]
    fn key_mismatch_is_detected() {
        let dir = TempDir::new("check-mismatch");
        let req = IssueRequest::new("x", CertUsage::ClientAuth, Duration::from_secs(86400));
        let (cert_a, _) = write_pair(&dir, "tenant-x", &req);
        let (_, key_b) = write_pair(&dir, "tenant-y", &req);
        let err = load_certified_key(&cert_a, &key_b, unix_now()).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("tenant-y.key: private key does not match the certificate in")
                && msg.contains("tenant-x.pem; check that both files come from the same issuance"),
            "{msg}"
        );
    }

    #[test]
    fn expired_and_not_yet_valid() {
        let dir = TempDir::new("check-dates");
        let now = OffsetDateTime::now_utc();
        let mut req = IssueRequest::new("old", CertUsage::ClientAuth, Duration::from_secs(60));
        req.not_before = now - time::Duration::days(10);
        req.not_after = now - time::Duration::days(1);
        let (cert, key) = write_pair(&dir, "old", &req);
        let err = load_certified_key(&cert, &key, unix_now()).unwrap_err();
        assert!(matches!(err, CertError::Expired { .. }), "{err}");
        assert!(err.to_string().contains("expired at 20"), "{err}");
        assert!(err.to_string().contains("old.pem"), "{err}");

        req.not_before = now + time::Duration::days(1);
        req.not_after = now + time::Duration::days(10);
        let (cert, key) = write_pair(&dir, "future", &req);
        let err = load_certified_key(&cert, &key, unix_now()).unwrap_err();
        assert!(matches!(err, CertError::NotYetValid { .. }), "{err}");
        assert!(err.to_string().contains("not valid until 20"), "{err}");
    }

    #[test]
    fn validity_maths() {
        let v = Validity {
            not_before: 1000,
            not_after: 4000,
        };
        assert_eq!(v.lifetime_secs(), 3000);
        assert!(v.contains(1000) && v.contains(4000) && !v.contains(4001));
        assert!(v.expires_within(100, 3950));
        assert!(!v.expires_within(100, 3000));
    }
}
