//! The client-certificate details a worker sees, computed once per
//! connection from the verified (or, in `optional` mode, merely presented)
//! chain.

use crate::config::ClientCertMode;
use crate::state::{ConnectionInfo, HostnamePolicy};
use rustls_pki_types::CertificateDer;
use sigil_pki::CertificateDetails;
use sigil_pki::client_verifier::Verdict;
use sigil_sdk::wire::{CertVerified, ClientAuth};

/// Details of the connection's client certificate under `policy`.
pub fn client_auth(policy: &HostnamePolicy, chain: Option<&[CertificateDer<'_>]>) -> ClientAuth {
    let Some(chain) = chain.filter(|c| !c.is_empty()) else {
        return ClientAuth::not_presented();
    };
    let (verified, revoked) = match (policy.mode, &policy.verifier) {
        // The handshake only completes in `require` mode if the chain verified.
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
    match CertificateDetails::from_der(chain[0].as_ref()) {
        Ok(d) => ClientAuth {
            cert_presented: true,
            cert_verified: verified,
            cert_revoked: revoked,
            cert_subject_dn: d.subject_dn,
            cert_issuer_dn: d.issuer_dn,
            cert_serial: d.serial_hex,
            cert_fingerprint_sha256: d.fingerprint_sha256_hex,
            cert_not_before: d.not_before,
            cert_not_after: d.not_after,
            dns_sans: d.dns_sans,
            uri_sans: d.uri_sans,
            spiffe_id: d.spiffe_id,
        },
        Err(e) => ClientAuth {
            cert_presented: true,
            cert_verified: CertVerified::Failed(format!("unparsable certificate: {e}")),
            ..ClientAuth::not_presented()
        },
    }
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
