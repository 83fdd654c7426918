//! The client-certificate details a worker sees, computed once per
//! connection from the verified (or, in `optional` mode, merely presented)
//! chain; the parsed details of recently seen certificates are remembered.

use crate::config::ClientCertMode;
use crate::state::{ConnectionInfo, HostnamePolicy};
use dashmap::DashMap;
use rustls_pki_types::CertificateDer;
use sigil_pki::CertificateDetails;
use sigil_pki::client_verifier::Verdict;
use sigil_sdk::wire::{CertVerified, ClientAuth};
use std::sync::{Arc, OnceLock};

/// Details of the connection's client certificate under `policy`.
pub fn client_auth(policy: &HostnamePolicy, chain: Option<&[CertificateDer<'_>]>) -> ClientAuth {
    let Some(chain) = chain.filter(|c| !c.is_empty()) else {
        return ClientAuth::not_presented();
    };
    let (verified, revoked) = match (policy.mode, &policy.verifier) {
        // The handshake only completes in `require` mode if the chain verified
        // (a resumed session's chain is verified again: `handshake.rs`).
        (ClientCertMode::Require, _) => (CertVerified::Success, false),
        (_, Some(verifier)) => match verifier.check(chain) {
            (Verdict::Success, _) => (CertVerified::Success, false),
            (Verdict::None, _) => (CertVerified::None, false),
            (Verdict::Failed(failure), revoked) => {
                (CertVerified::Failed(failure.reason().to_string()), revoked)
            }
        },
        (_, None) => (CertVerified::None, false),
    };
    match presented(chain[0].as_ref()) {
        Ok(details) => ClientAuth {
            cert_verified: verified,
            cert_revoked: revoked,
            ..ClientAuth::clone(&details)
        },
        Err(e) => ClientAuth {
            cert_presented: true,
            cert_verified: CertVerified::Failed(format!("unparsable certificate: {e}")),
            ..ClientAuth::not_presented()
        },
    }
}

/// Most certificates whose details [`presented`] keeps; when full it starts
/// over.
const MAX_REMEMBERED: usize = 512;
/// Largest certificate (DER bytes) [`presented`] keeps; client certificates
/// are usually 0.5–2 KiB. With [`MAX_REMEMBERED`] this bounds the memory at
/// a few MiB whatever clients present.
const MAX_REMEMBERED_DER: usize = 4 << 10;

/// The details of the client certificate `der` (verification not yet
/// filled in), parsed once and remembered by the certificate's bytes: a
/// client that opens many connections with the same certificate (a device
/// reconnecting, a load generator) is not parsed again on each. The details
/// are a function of the bytes alone; whether the certificate verifies or is
/// revoked is still decided for every connection.
fn presented(der: &[u8]) -> Result<Arc<ClientAuth>, sigil_pki::CertError> {
    static REMEMBERED: OnceLock<DashMap<Box<[u8]>, Arc<ClientAuth>>> = OnceLock::new();
    let remembered = REMEMBERED.get_or_init(DashMap::new);
    if let Some(details) = remembered.get(der) {
        return Ok(details.clone());
    }
    let d = CertificateDetails::from_der(der)?;
    let details = Arc::new(ClientAuth {
        cert_presented: true,
        cert_verified: CertVerified::None,
        cert_revoked: false,
        cert_subject_dn: d.subject_dn,
        cert_issuer_dn: d.issuer_dn,
        cert_serial: d.serial_hex,
        cert_fingerprint_sha256: d.fingerprint_sha256_hex,
        cert_not_before: d.not_before,
        cert_not_after: d.not_after,
        dns_sans: d.dns_sans,
        uri_sans: d.uri_sans,
        spiffe_id: d.spiffe_id,
    });
    if der.len() <= MAX_REMEMBERED_DER {
        if remembered.len() >= MAX_REMEMBERED {
            remembered.clear();
        }
        remembered.insert(der.into(), details.clone());
    }
    Ok(details)
}

/// Whether a TLS connection authenticated under an earlier generation still
/// passes `policy`, its hostname's policy now (`None`: the hostname is gone).
/// A certificate the new configuration refuses (revoked, its CA removed), or
/// whose verification result changed, means the connection must not be used
/// again: its handshake would not happen today.
pub fn still_accepted(policy: Option<&HostnamePolicy>, conn: &ConnectionInfo) -> bool {
    let Some(policy) = policy else {
        return false;
    };
    let was = conn.client_auth.as_deref().map(|a| &a.cert_verified);
    match (&policy.verifier, conn.chain.as_deref()) {
        (None, _) => true,
        (Some(_), None) => policy.mode != ClientCertMode::Require,
        (Some(verifier), Some(chain)) => {
            let now = match verifier.check(chain).0 {
                Verdict::Success => CertVerified::Success,
                Verdict::None => CertVerified::None,
                Verdict::Failed(f) => CertVerified::Failed(f.reason().to_string()),
            };
            match policy.mode {
                ClientCertMode::Require => now == CertVerified::Success,
                _ => was == Some(&now),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn details_are_parsed_once_per_certificate_and_stay_bounded() {
        let a = certificate("a.example");
        let b = certificate("b.example");
        let first = presented(&a).unwrap();
        assert!(Arc::ptr_eq(&first, &presented(&a).unwrap()), "remembered");
        let other = presented(&b).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(other.dns_sans, ["b.example"]);
        assert_eq!(first.dns_sans, ["a.example"]);
        for i in 0..MAX_REMEMBERED + 10 {
            presented(&certificate(&format!("n{i}.example"))).unwrap();
        }
        let remembered = presented(&a).unwrap();
        assert_eq!(*remembered, *first, "the same details after starting over");
        assert!(presented(b"not a certificate").is_err());
    }
}
