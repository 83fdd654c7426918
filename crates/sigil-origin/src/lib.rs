//! # sigil-origin
//!
//! For origin owners: find out **which Sigil worker called you** from the
//! client certificate it presented in the TLS handshake.
//!
//! Every Sigil worker can hold a short-lived certificate from Sigil's identity
//! CA carrying exactly one URI SAN, the SPIFFE ID
//! `spiffe://<trust-domain>/worker/<worker-name>` (an X.509-SVID). Workers can
//! also present bring-your-own client certificates issued by your own CA.
//!
//! The split of work is:
//!
//! * **rustls verifies the chain.** [`server_config`] builds a
//!   [`rustls::ServerConfig`] whose client-certificate verifier
//!   ([`WebPkiClientVerifier`]) accepts only chains that lead to the roots
//!   you trust (Sigil's identity CA, your own CA, or both).
//! * **this crate reads the identity.** After the handshake,
//!   [`IdentityVerifier::identify`] turns the verified peer certificate into a
//!   [`WorkerIdentity`], enforcing the SPIFFE X.509-SVID rules and your trust
//!   domain; [`ClientCertSummary`] describes any client certificate (subject,
//!   issuer, serial, CN) for authorising bring-your-own certificates.
//!
//! Nothing in this crate checks signatures: only call it on certificates that
//! a verifier (such as the one in [`server_config`]) has already accepted.
//!
//! ```no_run
//! # fn demo(conn: &rustls::ServerConnection) -> Result<(), sigil_origin::IdentityError> {
//! use sigil_origin::IdentityVerifier;
//!
//! let verifier = IdentityVerifier::new("sigil.local");
//! let peer = conn.peer_certificates().unwrap_or_default();
//! let who = verifier.identify(peer)?;
//! if who.worker == "writer" {
//!     // allow the write
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

use std::fmt;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sigil_pki::dn::{decode_string, rfc4514};
use sigil_pki::{SpiffeError, SpiffeId};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// The URI scheme of every SPIFFE ID.
pub const SPIFFE_SCHEME_PREFIX: &str = "spiffe://";

/// Maximum length in bytes of a SPIFFE trust domain name.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Maximum length in bytes of a whole SPIFFE ID.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// The first path segment of every Sigil worker's SPIFFE ID.
pub const WORKER_PATH_SEGMENT: &str = "worker";

/// The identity of a Sigil worker, read from its X.509-SVID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerIdentity {
    /// The SPIFFE trust domain, e.g. `sigil.local`.
    pub trust_domain: String,
    /// The worker name, e.g. `writer`.
    pub worker: String,
    /// The whole SPIFFE ID, e.g. `spiffe://sigil.local/worker/writer`.
    pub spiffe_id: String,
}

impl WorkerIdentity {
    /// Check that this identity belongs to `trust_domain`.
    ///
    /// Returns [`IdentityError::UnexpectedTrustDomain`] otherwise.
    pub fn expect_trust_domain(&self, trust_domain: &str) -> Result<(), IdentityError> {
        if self.trust_domain == trust_domain {
            Ok(())
        } else {
            Err(IdentityError::UnexpectedTrustDomain {
                expected: trust_domain.to_owned(),
                found: self.trust_domain.clone(),
            })
        }
    }
}

impl fmt::Display for WorkerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spiffe_id)
    }
}

/// Why a certificate does not carry a valid Sigil worker identity.
///
/// Each SPIFFE X.509-SVID rule that can fail has its own variant, so an origin
/// can log (or test for) the exact reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The peer presented no certificate at all.
    #[error("no client certificate was presented")]
    NoCertificate,
    /// The certificate is not valid DER X.509.
    #[error("client certificate could not be parsed: {0}")]
    Parse(String),
    /// The certificate has no URI SAN, so it is not an X.509-SVID (it may be
    /// a bring-your-own certificate: see [`ClientCertSummary`]).
    #[error("client certificate has no URI subject alternative name (not a SPIFFE X.509-SVID)")]
    NoUriSan,
    /// An X.509-SVID must carry exactly one URI SAN.
    #[error(
        "client certificate has {0} URI subject alternative names; a SPIFFE X.509-SVID has exactly one"
    )]
    MultipleUriSans(usize),
    /// The leaf certificate has `basicConstraints CA:true`.
    #[error(
        "client certificate is a CA certificate (basicConstraints CA:true); a SPIFFE X.509-SVID leaf must not be a CA"
    )]
    LeafIsCa,
    /// The leaf certificate may sign certificates or CRLs.
    #[error(
        "client certificate has keyCertSign or cRLSign key usage; a SPIFFE X.509-SVID leaf must not"
    )]
    LeafCanSign,
    /// The URI SAN does not start with `spiffe://`.
    #[error("URI SAN {0:?} is not a SPIFFE ID (scheme must be spiffe://)")]
    NotSpiffe(String),
    /// The SPIFFE ID is longer than [`MAX_SPIFFE_ID_LEN`] bytes.
    #[error("SPIFFE ID is {0} bytes long; the limit is 2048")]
    IdTooLong(usize),
    /// The trust domain breaks the SPIFFE rules (empty, too long, or a
    /// character outside lowercase `[a-z0-9._-]`).
    #[error("invalid SPIFFE trust domain {trust_domain:?}: {reason}")]
    InvalidTrustDomain {
        /// The trust domain as found in the certificate.
        trust_domain: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The path breaks the SPIFFE rules (empty / `.` / `..` segments,
    /// trailing slash, characters outside `[A-Za-z0-9._-]`).
    #[error("invalid SPIFFE ID path {path:?}: {reason}")]
    InvalidPath {
        /// The path as found in the certificate.
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The SPIFFE ID is valid, but not a Sigil worker ID
    /// (`/worker/<name>`).
    #[error("SPIFFE ID {0:?} is not a Sigil worker identity (path must be /worker/<name>)")]
    NotAWorker(String),
    /// The SPIFFE ID belongs to a trust domain this origin does not accept.
    #[error("SPIFFE trust domain {found:?} is not the expected {expected:?}")]
    UnexpectedTrustDomain {
        /// The trust domain the origin accepts.
        expected: String,
        /// The trust domain in the certificate.
        found: String,
    },
}

/// Parse a SPIFFE ID string of the form `spiffe://<trust-domain>/worker/<name>`.
///
/// Applies the SPIFFE ID rules through [`sigil_pki::SpiffeId`] (lowercase
/// `spiffe` scheme; trust domain made of `[a-z0-9._-]`, at most 255 bytes;
/// whole ID at most 2048 bytes; path segments non-empty, not `.` or `..`,
/// made of `[A-Za-z0-9._-]`; no query, fragment, port or user info) and then
/// requires a Sigil worker path.
pub fn parse_worker_spiffe_id(id: &str) -> Result<WorkerIdentity, IdentityError> {
    let parsed = SpiffeId::parse(id).map_err(|e| spiffe_error(id, e))?;
    match parsed.worker_name() {
        Some(worker) => Ok(WorkerIdentity {
            trust_domain: parsed.trust_domain().to_owned(),
            worker: worker.to_owned(),
            spiffe_id: id.to_owned(),
        }),
        None => Err(IdentityError::NotAWorker(id.to_owned())),
    }
}

/// The [`IdentityError`] for a SPIFFE rule `id` breaks.
fn spiffe_error(id: &str, e: SpiffeError) -> IdentityError {
    let (trust_domain, path_text) = id
        .strip_prefix(SPIFFE_SCHEME_PREFIX)
        .map(|rest| match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        })
        .unwrap_or((id, ""));
    let domain = |reason| IdentityError::InvalidTrustDomain {
        trust_domain: trust_domain.to_owned(),
        reason,
    };
    let path = |reason| IdentityError::InvalidPath {
        path: path_text.to_owned(),
        reason,
    };
    match e {
        SpiffeError::TooLong { len } => IdentityError::IdTooLong(len),
        SpiffeError::MissingTrustDomain { .. } => domain("trust domain is empty"),
        SpiffeError::TrustDomainTooLong { .. } => domain("trust domain is longer than 255 bytes"),
        SpiffeError::TrustDomainNotLowercase { .. } => domain("trust domain must be lowercase"),
        SpiffeError::Query { .. } | SpiffeError::Fragment { .. } if !path_text.is_empty() => {
            path("path segments may contain only A-Z, a-z, 0-9, '.', '-' and '_'")
        }
        SpiffeError::TrustDomainBadChar { .. }
        | SpiffeError::UserInfo { .. }
        | SpiffeError::Port { .. }
        | SpiffeError::Query { .. }
        | SpiffeError::Fragment { .. } => domain(
            "trust domain may contain only a-z, 0-9, '.', '-' and '_' (no port, user info, query or fragment)",
        ),
        SpiffeError::TrailingSlash { .. } => path("path must not end with '/'"),
        SpiffeError::EmptySegment { .. } => path("path has an empty segment"),
        SpiffeError::DotSegment { .. } => path("path has a '.' or '..' segment"),
        SpiffeError::SegmentBadChar { .. } => {
            path("path segments may contain only A-Z, a-z, 0-9, '.', '-' and '_'")
        }
        _ => IdentityError::NotSpiffe(id.to_owned()),
    }
}

fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, IdentityError> {
    match X509Certificate::from_der(der) {
        Ok((rest, _)) if !rest.is_empty() => Err(IdentityError::Parse(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        ))),
        Ok((_, cert)) => Ok(cert),
        Err(e) => Err(IdentityError::Parse(e.to_string())),
    }
}

/// Read the Sigil worker identity from a DER-encoded leaf certificate.
///
/// Enforces the SPIFFE X.509-SVID rules: exactly one URI SAN, the leaf is not
/// a CA (no `CA:true`, no `keyCertSign`/`cRLSign`), and the URI is a valid
/// SPIFFE ID whose path is `/worker/<name>` (see [`parse_worker_spiffe_id`]).
///
/// This does **not** verify the certificate chain or the trust domain: use it
/// on a certificate your TLS stack has verified, and prefer
/// [`IdentityVerifier::identify`], which also checks the trust domain.
pub fn identity_from_certificate(der: &[u8]) -> Result<WorkerIdentity, IdentityError> {
    let cert = parse_certificate(der)?;

    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Parse(format!("subjectAltName: {e}")))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    let uri = match uris.as_slice() {
        [] => return Err(IdentityError::NoUriSan),
        [one] => *one,
        many => return Err(IdentityError::MultipleUriSans(many.len())),
    };

    let basic = cert
        .basic_constraints()
        .map_err(|e| IdentityError::Parse(format!("basicConstraints: {e}")))?;
    if basic.is_some_and(|bc| bc.value.ca) {
        return Err(IdentityError::LeafIsCa);
    }
    let key_usage = cert
        .key_usage()
        .map_err(|e| IdentityError::Parse(format!("keyUsage: {e}")))?;
    if key_usage.is_some_and(|ku| ku.value.key_cert_sign() || ku.value.crl_sign()) {
        return Err(IdentityError::LeafCanSign);
    }

    parse_worker_spiffe_id(uri)
}

/// Reads worker identities from verified peer certificates and accepts only
/// one trust domain.
///
/// ```
/// let verifier = sigil_origin::IdentityVerifier::new("sigil.local");
/// assert_eq!(verifier.trust_domain(), "sigil.local");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityVerifier {
    trust_domain: String,
}

impl IdentityVerifier {
    /// An identity verifier accepting only SPIFFE IDs in `trust_domain`
    /// (e.g. `sigil.local`). The comparison is exact; SPIFFE trust domains
    /// are lowercase.
    pub fn new(trust_domain: impl Into<String>) -> Self {
        Self {
            trust_domain: trust_domain.into(),
        }
    }

    /// The trust domain this verifier accepts.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Identify the worker from the peer's certificate chain as returned by
    /// [`rustls::ServerConnection::peer_certificates`] (leaf first).
    ///
    /// The chain must already have been verified by rustls (e.g. through
    /// [`server_config`]); this checks the X.509-SVID rules and the trust
    /// domain.
    pub fn identify(
        &self,
        peer_certs: &[CertificateDer<'_>],
    ) -> Result<WorkerIdentity, IdentityError> {
        let leaf = peer_certs.first().ok_or(IdentityError::NoCertificate)?;
        self.identify_der(leaf.as_ref())
    }

    /// Identify the worker from one DER-encoded (already verified) leaf
    /// certificate.
    pub fn identify_der(&self, der: &[u8]) -> Result<WorkerIdentity, IdentityError> {
        let identity = identity_from_certificate(der)?;
        identity.expect_trust_domain(&self.trust_domain)?;
        Ok(identity)
    }
}

/// A summary of any client certificate, for authorising bring-your-own
/// certificates by subject, issuer, serial number or common name.
///
/// Distinguished names are in RFC 4514 form, most specific RDN first (the same
/// order as nginx's `$ssl_client_s_dn`), e.g. `CN=writer,O=Example Corp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertSummary {
    /// Subject distinguished name, e.g. `CN=writer,O=Example Corp`.
    pub subject_dn: String,
    /// Issuer distinguished name.
    pub issuer_dn: String,
    /// Serial number as uppercase hexadecimal without separators, exactly as
    /// encoded (which may include a leading `00` byte).
    pub serial_hex: String,
    /// The first subject common name, if there is one.
    pub common_name: Option<String>,
}

impl ClientCertSummary {
    /// Summarise a DER-encoded certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let cert = parse_certificate(der)?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .map(|cn| decode_string(cn.attr_value()).unwrap_or_default());
        Ok(Self {
            subject_dn: rfc4514(cert.subject()),
            issuer_dn: rfc4514(cert.issuer()),
            serial_hex: hex_upper(cert.raw_serial()),
            common_name,
        })
    }

    /// Whether this certificate's serial number equals `serial_hex`.
    ///
    /// Case, `:` separators and leading zeros are ignored, so
    /// `0a:1B`, `A1B` and `00A1B` all match the same serial. Serial numbers are
    /// only unique per issuer: combine with [`ClientCertSummary::issuer_dn`]
    /// when you trust more than one CA.
    pub fn serial_matches(&self, serial_hex: &str) -> bool {
        normalise_serial(&self.serial_hex) == normalise_serial(serial_hex)
    }
}

/// Normalise a hexadecimal serial number for comparison: drop `:` and
/// whitespace, uppercase, strip leading zeros (keeping at least one digit).
pub fn normalise_serial(serial_hex: &str) -> String {
    let digits: String = serial_hex
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() && !digits.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Summarise a DER-encoded certificate; shorthand for
/// [`ClientCertSummary::from_der`].
pub fn summarize_certificate(der: &[u8]) -> Result<ClientCertSummary, IdentityError> {
    ClientCertSummary::from_der(der)
}

fn hex_upper(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02X}");
            s
        })
}

/// Errors from [`server_config`].
#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    /// The client CA store is empty, so no client could ever be verified.
    #[error("no client CA certificates were given")]
    NoClientRoots,
    /// rustls refused to build the client-certificate verifier.
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls refused the server certificate chain or key (e.g. the key does
    /// not match the certificate).
    #[error("invalid server certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Build a rustls server configuration that verifies client certificates
/// against `client_roots`.
///
/// * `server_chain` / `server_key` — the origin's own certificate chain (leaf
///   first) and private key.
/// * `client_roots` — the CAs whose client certificates are accepted (Sigil's
///   identity CA and/or your own CA for bring-your-own certificates).
/// * `require` — if `true`, handshakes without a client certificate fail; if
///   `false`, they succeed and [`rustls::ServerConnection::peer_certificates`]
///   returns `None` (a certificate that *is* presented must still verify).
///
/// Uses the aws-lc-rs crypto provider explicitly and offers ALPN `h2` and
/// `http/1.1`.
pub fn server_config(
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    client_roots: RootCertStore,
    require: bool,
) -> Result<Arc<rustls::ServerConfig>, ServerConfigError> {
    if client_roots.is_empty() {
        return Err(ServerConfigError::NoClientRoots);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone());
    if !require {
        verifier = verifier.allow_unauthenticated();
    }
    // A chain of more certificates than any path needs never reaches
    // webpki's path building (see `sigil_pki::bounded_chain`).
    let verifier: Arc<dyn ClientCertVerifier> =
        Arc::new(sigil_pki::bounded_chain::BoundedChain(verifier.build()?));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(server_chain, server_key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
