//! Certificates: loading, checking, issuing and inspecting them.
//!
//! - [`pem`] loads PEM chains, private keys, CA bundles and CRLs.
//! - [`check`] turns a chain + key into a rustls [`CertifiedKey`](rustls::sign::CertifiedKey),
//!   checking that the key matches and the leaf is within its validity.
//! - [`details`] extracts the facts workers and operators see (subject,
//!   issuer, serial, SHA-256 fingerprint, validity, SANs, SPIFFE ID).
//! - [`spiffe`] validates SPIFFE IDs.
//! - [`issue`] is a small CA (rcgen) that issues leaves and CRLs.
//! - [`identity`] issues short-lived worker identities (X.509-SVIDs).
//! - [`dev_pki`] writes the throwaway development PKI used by the examples.
//! - [`inspect`](mod@inspect) renders a human report, optionally verifying a chain.
//! - [`certs_cli`] runs the `sigil certs` subcommands.
//!
//! Every error is a [`CertError`] whose message names the file, what is
//! wrong and how to fix it.

pub mod check;
mod cli;
pub mod details;
pub mod dev_pki;
mod error;
pub mod identity;
pub mod inspect;
pub mod issue;
pub mod pem;
pub mod spiffe;

pub use check::{
    EXPIRY_WARNING_SECS, LoadedCertificate, Validity, certified_key_from_der, load_certified_key,
};
pub use cli::{CertsCommand, certs_cli};
pub use details::{CertificateDetails, fingerprint_sha256_hex, format_rfc3339, serial_to_hex};
pub use dev_pki::{DevPkiReport, init_dev_pki};
pub use error::CertError;
pub use identity::{IdentityIssuer, renew_at};
pub use issue::{CertUsage, CertificateAuthority, IssueRequest, IssuedCertificate};
pub use pem::{load_ca_bundle, load_chain, load_crls, load_private_key};
pub use spiffe::{SpiffeError, SpiffeId, validate_trust_domain};

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A temporary directory removed on drop.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "sigil-certs-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).expect("write temp file");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
