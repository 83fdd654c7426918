//! [`BoundedChain`]: a bound on the client chain handed to a verifier that
//! builds paths with webpki (rustls' `WebPkiClientVerifier`, as the
//! `sigil-origin` crate uses), so that a client cannot make it search.

use crate::client_verifier::{MAX_SENT_INTERMEDIATES, VerifyFailure};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use std::sync::Arc;

/// A [`ClientCertVerifier`] that refuses a chain of more than
/// [`MAX_SENT_INTERMEDIATES`] certificates besides the leaf (a
/// [`VerifyFailure::ChainTooLong`] certificate error) before `inner` sees
/// it, and otherwise
/// defers to `inner` in everything. Ten certificates that name each other
/// as issuer cost webpki's path building 200,000 steps (0.14 s of CPU per
/// handshake); five cost it a few hundred.
#[derive(Debug)]
pub struct BoundedChain(pub Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for BoundedChain {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if intermediates.len() > MAX_SENT_INTERMEDIATES {
            return Err(VerifyFailure::ChainTooLong.to_rustls_error());
        }
        self.0.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.0.requires_raw_public_keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the chains it is asked to verify, and accepts them.
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl ClientCertVerifier for Counting {
        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            &[]
        }
        fn verify_client_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: UnixTime,
        ) -> Result<ClientCertVerified, Error> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(ClientCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            unreachable!()
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            unreachable!()
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ECDSA_NISTP256_SHA256]
        }
    }

    #[test]
    fn a_long_chain_never_reaches_the_inner_verifier() {
        let inner = Arc::new(Counting::default());
        let bounded = BoundedChain(inner.clone());
        let cert = CertificateDer::from(vec![0u8; 4]);
        let chain = vec![cert.clone(); 10];
        let now = UnixTime::now();
        for sent in 0..=MAX_SENT_INTERMEDIATES {
            assert!(
                bounded
                    .verify_client_cert(&cert, &chain[..sent], now)
                    .is_ok()
            );
        }
        let refused = bounded
            .verify_client_cert(&cert, &chain[..MAX_SENT_INTERMEDIATES + 1], now)
            .unwrap_err();
        assert!(refused.to_string().contains("ChainTooLong"), "{refused}");
        assert_eq!(
            inner.0.load(std::sync::atomic::Ordering::Relaxed),
            MAX_SENT_INTERMEDIATES + 1
        );
        assert_eq!(
            bounded.supported_verify_schemes(),
            [SignatureScheme::ECDSA_NISTP256_SHA256]
        );
    }
}
