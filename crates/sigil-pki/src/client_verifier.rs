//! The client-certificate verifier used during an inbound handshake.
//!
//! In `require` mode it delegates to rustls' WebPKI verifier (with the
//! hostname's CAs and CRLs) and enforces the maximum chain depth. In
//! `optional` mode it accepts any well-formed chain during the handshake —
//! the signature over the handshake is still checked — and the verification
//! result is computed afterwards so the worker sees `FAILED:<reason>`.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use std::sync::Arc;

/// Why a client certificate did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The reason, in OpenSSL's (and nginx's) wording where there is one.
    pub reason: String,
    /// Whether the certificate is revoked by a configured CRL.
    pub revoked: bool,
}

/// A hostname's client-certificate verifier.
#[derive(Debug)]
pub struct HostnameClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    mandatory: bool,
    max_chain_depth: usize,
}

impl HostnameClientVerifier {
    /// Wrap `inner` (a WebPKI verifier over the hostname's CAs and CRLs).
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        mandatory: bool,
        max_chain_depth: usize,
    ) -> Self {
        HostnameClientVerifier {
            inner,
            mandatory,
            max_chain_depth,
        }
    }

    /// Verify a presented chain (leaf first) now, as the handshake would in
    /// `require` mode. An empty chain is not verified: the caller reports
    /// "no certificate" itself.
    pub fn check(&self, chain: &[CertificateDer<'_>]) -> Result<(), VerifyFailure> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Ok(());
        };
        if let Err(reason) = self.check_depth(chain.len()) {
            return Err(VerifyFailure {
                reason,
                revoked: false,
            });
        }
        self.inner
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| VerifyFailure {
                revoked: matches!(
                    e,
                    Error::InvalidCertificate(rustls::CertificateError::Revoked)
                ),
                reason: failure_reason(&e),
            })
    }

    fn check_depth(&self, len: usize) -> Result<(), String> {
        if len > self.max_chain_depth {
            Err(format!(
                "certificate chain too long ({len} certificates, max_chain_depth is {})",
                self.max_chain_depth
            ))
        } else {
            Ok(())
        }
    }
}

/// The reason text after `FAILED:`, in nginx's wording where there is one.
pub fn failure_reason(e: &Error) -> String {
    use rustls::CertificateError as C;
    match e {
        Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate is not yet valid".into(),
            C::UnknownIssuer => "unable to get local issuer certificate".into(),
            C::Revoked => "certificate revoked".into(),
            C::BadSignature => "certificate signature failure".into(),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                "unsupported certificate purpose".into()
            }
            C::UnknownRevocationStatus => "unable to get certificate CRL".into(),
            C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
                "CRL has expired".into()
            }
            other => format!("{other:?}"),
        },
        other => other.to_string(),
    }
}

impl ClientCertVerifier for HostnameClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if !self.mandatory {
            return Ok(ClientCertVerified::assertion());
        }
        self.check_depth(intermediates.len() + 1)
            .map_err(Error::General)?;
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
