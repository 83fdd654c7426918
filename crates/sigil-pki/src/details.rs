//! Human- and worker-facing facts about one X.509 certificate.
//!
//! Field meanings follow Cloudflare's `tlsClientAuth` (subject and issuer DN,
//! serial, SHA-256 fingerprint, validity), plus the SANs and SPIFFE ID.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::CertError;
use super::dn::rfc4514;
use super::spiffe::SpiffeId;

/// Facts about one certificate, read with x509-parser.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateDetails {
    /// Subject DN as an RFC 4514 string (last RDN first, special
    /// characters escaped, every string type decoded), e.g. `O=Sigil,CN=writer`.
    pub subject_dn: String,
    /// Issuer DN, same format as [`Self::subject_dn`].
    pub issuer_dn: String,
    /// Serial number: uppercase hex, no colons, no DER sign byte.
    pub serial_hex: String,
    /// SHA-256 of the certificate DER, lowercase hex.
    pub fingerprint_sha256_hex: String,
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds.
    pub not_after: i64,
    /// DNS subject alternative names.
    pub dns_sans: Vec<String>,
    /// URI subject alternative names.
    pub uri_sans: Vec<String>,
    /// IP subject alternative names, as text (`127.0.0.1`, `::1`).
    pub ip_sans: Vec<String>,
    /// The SPIFFE ID: set when there is exactly one URI SAN and it is a valid
    /// SPIFFE ID.
    pub spiffe_id: Option<String>,
    /// Whether basicConstraints says this is a CA.
    pub is_ca: bool,
    /// Key algorithm and size, e.g. `ECDSA P-256`, `RSA 2048`, `Ed25519`.
    pub key_type: String,
    /// The first subject common name, if any.
    pub common_name: Option<String>,
    /// Extended key usages by name (`serverAuth`, `clientAuth`, ...); empty
    /// when the certificate has no EKU extension (any usage).
    pub extended_key_usages: Vec<String>,
}

impl CertificateDetails {
    /// How the certificate is outside its validity at `now` (`expired at
    /// <time>` or `is not valid until <time>`), or `None` within it.
    pub fn out_of_date(&self, now: i64) -> Option<String> {
        if now > self.not_after {
            Some(format!("expired at {}", format_rfc3339(self.not_after)))
        } else if now < self.not_before {
            Some(format!(
                "is not valid until {}",
                format_rfc3339(self.not_before)
            ))
        } else {
            None
        }
    }

    /// Reads the details of a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| CertError::BadCertificate {
                path: "certificate".into(),
                index: 1,
                detail: e.to_string(),
            })?;
        Ok(Self::from_parsed(&cert, der))
    }

    /// Reads the details of an already-parsed certificate whose DER is `der`.
    pub fn from_parsed(cert: &X509Certificate<'_>, der: &[u8]) -> Self {
        let mut dns_sans = Vec::new();
        let mut uri_sans = Vec::new();
        let mut ip_sans = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => dns_sans.push((*d).to_string()),
                    GeneralName::URI(u) => uri_sans.push((*u).to_string()),
                    GeneralName::IPAddress(bytes) => ip_sans.push(ip_to_string(bytes)),
                    _ => {}
                }
            }
        }
        let spiffe_id = match uri_sans.as_slice() {
            [only] => SpiffeId::parse(only).ok().map(|id| id.to_string()),
            _ => None,
        };
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        Self {
            subject_dn: rfc4514(cert.subject()),
            issuer_dn: rfc4514(cert.issuer()),
            serial_hex: serial_to_hex(cert.raw_serial()),
            fingerprint_sha256_hex: fingerprint_sha256_hex(der),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            dns_sans,
            uri_sans,
            ip_sans,
            spiffe_id,
            is_ca: cert.is_ca(),
            key_type: key_type(cert),
            common_name,
            extended_key_usages: extended_key_usages(cert),
        }
    }

    /// True if the certificate allows TLS client authentication (clientAuth
    /// EKU, anyExtendedKeyUsage, or no EKU extension at all).
    pub fn allows_client_auth(&self) -> bool {
        self.extended_key_usages.is_empty()
            || self
                .extended_key_usages
                .iter()
                .any(|e| e == "clientAuth" || e == "any")
    }

    /// True if one of the DNS SANs names `hostname` (lower case, no trailing
    /// dot), a `*.` wildcard standing for exactly one leftmost label.
    pub fn covers_hostname(&self, hostname: &str) -> bool {
        self.dns_sans.iter().any(|san| {
            let san = san.trim_end_matches('.').to_ascii_lowercase();
            match san.strip_prefix("*.") {
                Some(suffix) => hostname
                    .split_once('.')
                    .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
                None => san == hostname,
            }
        })
    }

    /// True if the certificate allows TLS server authentication.
    pub fn allows_server_auth(&self) -> bool {
        self.extended_key_usages.is_empty()
            || self
                .extended_key_usages
                .iter()
                .any(|e| e == "serverAuth" || e == "any")
    }
}

/// Facts about one certificate revocation list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlDetails {
    /// The issuer DN, RFC 4514 (compare with [`CertificateDetails::subject_dn`]).
    pub issuer_dn: String,
    /// thisUpdate, unix seconds.
    pub this_update: i64,
    /// nextUpdate, unix seconds, if the CRL has one.
    pub next_update: Option<i64>,
    /// How many certificates it revokes.
    pub revoked: usize,
}

impl CrlDetails {
    /// Reads the details of a DER CRL.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        use x509_parser::prelude::FromDer;
        use x509_parser::revocation_list::CertificateRevocationList;
        let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| CertError::BadCrl {
            path: "CRL".into(),
            index: 1,
            detail: e.to_string(),
        })?;
        Ok(CrlDetails {
            issuer_dn: rfc4514(crl.issuer()),
            this_update: crl.last_update().timestamp(),
            next_update: crl.next_update().map(|t| t.timestamp()),
            revoked: crl.iter_revoked_certificates().count(),
        })
    }
}

/// Uppercase hex of a DER INTEGER's content octets, without the leading zero
/// sign byte(s) and without colons (Cloudflare's `certSerial` format). A
/// negative serial (RFC 5280 forbids them, but they exist) is written as
/// OpenSSL writes it, `-` and its magnitude: `-05`, not `FB`, which is 251.
pub fn serial_to_hex(raw: &[u8]) -> String {
    if raw.first().is_some_and(|b| b & 0x80 != 0) {
        // Two's complement: invert, add one.
        let mut magnitude: Vec<u8> = raw.iter().map(|b| !b).collect();
        for b in magnitude.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
        return format!("-{}", unsigned_hex(&magnitude));
    }
    unsigned_hex(raw)
}

/// Uppercase hex of `bytes` read as an unsigned number, leading zero bytes
/// dropped (`00` for zero).
fn unsigned_hex(bytes: &[u8]) -> String {
    let first_nonzero = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let trimmed = &bytes[first_nonzero..];
    if trimmed.is_empty() {
        return "00".to_string();
    }
    trimmed.iter().map(|b| format!("{b:02X}")).collect()
}

/// Parses a serial written as hex (any case, optional colons) back into bytes,
/// e.g. for revoking a certificate by the serial that `inspect` printed.
pub fn serial_from_hex(hex: &str) -> Result<Vec<u8>, CertError> {
    let clean: String = hex.chars().filter(|c| *c != ':').collect();
    let bad = || CertError::InvalidRequest {
        what: format!("serial {hex:?}"),
        detail: "not a hexadecimal serial number; copy it from `sigil certs inspect`".into(),
    };
    if clean.is_empty() {
        return Err(bad());
    }
    let padded = if clean.len() % 2 == 1 {
        format!("0{clean}")
    } else {
        clean
    };
    (0..padded.len())
        .step_by(2)
        .map(|i| {
            padded
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// Lowercase hex SHA-256 of `der`.
pub fn fingerprint_sha256_hex(der: &[u8]) -> String {
    digest::digest(&digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Formats unix seconds as RFC 3339 in UTC, e.g. `2026-11-23T10:00:00Z`.
///
/// Out-of-range values are printed as `@<seconds>`.
pub fn format_rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{unix}"))
}

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn ip_to_string(bytes: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        IpAddr::V4(Ipv4Addr::from(v4)).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        IpAddr::V6(Ipv6Addr::from(v6)).to_string()
    } else {
        // Name-constraint style (address + mask) or malformed: show hex.
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn key_type(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                "1.2.840.10045.3.1.7" => "ECDSA P-256".into(),
                "1.3.132.0.34" => "ECDSA P-384".into(),
                "1.3.132.0.35" => "ECDSA P-521".into(),
                other => format!("ECDSA (curve {other})"),
            }
        }
        "1.2.840.113549.1.1.1" => match spki.parsed() {
            Ok(key) => format!("RSA {}", key.key_size()),
            Err(_) => "RSA".into(),
        },
        "1.2.840.113549.1.1.10" => "RSA-PSS".into(),
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        other => format!("unknown ({other})"),
    }
}

fn extended_key_usages(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(eku)) = cert.extended_key_usage() else {
        return Vec::new();
    };
    let eku = eku.value;
    let mut out = Vec::new();
    for (set, name) in [
        (eku.any, "any"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ] {
        if set {
            out.push(name.to_string());
        }
    }
    out.extend(eku.other.iter().map(|o| o.to_id_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{CertUsage, CertificateAuthority, IssueRequest};
    use std::time::Duration;

    #[test]
    fn details_of_issued_leaf() {
        let ca = CertificateAuthority::generate("Details CA", 30).unwrap();
        let mut req = IssueRequest::new("writer", CertUsage::ClientAuth, Duration::from_secs(3600));
        req.organization = Some("Sigil".into());
        req.dns_sans = vec!["writer.example".into()];
        req.ip_sans = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        req.uri_sans = vec!["spiffe://sigil.local/worker/writer".into()];
        req.serial = Some(0x00AB_CDEF);
        let issued = ca.issue(&req).unwrap();
        let d = CertificateDetails::from_der(&issued.cert_der).unwrap();
        assert_eq!(d.subject_dn, "O=Sigil,CN=writer");
        assert_eq!(d.issuer_dn, "CN=Details CA");
        assert_eq!(d.serial_hex, "ABCDEF");
        assert_eq!(d.serial_hex, issued.serial_hex);
        assert_eq!(d.fingerprint_sha256_hex.len(), 64);
        assert_eq!(d.dns_sans, ["writer.example"]);
        assert_eq!(d.ip_sans, ["127.0.0.1", "::1"]);
        assert_eq!(
            d.spiffe_id.as_deref(),
            Some("spiffe://sigil.local/worker/writer")
        );
        assert!(!d.is_ca);
        assert_eq!(d.key_type, "ECDSA P-256");
        assert_eq!(d.common_name.as_deref(), Some("writer"));
        assert_eq!(d.extended_key_usages, ["clientAuth"]);
        assert!(d.allows_client_auth() && !d.allows_server_auth());
        assert_eq!(d.not_after - d.not_before, 3600 + 60);

        let ca_d = CertificateDetails::from_der(ca.cert_der()).unwrap();
        assert!(ca_d.is_ca);
        assert_eq!(ca_d.subject_dn, ca_d.issuer_dn);
    }

    #[test]
    fn hostname_coverage() {
        let ca = CertificateAuthority::generate("Details CA", 30).unwrap();
        let mut req = IssueRequest::new("srv", CertUsage::ServerAuth, Duration::from_secs(3600));
        req.dns_sans = vec!["pay.alpha.example".into(), "*.beta.example".into()];
        let d = CertificateDetails::from_der(&ca.issue(&req).unwrap().cert_der).unwrap();
        assert!(d.covers_hostname("pay.alpha.example"));
        assert!(d.covers_hostname("pay.beta.example"));
        assert!(!d.covers_hostname("beta.example"));
        assert!(!d.covers_hostname("a.pay.beta.example"));
        assert!(!d.covers_hostname("pay.gamma.example"));
    }

    #[test]
    fn crl_details() {
        let ca = CertificateAuthority::generate("CRL CA", 30).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let pem = ca
            .issue_crl(&[vec![1, 2, 3]], now, now + time::Duration::days(1))
            .unwrap();
        let der = crate::load::parse_crls(pem.as_bytes(), std::path::Path::new("c")).unwrap();
        let d = CrlDetails::from_der(der[0].as_ref()).unwrap();
        assert_eq!(d.issuer_dn, "CN=CRL CA");
        assert_eq!(d.revoked, 1);
        assert!(d.next_update.is_some_and(|t| t > now.unix_timestamp()));
    }

    #[test]
    fn two_uri_sans_have_no_spiffe_id() {
        let ca = CertificateAuthority::generate("Details CA", 30).unwrap();
        let mut req = IssueRequest::new("x", CertUsage::ClientAuth, Duration::from_secs(3600));
        req.uri_sans = vec!["spiffe://a/b".into(), "spiffe://a/c".into()];
        let d = CertificateDetails::from_der(&ca.issue(&req).unwrap().cert_der).unwrap();
        assert_eq!(d.uri_sans.len(), 2);
        assert_eq!(d.spiffe_id, None);
    }

    #[test]
    fn key_types() {
        for (alg, want) in [
            (&rcgen::PKCS_ED25519, "Ed25519"),
            (&rcgen::PKCS_ECDSA_P384_SHA384, "ECDSA P-384"),
            (&rcgen::PKCS_RSA_SHA256, "RSA 2048"),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["k.example".to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let d = CertificateDetails::from_der(cert.der()).unwrap();
            assert_eq!(d.key_type, want);
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(serial_to_hex(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_to_hex(&[0]), "00");
        // Negative serials (before: -5 and 251 both read "FB").
        assert_eq!(serial_to_hex(&[0xFB]), "-05");
        assert_eq!(serial_to_hex(&[0x00, 0xFB]), "FB");
        assert_eq!(serial_to_hex(&[0xFF, 0x00]), "-0100");
        assert_eq!(serial_to_hex(&[0x80]), "-80");
        assert_eq!(serial_from_hex("80:01").unwrap(), vec![0x80, 0x01]);
        assert_eq!(serial_from_hex("abc").unwrap(), vec![0x0a, 0xbc]);
        assert!(serial_from_hex("zz").is_err());
        assert!(serial_from_hex("").is_err());
        assert!(CertificateDetails::from_der(b"nope").is_err());
    }
}
