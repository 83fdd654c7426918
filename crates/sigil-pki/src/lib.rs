//! # sigil-pki
//!
//! Sigil's certificate material: everything that reads, checks, describes or
//! issues X.509 certificates, with no knowledge of workers, listeners or
//! manifests.
//!
//! - [`fs`] reads files safely (regular files only, size caps, never blocking);
//! - [`load`] reads PEM chains, private keys, CA bundles and CRLs (and
//!   encodes PEM);
//! - [`check`] turns a chain + key into a rustls
//!   [`CertifiedKey`](rustls::sign::CertifiedKey), checking that the key
//!   matches and the leaf is within its validity;
//! - [`details`] extracts the facts workers and operators see (subject,
//!   issuer, serial, SHA-256 fingerprint, validity, SANs, SPIFFE ID);
//! - [`dn`] renders X.509 names as RFC 4514 strings (every string type
//!   decoded, every special character escaped);
//! - [`spiffe`] is the one [`SpiffeId`] type and its rules;
//! - [`client_verifier`] checks inbound client certificates for one hostname;
//! - [`rotating`] is a client certificate that can be replaced while
//!   connections use it;
//! - [`ca`] is a small CA (rcgen) that issues leaves and CRLs;
//! - [`identity`] issues short-lived worker identities (X.509-SVIDs) and
//!   says when to renew them.
//!
//! Every error is a [`CertError`] whose message names the file, what is
//! wrong and how to fix it.

pub mod bounded_chain;
pub mod ca;
pub mod check;
pub mod client_verifier;
pub mod details;
pub mod dn;
mod error;
pub mod fs;
pub mod identity;
pub mod load;
pub mod rotating;
pub mod spiffe;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod test_util;

pub use ca::{CertUsage, CertificateAuthority, IssueRequest, IssuedCertificate};
pub use check::{
    EXPIRY_WARNING_SECS, LoadedCertificate, Validity, certified_key_from_der, load_certified_key,
    provider,
};
pub use details::{
    CertificateDetails, CrlDetails, fingerprint_sha256_hex, format_rfc3339, serial_to_hex, unix_now,
};
pub use error::CertError;
pub use identity::{IdentityIssuer, renew_at};
pub use load::{encode_pem, load_ca_bundle, load_chain, load_crls, load_private_key};
pub use rotating::RotatingCert;
pub use spiffe::{SpiffeError, SpiffeId, validate_trust_domain};
