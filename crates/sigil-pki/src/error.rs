//! The error type shared by every module of this crate.

use std::io;
use std::path::PathBuf;

use super::spiffe::SpiffeError;

/// Everything that can go wrong while loading, checking, issuing or
/// inspecting certificates.
///
/// Every message names the file (or the item) concerned, says what is wrong
/// and suggests a fix, so it can be shown to an operator as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A file could not be read.
    // `cause`, not `source`: the message already includes it, and `{:#}`
    // chains would print it twice.
    #[error("{path}: cannot read file: {cause}; check that the path is correct and readable")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        cause: io::Error,
    },

    /// A file or directory could not be written.
    #[error("{path}: cannot write file: {cause}; check that the directory exists and is writable")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        cause: io::Error,
    },

    /// An output file exists and overwriting was not requested.
    #[error("{path}: file already exists; pass --force to overwrite it or choose another path")]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },

    /// The PEM text itself is malformed (bad base64, missing END line, ...).
    #[error("{path}: malformed PEM: {detail}; re-export the file as PEM")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser reported.
        detail: String,
    },

    /// A certificate file holds no `CERTIFICATE` block.
    #[error(
        "{path}: contains no certificates (no \"-----BEGIN CERTIFICATE-----\" block){hint}; \
         point this at a PEM certificate chain, leaf first"
    )]
    NoCertificates {
        /// The file.
        path: PathBuf,
        /// Extra explanation, for example that the file holds a private key.
        hint: String,
    },

    /// A CA bundle holds no certificate.
    #[error(
        "{path}: CA bundle contains no certificates; it must hold at least one PEM \
         \"-----BEGIN CERTIFICATE-----\" block for a CA you trust"
    )]
    EmptyCaBundle {
        /// The file.
        path: PathBuf,
    },

    /// A certificate is not valid X.509 DER.
    #[error(
        "{path}: certificate #{index} cannot be parsed as X.509: {detail}; \
         check that the file holds an unmodified PEM certificate"
    )]
    BadCertificate {
        /// The file (or a description of the source).
        path: PathBuf,
        /// The 1-based position of the certificate in the file.
        index: usize,
        /// What the parser reported.
        detail: String,
    },

    /// A private-key file holds no usable key.
    #[error(
        "{path}: contains no private key{hint}; expected a PEM \"PRIVATE KEY\", \
         \"EC PRIVATE KEY\" or \"RSA PRIVATE KEY\" block"
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
        /// Extra explanation, for example that the file holds a certificate.
        hint: String,
    },

    /// A private-key file holds an encrypted key.
    #[error(
        "{path}: private key is encrypted; Sigil needs an unencrypted key, \
         decrypt it with `openssl pkey -in {path} -out <new.key>` and protect the file with chmod 600"
    )]
    EncryptedKey {
        /// The file.
        path: PathBuf,
    },

    /// A private key could not be loaded by the crypto provider.
    #[error(
        "{path}: unsupported or corrupt private key: {detail}; use an ECDSA P-256/P-384, RSA (2048+ bits) or Ed25519 key"
    )]
    UnsupportedKey {
        /// The file.
        path: PathBuf,
        /// What the crypto provider reported.
        detail: String,
    },

    /// The private key is not the key of the leaf certificate.
    #[error(
        "{key_path}: private key does not match the certificate in {cert_path}; \
         check that both files come from the same issuance"
    )]
    KeyMismatch {
        /// The key file.
        key_path: PathBuf,
        /// The certificate file.
        cert_path: PathBuf,
    },

    /// The leaf certificate has expired.
    #[error(
        "{path}: certificate expired at {not_after} (it is now {now}); \
         renew it and replace the file"
    )]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// The certificate's notAfter, RFC 3339.
        not_after: String,
        /// The time of the check, RFC 3339.
        now: String,
    },

    /// The leaf certificate is not valid yet.
    #[error(
        "{path}: certificate is not valid until {not_before} (it is now {now}); \
         check the system clock or wait until the certificate becomes valid"
    )]
    NotYetValid {
        /// The certificate file.
        path: PathBuf,
        /// The certificate's notBefore, RFC 3339.
        not_before: String,
        /// The time of the check, RFC 3339.
        now: String,
    },

    /// A CRL file holds no CRL.
    #[error(
        "{path}: contains no certificate revocation lists; expected PEM \
         \"-----BEGIN X509 CRL-----\" blocks or a DER-encoded CRL"
    )]
    NoCrls {
        /// The file.
        path: PathBuf,
    },

    /// A CRL cannot be parsed.
    #[error("{path}: CRL #{index} cannot be parsed: {detail}; re-download the CRL from its issuer")]
    BadCrl {
        /// The file.
        path: PathBuf,
        /// The 1-based position of the CRL in the file.
        index: usize,
        /// What the parser reported.
        detail: String,
    },

    /// The certificate file starts with a CA certificate instead of the leaf
    /// (a chain in the wrong order).
    #[error(
        "{cert_path}: the first certificate is a CA ({subject}), not the certificate for the key in {key_path}; \
         list the leaf certificate first, then its intermediates"
    )]
    ChainOutOfOrder {
        /// The certificate file.
        cert_path: PathBuf,
        /// The key file.
        key_path: PathBuf,
        /// The first certificate's subject.
        subject: String,
    },

    /// A CA certificate/key pair cannot be used to issue certificates.
    #[error("{what}: cannot be used as an issuing CA: {detail}")]
    BadCa {
        /// The CA (usually its certificate path).
        what: String,
        /// What is wrong and how to fix it.
        detail: String,
    },

    /// An issuance request is inconsistent.
    #[error("cannot issue certificate {what}: {detail}")]
    InvalidRequest {
        /// The certificate being issued (its common name).
        what: String,
        /// What is wrong and how to fix it.
        detail: String,
    },

    /// Certificate generation failed inside rcgen or the crypto provider.
    #[error("cannot issue certificate {what}: {detail}")]
    Issue {
        /// The certificate being issued (its common name).
        what: String,
        /// What the generator reported.
        detail: String,
    },

    /// A SPIFFE ID or trust domain is invalid.
    // Not a `source`: the message already includes it, and `{:#}` chains
    // would print it twice.
    #[error("{what}: {rule}")]
    Spiffe {
        /// Where the SPIFFE ID came from.
        what: String,
        /// The rule that was violated.
        rule: SpiffeError,
    },
}

impl CertError {
    /// Builds a [`CertError::Issue`] from any displayable error.
    pub(crate) fn issue(what: &str, err: impl std::fmt::Display) -> Self {
        Self::Issue {
            what: format!("{what:?}"),
            detail: err.to_string(),
        }
    }

    /// Builds a [`CertError::InvalidRequest`].
    pub(crate) fn invalid(what: &str, detail: impl Into<String>) -> Self {
        Self::InvalidRequest {
            what: format!("{what:?}"),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file error says its cause once: it has no `source()` for an
    /// error chain (`{:#}`, anyhow) to print again. Before, the CLI printed
    /// "cannot write file: Not a directory (os error 20); check ...: Not a
    /// directory (os error 20)".
    #[test]
    fn file_errors_say_their_cause_once() {
        for e in [
            CertError::Read {
                path: "a.pem".into(),
                cause: io::Error::from_raw_os_error(2),
            },
            CertError::Write {
                path: "adir/".into(),
                cause: io::Error::from_raw_os_error(20),
            },
        ] {
            assert!(std::error::Error::source(&e).is_none(), "{e}");
            assert_eq!(e.to_string().matches("(os error").count(), 1, "{e}");
        }
    }
}
