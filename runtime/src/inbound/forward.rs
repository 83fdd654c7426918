//! Forwarding the inbound client certificate to origins: RFC 9440
//! `Client-Cert` / `Client-Cert-Chain` and Envoy's `x-forwarded-client-cert`.
//! Copies of these headers arriving from clients are always stripped.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue};
use rustls_pki_types::CertificateDer;
use sigil_sdk::wire::ClientAuth;

/// Headers that only Sigil may set; removed from every inbound request.
pub const STRIPPED_INBOUND: [&str; 4] = [
    "client-cert",
    "client-cert-chain",
    "x-forwarded-client-cert",
    "sigil-worker",
];

/// Remove the headers only Sigil may set from an inbound request.
pub fn strip_inbound(headers: &mut HeaderMap) {
    for name in STRIPPED_INBOUND {
        headers.remove(name);
    }
}

/// A verified client certificate, rendered once per connection as the
/// headers added to every subrequest of every request on it.
#[derive(Debug)]
pub struct ForwardedClientCert {
    client_cert: HeaderValue,
    client_cert_chain: Option<HeaderValue>,
    xfcc: HeaderValue,
}

fn sf_binary(der: &[u8]) -> String {
    format!(":{}:", STANDARD.encode(der))
}

fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn xfcc_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl ForwardedClientCert {
    /// Render the headers for `chain` (leaf first) with its `details`.
    pub fn new(chain: &[CertificateDer<'_>], details: &ClientAuth) -> Option<Self> {
        let (leaf, intermediates) = chain.split_first()?;
        let client_cert = HeaderValue::from_str(&sf_binary(leaf)).ok()?;
        let client_cert_chain = if intermediates.is_empty() {
            None
        } else {
            let list: Vec<String> = intermediates.iter().map(|c| sf_binary(c)).collect();
            HeaderValue::from_str(&list.join(", ")).ok()
        };
        let mut xfcc = format!(
            "Hash={};Cert={};Subject={}",
            details.cert_fingerprint_sha256,
            xfcc_quote(&url_encode(&pem(leaf))),
            xfcc_quote(&details.cert_subject_dn)
        );
        for uri in &details.uri_sans {
            xfcc.push_str(&format!(";URI={uri}"));
        }
        for dns in &details.dns_sans {
            xfcc.push_str(&format!(";DNS={dns}"));
        }
        Some(ForwardedClientCert {
            client_cert,
            client_cert_chain,
            xfcc: HeaderValue::from_str(&xfcc).ok()?,
        })
    }

    /// Set the forwarding headers on a subrequest (replacing any copies).
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("client-cert", self.client_cert.clone());
        match &self.client_cert_chain {
            Some(chain) => {
                headers.insert("client-cert-chain", chain.clone());
            }
            None => {
                headers.remove("client-cert-chain");
            }
        }
        headers.insert("x-forwarded-client-cert", self.xfcc.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_and_sf_binary() {
        assert_eq!(url_encode("a b/+"), "a%20b%2F%2B");
        assert_eq!(sf_binary(&[0, 1, 2]), ":AAEC:");
    }

    #[test]
    fn strips_client_supplied_copies() {
        let mut h = HeaderMap::new();
        h.insert("client-cert", HeaderValue::from_static(":Zm9yZ2Vk:"));
        h.insert(
            "x-forwarded-client-cert",
            HeaderValue::from_static("Hash=forged"),
        );
        h.insert("sigil-worker", HeaderValue::from_static("writer"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_inbound(&mut h);
        assert_eq!(h.len(), 1);
    }
}
