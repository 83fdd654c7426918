//! Inbound client-certificate verification for one hostname.
//!
//! [`ClientVerifier`] is a [`ClientCertVerifier`] built directly on
//! rustls-webpki. Compared with rustls' `WebPkiClientVerifier` as Sigil used
//! it, it guarantees:
//!
//! * **A CRL only speaks for its issuer.** A certificate is checked against
//!   the CRL whose issuer issued it (webpki's "authoritative" CRL: same
//!   issuer name and, when the CRL has an issuing distribution point, a
//!   matching scope). A certificate whose issuer has no CRL is accepted,
//!   unless [`VerifierConfig::crl_required`] is set, in which case every
//!   certificate of the path (leaf and intermediates) needs its issuer's CRL
//!   (`unable to get certificate CRL` otherwise) — the behaviour of OpenSSL's
//!   `X509_V_FLAG_CRL_CHECK_ALL`, which nginx's `ssl_crl` turns on. With
//!   several client CAs, a CRL for CA A therefore no longer rejects CA B's
//!   devices or those behind an intermediate that has no CRL.
//! * **Chain depth counts the verified path.** [`VerifierConfig::max_chain_depth`]
//!   limits the number of certificates in the path webpki built — leaf,
//!   intermediates and the trust anchor — whatever the client sent: a root
//!   sent along, or unrelated extra certificates, do not count, and a longer
//!   path fails even if a shorter one was sent. Path building goes on past a
//!   path that is too long, so a shorter valid path is still found. What
//!   the client may send is bounded too: at most
//!   [`MAX_SENT_INTERMEDIATES`] certificates besides the leaf (or
//!   `max_chain_depth - 1`, when that is more), since every extra one
//!   multiplies the paths webpki tries (ten that name each other as issuer
//!   cost it 200,000 steps, 0.14 s of CPU per handshake, on the runtime's
//!   threads).
//! * **Failure reasons users can grep for.** [`VerifyFailure::reason`] is the
//!   OpenSSL / nginx text (`certificate has expired`, `self-signed
//!   certificate`, …) and [`VerifyFailure::label`] a closed [`FailureLabel`]
//!   for metrics. Neither is derived from `Debug` output nor ever contains a
//!   time, a name or a number.
//! * **`optional` mode accepts any chain in the handshake.** Including an
//!   X.509 v1 certificate, which webpki refuses to parse. The handshake
//!   signature is still verified against the leaf's public key: by webpki
//!   when it can parse the certificate, otherwise with the SPKI read by
//!   x509-parser and verified through the same aws-lc-rs algorithms. The
//!   result of verification is then given by [`ClientVerifier::check`] as
//!   `SUCCESS` / `FAILED:<reason>` for the worker.
//!
//! In `require` mode a failed verification fails the handshake. The rustls
//! error carries the failure: [`handshake_failure`] recovers the
//! [`VerifyFailure`] from it. Failures that have a matching rustls
//! [`CertificateError`] use it (so the TLS alert is the usual one: expired,
//! revoked, unknown CA, …); the others travel in `CertificateError::Other`
//! and the client sees `certificate_unknown`.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, PeerMisbehaved,
    RootCertStore, SignatureScheme,
};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, SubjectPublicKeyInfoDer, TrustAnchor, UnixTime,
};
use webpki::{
    CertRevocationList, ExpirationPolicy, KeyUsage, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy, VerifiedPath,
};

/// Default for [`VerifierConfig::max_chain_depth`]: leaf, two intermediates
/// and the trust anchor.
pub const DEFAULT_MAX_CHAIN_DEPTH: usize = 4;

/// Most certificates a client may send besides its leaf (when
/// `max_chain_depth - 1` is not more): two intermediates, the root and two
/// more. A longer chain fails as `certificate chain too long` before any
/// path is built.
pub const MAX_SENT_INTERMEDIATES: usize = 5;

/// Whether a hostname requires a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertMode {
    /// The handshake fails without a certificate that verifies.
    Require,
    /// The handshake accepts no certificate or any certificate; the result
    /// of verification is reported by [`ClientVerifier::check`].
    Optional,
}

/// What a [`ClientVerifier`] is built from.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The client CA certificates (trust anchors). At least one.
    pub client_cas: Vec<CertificateDer<'static>>,
    /// CRLs, each applied only to certificates its issuer issued.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// `require` or `optional`.
    pub mode: ClientCertMode,
    /// Most certificates in the verified path, trust anchor included
    /// (leaf + anchor = 2, so at least 2).
    pub max_chain_depth: usize,
    /// Refuse a certificate whose issuer has no CRL among [`Self::crls`].
    pub crl_required: bool,
    /// Refuse a certificate whose issuer's CRL is past its `nextUpdate`
    /// (`CRL has expired`), as OpenSSL does. On by default.
    pub enforce_crl_next_update: bool,
}

impl VerifierConfig {
    /// A configuration with no CRLs, [`DEFAULT_MAX_CHAIN_DEPTH`],
    /// `crl_required` off and CRL `nextUpdate` enforced.
    pub fn new(client_cas: Vec<CertificateDer<'static>>, mode: ClientCertMode) -> Self {
        VerifierConfig {
            client_cas,
            crls: Vec::new(),
            mode,
            max_chain_depth: DEFAULT_MAX_CHAIN_DEPTH,
            crl_required: false,
            enforce_crl_next_update: true,
        }
    }
}

/// Why a [`ClientVerifier`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// No client CA was given, so no certificate could ever verify.
    NoClientCas,
    /// A client CA certificate cannot be used as a trust anchor.
    BadClientCa {
        /// Its position in [`VerifierConfig::client_cas`] (from 0).
        index: usize,
    },
    /// A CRL cannot be parsed or uses a feature webpki does not support
    /// (delta CRLs, indirect CRLs, …).
    BadCrl {
        /// Its position in [`VerifierConfig::crls`] (from 0).
        index: usize,
    },
    /// `crl_required` is set but no CRL was given: every certificate
    /// would be refused.
    CrlRequiredWithoutCrls,
    /// `max_chain_depth` is below 2 (a leaf and its trust anchor).
    DepthTooSmall {
        /// The configured depth.
        depth: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoClientCas => f.write_str("no client CA certificate was given"),
            BuildError::BadClientCa { index } => write!(
                f,
                "client CA certificate #{} cannot be used as a trust anchor",
                index + 1
            ),
            BuildError::BadCrl { index } => write!(
                f,
                "CRL #{} cannot be parsed or uses an unsupported feature (delta or indirect CRL)",
                index + 1
            ),
            BuildError::CrlRequiredWithoutCrls => f.write_str(
                "crl_required is set but no CRL was given; every certificate would be refused",
            ),
            BuildError::DepthTooSmall { depth } => write!(
                f,
                "max_chain_depth is {depth}; it counts the leaf and the trust anchor, so it must be at least 2"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// Why a client certificate chain did not verify.
///
/// [`Self::reason`] gives the OpenSSL / nginx wording, [`Self::label`] the
/// metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifyFailure {
    /// No certificate was presented where one is required.
    NoCertificate,
    /// A certificate of the path is past its notAfter.
    Expired,
    /// A certificate of the path is before its notBefore.
    NotYetValid,
    /// No path to a configured client CA.
    UnknownIssuer,
    /// The leaf is self-signed and not itself a configured client CA.
    SelfSigned,
    /// The chain ends in a self-signed certificate that is not trusted.
    SelfSignedInChain,
    /// A certificate of the path is on its issuer's CRL.
    Revoked,
    /// A certificate signature does not verify, or uses an unsupported
    /// algorithm.
    BadSignature,
    /// The leaf's extended key usage does not allow client authentication,
    /// or the leaf is a CA certificate.
    BadPurpose,
    /// `crl_required` is set and an issuer on the path has no CRL.
    CrlMissing,
    /// The issuer's CRL is past its nextUpdate.
    CrlExpired,
    /// A CRL's signature does not verify.
    CrlSignature,
    /// A CRL's issuer has a key usage without cRLSign.
    CrlNotSigner,
    /// The verified path is longer than `max_chain_depth`.
    ChainTooLong,
    /// An intermediate's pathLenConstraint is exceeded.
    PathLengthExceeded,
    /// A certificate used as an issuer is not a CA certificate.
    InvalidCa,
    /// A certificate is not X.509 v3.
    UnsupportedVersion,
    /// A certificate has a critical extension webpki does not handle.
    UnhandledCriticalExtension,
    /// A name in the leaf violates a CA's name constraints.
    NameConstraints,
    /// A CA's name constraints cannot be parsed.
    NameConstraintSyntax,
    /// A name in a certificate cannot be parsed.
    NameSyntax,
    /// A certificate of the path is distrusted.
    Rejected,
    /// A certificate extension is malformed.
    InvalidExtension,
    /// A certificate cannot be decoded.
    Malformed,
    /// Any other failure.
    Unspecified,
}

impl VerifyFailure {
    /// The reason as OpenSSL / nginx word it (`certificate has expired`).
    /// Fixed text: no time, name or number.
    pub fn reason(self) -> &'static str {
        use VerifyFailure as F;
        match self {
            F::NoCertificate => "no required SSL certificate was sent",
            F::Expired => "certificate has expired",
            F::NotYetValid => "certificate is not yet valid",
            F::UnknownIssuer => "unable to get local issuer certificate",
            F::SelfSigned => "self-signed certificate",
            F::SelfSignedInChain => "self-signed certificate in certificate chain",
            F::Revoked => "certificate revoked",
            F::BadSignature => "certificate signature failure",
            F::BadPurpose => "unsupported certificate purpose",
            F::CrlMissing => "unable to get certificate CRL",
            F::CrlExpired => "CRL has expired",
            F::CrlSignature => "CRL signature failure",
            F::CrlNotSigner => "key usage does not include CRL signing",
            F::ChainTooLong => "certificate chain too long",
            F::PathLengthExceeded => "path length constraint exceeded",
            F::InvalidCa => "invalid CA certificate",
            F::UnsupportedVersion => "unsupported certificate version",
            F::UnhandledCriticalExtension => "unhandled critical extension",
            F::NameConstraints => "name constraints violation",
            F::NameConstraintSyntax => "unsupported or invalid name constraint syntax",
            F::NameSyntax => "unsupported or invalid name syntax",
            F::Rejected => "certificate rejected",
            F::InvalidExtension => "invalid or inconsistent certificate extension",
            F::Malformed => "certificate is malformed",
            F::Unspecified => "unspecified certificate verification error",
        }
    }

    /// The metric label for this failure.
    pub fn label(self) -> FailureLabel {
        use VerifyFailure as F;
        match self {
            F::NoCertificate => FailureLabel::NoCertificate,
            F::Expired => FailureLabel::Expired,
            F::NotYetValid => FailureLabel::NotYetValid,
            F::UnknownIssuer | F::SelfSignedInChain => FailureLabel::UnknownIssuer,
            F::SelfSigned => FailureLabel::SelfSigned,
            F::Revoked => FailureLabel::Revoked,
            F::BadSignature => FailureLabel::BadSignature,
            F::BadPurpose => FailureLabel::BadPurpose,
            F::ChainTooLong => FailureLabel::ChainTooLong,
            F::CrlMissing
            | F::CrlExpired
            | F::CrlSignature
            | F::CrlNotSigner
            | F::PathLengthExceeded
            | F::InvalidCa
            | F::UnsupportedVersion
            | F::UnhandledCriticalExtension
            | F::NameConstraints
            | F::NameConstraintSyntax
            | F::NameSyntax
            | F::Rejected
            | F::InvalidExtension
            | F::Malformed
            | F::Unspecified => FailureLabel::Other,
        }
    }

    /// The failure for a webpki error, without the self-signed refinements
    /// that need the chain (see [`ClientVerifier::check`]).
    pub fn from_webpki(error: &webpki::Error) -> Self {
        use VerifyFailure as F;
        use webpki::Error as W;
        #[allow(deprecated)]
        match error {
            W::CertExpired { .. } | W::InvalidCertValidity => F::Expired,
            W::CertNotValidYet { .. } => F::NotYetValid,
            W::UnknownIssuer => F::UnknownIssuer,
            W::CaUsedAsEndEntity => F::BadPurpose,
            W::EndEntityUsedAsCa => F::InvalidCa,
            W::CertRevoked => F::Revoked,
            W::UnknownRevocationStatus => F::CrlMissing,
            W::CrlExpired { .. } => F::CrlExpired,
            W::InvalidCrlSignatureForPublicKey
            | W::UnsupportedCrlSignatureAlgorithm
            | W::UnsupportedCrlSignatureAlgorithmContext(_)
            | W::UnsupportedCrlSignatureAlgorithmForPublicKey
            | W::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => F::CrlSignature,
            W::IssuerNotCrlSigner => F::CrlNotSigner,
            W::InvalidSignatureForPublicKey
            | W::SignatureAlgorithmMismatch
            | W::UnsupportedSignatureAlgorithm
            | W::UnsupportedSignatureAlgorithmContext(_)
            | W::UnsupportedSignatureAlgorithmForPublicKey
            | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => F::BadSignature,
            W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) | W::EmptyEkuExtension => {
                F::BadPurpose
            }
            W::MaximumPathDepthExceeded => F::ChainTooLong,
            W::PathLenConstraintViolated => F::PathLengthExceeded,
            W::NameConstraintViolation => F::NameConstraints,
            W::MalformedNameConstraint | W::InvalidNetworkMaskConstraint => F::NameConstraintSyntax,
            W::MalformedDnsIdentifier | W::UnsupportedNameType => F::NameSyntax,
            W::UnsupportedCriticalExtension => F::UnhandledCriticalExtension,
            W::UnsupportedCertVersion => F::UnsupportedVersion,
            W::CertDistrusted => F::Rejected,
            W::MalformedExtensions | W::ExtensionValueInvalid => F::InvalidExtension,
            W::BadDer | W::BadDerTime | W::TrailingData(_) | W::InvalidSerialNumber => F::Malformed,
            _ => F::Unspecified,
        }
    }

    /// The rustls error a `require`-mode handshake fails with: the matching
    /// [`CertificateError`] where one exists (so the TLS alert is the usual
    /// one), else `CertificateError::Other` carrying `self`.
    pub fn to_rustls_error(self) -> Error {
        use VerifyFailure as F;
        let e = match self {
            F::NoCertificate => return Error::NoCertificatesPresented,
            F::Expired => CertificateError::Expired,
            F::NotYetValid => CertificateError::NotValidYet,
            F::UnknownIssuer => CertificateError::UnknownIssuer,
            F::Revoked => CertificateError::Revoked,
            F::BadSignature => CertificateError::BadSignature,
            F::BadPurpose => CertificateError::InvalidPurpose,
            F::CrlMissing => CertificateError::UnknownRevocationStatus,
            F::CrlExpired => CertificateError::ExpiredRevocationList,
            F::Malformed => CertificateError::BadEncoding,
            F::UnhandledCriticalExtension => CertificateError::UnhandledCriticalExtension,
            other => CertificateError::Other(OtherError(Arc::new(other))),
        };
        Error::InvalidCertificate(e)
    }
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for VerifyFailure {}

/// The closed set of metric labels for client-certificate failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureLabel {
    /// `expired`
    Expired,
    /// `not_yet_valid`
    NotYetValid,
    /// `unknown_issuer` (also an untrusted self-signed root in the chain)
    UnknownIssuer,
    /// `self_signed`
    SelfSigned,
    /// `revoked`
    Revoked,
    /// `bad_signature`
    BadSignature,
    /// `bad_purpose`
    BadPurpose,
    /// `no_certificate`
    NoCertificate,
    /// `chain_too_long`
    ChainTooLong,
    /// `other`
    Other,
}

impl FailureLabel {
    /// Every label, for pre-registering metric series.
    pub const ALL: [FailureLabel; 10] = [
        FailureLabel::Expired,
        FailureLabel::NotYetValid,
        FailureLabel::UnknownIssuer,
        FailureLabel::SelfSigned,
        FailureLabel::Revoked,
        FailureLabel::BadSignature,
        FailureLabel::BadPurpose,
        FailureLabel::NoCertificate,
        FailureLabel::ChainTooLong,
        FailureLabel::Other,
    ];

    /// The label text.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureLabel::Expired => "expired",
            FailureLabel::NotYetValid => "not_yet_valid",
            FailureLabel::UnknownIssuer => "unknown_issuer",
            FailureLabel::SelfSigned => "self_signed",
            FailureLabel::Revoked => "revoked",
            FailureLabel::BadSignature => "bad_signature",
            FailureLabel::BadPurpose => "bad_purpose",
            FailureLabel::NoCertificate => "no_certificate",
            FailureLabel::ChainTooLong => "chain_too_long",
            FailureLabel::Other => "other",
        }
    }
}

impl fmt::Display for FailureLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verification result a worker sees, as nginx's `$ssl_client_verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No certificate was presented (`NONE`).
    None,
    /// The chain verified (`SUCCESS`).
    Success,
    /// The chain did not verify (`FAILED:<reason>`).
    Failed(VerifyFailure),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::None => f.write_str("NONE"),
            Verdict::Success => f.write_str("SUCCESS"),
            Verdict::Failed(failure) => write!(f, "FAILED:{}", failure.reason()),
        }
    }
}

/// The client-certificate failure behind a failed handshake, if the
/// handshake failed because of the client certificate. `rustls_error` is
/// what the handshake returned (for tokio-rustls, the `rustls::Error`
/// inside the `io::Error`).
pub fn handshake_failure(rustls_error: &Error) -> Option<VerifyFailure> {
    use CertificateError as C;
    use VerifyFailure as F;
    #[allow(deprecated)]
    let failure = match rustls_error {
        Error::NoCertificatesPresented => F::NoCertificate,
        Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => F::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => F::NotYetValid,
            C::UnknownIssuer => F::UnknownIssuer,
            C::Revoked => F::Revoked,
            C::BadSignature
            | C::UnsupportedSignatureAlgorithm
            | C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => F::BadSignature,
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => F::BadPurpose,
            C::UnknownRevocationStatus => F::CrlMissing,
            C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => F::CrlExpired,
            C::BadEncoding => F::Malformed,
            C::UnhandledCriticalExtension => F::UnhandledCriticalExtension,
            C::Other(other) => other
                .0
                .downcast_ref::<VerifyFailure>()
                .copied()
                .unwrap_or(F::Unspecified),
            _ => F::Unspecified,
        },
        _ => return None,
    };
    Some(failure)
}

/// A hostname's client-certificate verifier. See the module documentation.
#[derive(Debug)]
pub struct ClientVerifier {
    roots: Vec<TrustAnchor<'static>>,
    root_ders: Vec<CertificateDer<'static>>,
    hints: Vec<DistinguishedName>,
    crls: Vec<CertRevocationList<'static>>,
    mode: ClientCertMode,
    max_chain_depth: usize,
    crl_required: bool,
    enforce_crl_next_update: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    /// Builds the verifier, with the aws-lc-rs signature algorithms.
    pub fn new(config: VerifierConfig) -> Result<Self, BuildError> {
        let algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
        Self::with_algorithms(config, algs)
    }

    /// Builds the verifier with explicit signature algorithms.
    pub fn with_algorithms(
        config: VerifierConfig,
        algs: WebPkiSupportedAlgorithms,
    ) -> Result<Self, BuildError> {
        if config.client_cas.is_empty() {
            return Err(BuildError::NoClientCas);
        }
        if config.max_chain_depth < 2 {
            return Err(BuildError::DepthTooSmall {
                depth: config.max_chain_depth,
            });
        }
        if config.crl_required && config.crls.is_empty() {
            return Err(BuildError::CrlRequiredWithoutCrls);
        }
        let mut store = RootCertStore::empty();
        for (index, ca) in config.client_cas.iter().enumerate() {
            store
                .add(ca.clone())
                .map_err(|_| BuildError::BadClientCa { index })?;
        }
        let crls = config
            .crls
            .iter()
            .enumerate()
            .map(|(index, der)| {
                OwnedCertRevocationList::from_der(der.as_ref())
                    .map(CertRevocationList::from)
                    .map_err(|_| BuildError::BadCrl { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClientVerifier {
            hints: store.subjects(),
            roots: store.roots,
            root_ders: config.client_cas,
            crls,
            mode: config.mode,
            max_chain_depth: config.max_chain_depth,
            crl_required: config.crl_required,
            enforce_crl_next_update: config.enforce_crl_next_update,
            algs,
        })
    }

    /// The verifier's mode.
    pub fn mode(&self) -> ClientCertMode {
        self.mode
    }

    /// Verifies a presented chain (leaf first) now: `(verdict, revoked)`,
    /// where `revoked` is true only for [`VerifyFailure::Revoked`].
    pub fn check(&self, chain: &[CertificateDer<'_>]) -> (Verdict, bool) {
        self.check_at(chain, UnixTime::now())
    }

    /// [`Self::check`] at a given time.
    pub fn check_at(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> (Verdict, bool) {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return (Verdict::None, false);
        };
        match self.verify(leaf, intermediates, now) {
            Ok(()) => (Verdict::Success, false),
            Err(failure) => (Verdict::Failed(failure), failure == VerifyFailure::Revoked),
        }
    }

    /// Full verification of `leaf` with the `intermediates` the client sent.
    pub fn verify(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), VerifyFailure> {
        if intermediates.len() > self.max_sent_intermediates() {
            return Err(VerifyFailure::ChainTooLong);
        }
        let error = match self.verify_with_webpki(leaf, intermediates, now) {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        if self.is_untrusted_self_signed(leaf) {
            return Err(VerifyFailure::SelfSigned);
        }
        let failure = VerifyFailure::from_webpki(&error);
        if failure == VerifyFailure::UnknownIssuer
            && intermediates
                .last()
                .is_some_and(|top| self.is_untrusted_self_signed(top))
        {
            return Err(VerifyFailure::SelfSignedInChain);
        }
        Err(failure)
    }

    /// Most certificates a client may send besides its leaf (see
    /// [`MAX_SENT_INTERMEDIATES`]): more only make path building search.
    fn max_sent_intermediates(&self) -> usize {
        MAX_SENT_INTERMEDIATES.max(self.max_chain_depth - 1)
    }

    /// The intermediates of the path `chain` (leaf first) verifies through
    /// now, the leaf's issuer first — not what the client sent, which may
    /// add certificates or order them otherwise — or `None` when it does
    /// not verify. What RFC 9440's `Client-Cert-Chain` carries.
    pub fn verified_intermediates(
        &self,
        chain: &[CertificateDer<'_>],
    ) -> Option<Vec<CertificateDer<'static>>> {
        let (leaf, intermediates) = chain.split_first()?;
        if intermediates.len() > self.max_sent_intermediates() {
            return None;
        }
        self.verify_with_webpki(leaf, intermediates, UnixTime::now())
            .ok()
    }

    /// Verify with webpki; the verified path's intermediates, leaf's issuer
    /// first.
    fn verify_with_webpki(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Vec<CertificateDer<'static>>, webpki::Error> {
        let end_entity = webpki::EndEntityCert::try_from(leaf)?;
        let crl_refs: Vec<&CertRevocationList<'static>> = self.crls.iter().collect();
        let revocation = RevocationOptionsBuilder::new(&crl_refs)
            .ok()
            .map(|builder| {
                builder
                    .with_depth(RevocationCheckDepth::Chain)
                    .with_status_policy(if self.crl_required {
                        UnknownStatusPolicy::Deny
                    } else {
                        UnknownStatusPolicy::Allow
                    })
                    .with_expiration_policy(if self.enforce_crl_next_update {
                        ExpirationPolicy::Enforce
                    } else {
                        ExpirationPolicy::Ignore
                    })
                    .build()
            });
        let max = self.max_chain_depth;
        // Rejecting a candidate path makes webpki try the others; its error
        // outranks `UnknownIssuer`, so it is what is reported when no path fits.
        let depth_limit = |path: &VerifiedPath<'_>| {
            // leaf + intermediates + trust anchor
            if path.intermediate_certificates().count() + 2 > max {
                Err(webpki::Error::MaximumPathDepthExceeded)
            } else {
                Ok(())
            }
        };
        end_entity
            .verify_for_usage(
                self.algs.all,
                &self.roots,
                intermediates,
                now,
                KeyUsage::client_auth(),
                revocation,
                Some(&depth_limit),
            )
            .map(|path| {
                path.intermediate_certificates()
                    .map(|c| c.der().into_owned())
                    .collect()
            })
    }

    /// Whether `der` is self-signed (issuer = subject and its signature
    /// verifies with its own key) and is not one of the configured CAs.
    fn is_untrusted_self_signed(&self, der: &CertificateDer<'_>) -> bool {
        if self.root_ders.iter().any(|ca| ca.as_ref() == der.as_ref()) {
            return false;
        }
        is_self_signed(der.as_ref(), &self.algs)
    }

    fn verify_signature_tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if webpki::EndEntityCert::try_from(cert).is_ok() {
            return rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs);
        }
        let spki = leaf_spki(cert)?;
        let key = webpki::RawPublicKeyEntity::try_from(&spki)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        for alg in algorithms_for(&self.algs, dss.scheme)? {
            match key.verify_signature(*alg, message, dss.signature()) {
                Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
                Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => continue,
                Err(_) => break,
            }
        }
        Err(Error::InvalidCertificate(CertificateError::BadSignature))
    }

    fn verify_signature_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if webpki::EndEntityCert::try_from(cert).is_ok() {
            return rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs);
        }
        let spki = leaf_spki(cert)?;
        rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algs)
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mode == ClientCertMode::Require
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match self.mode {
            ClientCertMode::Optional => {
                // Any chain is accepted; the leaf must at least carry a public
                // key, or the handshake signature could not be checked.
                leaf_spki(end_entity)?;
                Ok(ClientCertVerified::assertion())
            }
            ClientCertMode::Require => self
                .verify(end_entity, intermediates, now)
                .map(|()| ClientCertVerified::assertion())
                .map_err(VerifyFailure::to_rustls_error),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify_signature_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify_signature_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The webpki algorithms rustls maps a TLS signature scheme to.
fn algorithms_for(
    algs: &WebPkiSupportedAlgorithms,
    scheme: SignatureScheme,
) -> Result<&'static [&'static dyn rustls_pki_types::SignatureVerificationAlgorithm], Error> {
    algs.mapping
        .iter()
        .find(|(s, _)| *s == scheme)
        .map(|(_, list)| *list)
        .ok_or(Error::PeerMisbehaved(
            PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ))
}

/// The SubjectPublicKeyInfo of a certificate webpki may refuse (e.g. v1).
fn leaf_spki(cert: &CertificateDer<'_>) -> Result<SubjectPublicKeyInfoDer<'static>, Error> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    Ok(SubjectPublicKeyInfoDer::from(
        parsed.public_key().raw.to_vec(),
    ))
}

/// Whether the certificate's issuer equals its subject and its signature
/// verifies with its own public key.
fn is_self_signed(der: &[u8], algs: &WebPkiSupportedAlgorithms) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    if cert.subject().as_raw() != cert.issuer().as_raw() {
        return false;
    }
    let Some(parts) = split_certificate(der) else {
        return false;
    };
    let spki = SubjectPublicKeyInfoDer::from(cert.public_key().raw);
    let Ok(key) = webpki::RawPublicKeyEntity::try_from(&spki) else {
        return false;
    };
    algs.all
        .iter()
        .filter(|alg| alg.signature_alg_id().as_ref() == parts.signature_algorithm)
        .any(|alg| {
            key.verify_signature(*alg, parts.tbs, parts.signature)
                .is_ok()
        })
}

/// The signed parts of a DER certificate.
struct CertificateParts<'a> {
    /// The whole TBSCertificate TLV (what is signed).
    tbs: &'a [u8],
    /// The contents of the signatureAlgorithm SEQUENCE.
    signature_algorithm: &'a [u8],
    /// The signature bits.
    signature: &'a [u8],
}

/// Splits `Certificate ::= SEQUENCE { tbs, signatureAlgorithm, signature }`.
fn split_certificate(der: &[u8]) -> Option<CertificateParts<'_>> {
    let outer = read_tlv(der)?;
    if outer.tag != 0x30 || !outer.rest.is_empty() {
        return None;
    }
    let tbs = read_tlv(outer.contents)?;
    let alg = read_tlv(tbs.rest)?;
    let sig = read_tlv(alg.rest)?;
    if tbs.tag != 0x30 || alg.tag != 0x30 || sig.tag != 0x03 || !sig.rest.is_empty() {
        return None;
    }
    let (&unused, signature) = sig.contents.split_first()?;
    (unused == 0).then_some(CertificateParts {
        tbs: tbs.whole,
        signature_algorithm: alg.contents,
        signature,
    })
}

/// One DER element and what follows it.
struct Tlv<'a> {
    tag: u8,
    contents: &'a [u8],
    whole: &'a [u8],
    rest: &'a [u8],
}

/// Reads one DER TLV with a single-byte tag and a definite length.
fn read_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, after_tag) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, after_len) = after_tag.split_first()?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = after_len
            .get(..n)?
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    Some(Tlv {
        tag,
        contents: whole.get(header..)?,
        whole,
        rest: input.get(end..)?,
    })
}

#[cfg(test)]
mod tests;
