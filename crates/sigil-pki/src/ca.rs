//! Issuing certificates and CRLs from a CA, with rcgen 0.14.
//!
//! A [`CertificateAuthority`] wraps an rcgen [`Issuer`] plus the CA's own
//! certificate. Leaves get a fresh ECDSA P-256 key each (about 45 µs to
//! generate), so minting thousands of certificates in tests is cheap.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevokedCertParams, SanType, SerialNumber,
};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::Tag;

use super::CertError;
use super::details::serial_to_hex;
use super::load::{encode_pem, parse_chain, read_file};
use super::spiffe::SpiffeId;

/// How much leaf certificates are backdated to tolerate clock skew.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// What a leaf certificate may be used for (its extended key usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertUsage {
    /// TLS client authentication (`clientAuth`): worker identities, devices.
    ClientAuth,
    /// TLS server authentication (`serverAuth`): hostnames, origins.
    ServerAuth,
    /// Both `clientAuth` and `serverAuth`.
    Both,
}

/// Parameters of one leaf certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueRequest {
    /// Subject common name; empty for none.
    pub common_name: String,
    /// Optional subject organization (`O=`).
    pub organization: Option<String>,
    /// DNS subject alternative names.
    pub dns_sans: Vec<String>,
    /// IP subject alternative names.
    pub ip_sans: Vec<IpAddr>,
    /// URI subject alternative names (`spiffe://` ones are validated).
    pub uri_sans: Vec<String>,
    /// Extended key usage.
    pub usage: CertUsage,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Serial number; a random 128-bit serial when `None`.
    pub serial: Option<u64>,
}

impl IssueRequest {
    /// A request valid from one minute ago (clock skew) until `lifetime` from
    /// now, with no SANs.
    pub fn new(common_name: impl Into<String>, usage: CertUsage, lifetime: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            common_name: common_name.into(),
            organization: None,
            dns_sans: Vec::new(),
            ip_sans: Vec::new(),
            uri_sans: Vec::new(),
            usage,
            not_before: now - time::Duration::seconds(CLOCK_SKEW_SECS),
            // A lifetime past the year 9999 ends there (certificates cannot
            // say later).
            not_after: now
                .checked_add(time::Duration::try_from(lifetime).unwrap_or(time::Duration::MAX))
                .filter(|t| t.year() <= 9999)
                .unwrap_or(time::macros::datetime!(9999-12-31 23:59:59 UTC)),
            serial: None,
        }
    }
}

/// A freshly issued leaf certificate and its private key.
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The private key, PKCS#8 DER.
    pub key_der: PrivatePkcs8KeyDer<'static>,
    /// The serial number in [`CertificateDetails::serial_hex`](super::CertificateDetails) form.
    pub serial_hex: String,
    /// The serial number bytes, as [`CertificateAuthority::issue_crl`] takes them.
    pub serial: Vec<u8>,
}

impl IssuedCertificate {
    /// The private key as a [`PrivateKeyDer`].
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("serial_hex", &self.serial_hex)
            .field("key_pem", &"[elided]")
            .finish_non_exhaustive()
    }
}

/// A certificate authority that can issue leaf certificates and CRLs.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    /// The CA certificate's notAfter: nothing it issues outlives it.
    not_after: OffsetDateTime,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Generates a self-signed root CA: ECDSA P-256, basicConstraints CA,
    /// keyCertSign + cRLSign, valid from one hour ago for `validity_days`.
    pub fn generate(common_name: &str, validity_days: u32) -> Result<Self, CertError> {
        let now = OffsetDateTime::now_utc();
        Self::generate_with_validity(
            common_name,
            now - time::Duration::hours(1),
            now + time::Duration::days(i64::from(validity_days)),
        )
    }

    /// Like [`Self::generate`], with an explicit validity period.
    pub fn generate_with_validity(
        common_name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Self, CertError> {
        if common_name.trim().is_empty() {
            return Err(CertError::invalid(
                common_name,
                "a CA needs a non-empty common name (--cn)",
            ));
        }
        if not_after <= not_before {
            return Err(CertError::invalid(
                common_name,
                "validity must be at least one day (--days)",
            ));
        }
        let key = KeyPair::generate().map_err(|e| CertError::issue(common_name, e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        let cert = params
            .self_signed(&key)
            .map_err(|e| CertError::issue(common_name, e))?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            not_after,
        })
    }

    /// Loads an existing CA from its PEM certificate and private key.
    ///
    /// The certificate must be a CA (basicConstraints CA:TRUE), allowed to
    /// sign certificates, and the key must be its key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        Self::from_pem_named(
            cert_pem.as_bytes(),
            key_pem.as_bytes(),
            Path::new("CA certificate"),
            Path::new("CA key"),
        )
    }

    /// Loads an existing CA from a certificate file and a key file.
    pub fn load(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, CertError> {
        let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
        Self::from_pem_named(
            &read_file(cert_path)?,
            &read_file(key_path)?,
            cert_path,
            key_path,
        )
    }

    fn from_pem_named(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Self, CertError> {
        let what = cert_path.display().to_string();
        let bad = |detail: &str| CertError::BadCa {
            what: what.clone(),
            detail: detail.to_string(),
        };
        let cert_der = parse_chain(cert_pem, cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| bad("no certificate"))?;
        // Checked for a PEM key block first so the error names the key file.
        super::load::parse_private_key(key_pem, key_path)?;
        let key_text = std::str::from_utf8(key_pem).map_err(|_| CertError::NoPrivateKey {
            path: key_path.to_path_buf(),
            hint: " (the file is not text)".into(),
        })?;
        let key = KeyPair::from_pem(key_text).map_err(|e| CertError::UnsupportedKey {
            path: key_path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der).map_err(|e| {
            CertError::BadCertificate {
                path: cert_path.to_path_buf(),
                index: 1,
                detail: e.to_string(),
            }
        })?;
        if x509.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(CertError::KeyMismatch {
                key_path: key_path.to_path_buf(),
                cert_path: cert_path.to_path_buf(),
            });
        }
        if !x509.is_ca() {
            return Err(bad(
                "the certificate is not a CA (basicConstraints CA:TRUE is missing); \
                 use a CA certificate, or create one with `sigil certs ca`",
            ));
        }
        let key_usages = key_usages_of(&x509);
        if !key_usages.is_empty() && !key_usages.contains(&KeyUsagePurpose::KeyCertSign) {
            return Err(bad(
                "its key usage does not include keyCertSign; use a CA certificate that may sign certificates",
            ));
        }
        let distinguished_name = dn_of(&x509).map_err(|d| bad(&d))?;
        let key_identifier_method = x509
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
                }
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name;
        params.key_usages = key_usages;
        params.key_identifier_method = key_identifier_method;
        let subject_raw = x509.subject().as_raw().to_vec();
        let validity = crate::check::Validity {
            not_before: x509.validity().not_before.timestamp(),
            not_after: x509.validity().not_after.timestamp(),
        };
        // An expired CA would issue certificates that OpenSSL, nginx and
        // Python refuse ("certificate has expired" at depth 1), while
        // webpki, which does not check a trust anchor's dates, accepts them.
        validity.check(cert_path, crate::details::unix_now())?;
        let not_after = x509.validity().not_after.to_datetime();
        let ca = Self {
            issuer: Issuer::new(params, key),
            cert_pem: encode_pem("CERTIFICATE", &cert_der),
            cert_der,
            not_after,
        };
        // Issued certificates must name the CA exactly (byte for byte), or
        // chain building fails later with an obscure "unknown issuer".
        let probe = CertificateParams::default()
            .signed_by(ca.issuer.key(), &ca.issuer)
            .map_err(|e| bad(&e.to_string()))?;
        let (_, probe) =
            x509_parser::parse_x509_certificate(probe.der()).map_err(|e| bad(&e.to_string()))?;
        if probe.issuer().as_raw() != subject_raw.as_slice() {
            return Err(bad(
                "its subject name cannot be reproduced exactly (multi-valued or repeated attributes, \
                 or unusual string types); create a new CA with `sigil certs ca`",
            ));
        }
        Ok(ca)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// A rustls root store holding only this CA.
    pub fn root_store(&self) -> Result<rustls::RootCertStore, CertError> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .map_err(|e| CertError::BadCa {
                what: "CA certificate".into(),
                detail: format!("not usable as a trust anchor: {e}"),
            })?;
        Ok(roots)
    }

    /// The CA certificate's notAfter, unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after.unix_timestamp()
    }

    /// Issues a leaf certificate with a fresh ECDSA P-256 key: not a CA,
    /// digitalSignature key usage, and the EKU matching `req.usage`. It ends
    /// no later than the CA does; a CA that has expired issues nothing.
    pub fn issue(&self, req: &IssueRequest) -> Result<IssuedCertificate, CertError> {
        let what = req.common_name.as_str();
        if self.not_after <= OffsetDateTime::now_utc() {
            return Err(CertError::invalid(
                what,
                format!(
                    "the CA expired at {}; renew the CA (`sigil certs ca`) and replace its files",
                    crate::details::format_rfc3339(self.not_after.unix_timestamp())
                ),
            ));
        }
        // A certificate cannot outlive its issuer: it ends with the CA.
        let not_after = req.not_after.min(self.not_after);
        if not_after <= req.not_before {
            return Err(CertError::invalid(
                what,
                "not_after must be later than not_before (check --days)",
            ));
        }
        if req.usage == CertUsage::ServerAuth && req.dns_sans.is_empty() && req.ip_sans.is_empty() {
            return Err(CertError::invalid(
                what,
                "a server certificate needs at least one DNS name or IP address (--dns/--ip)",
            ));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if !req.common_name.is_empty() {
            params
                .distinguished_name
                .push(DnType::CommonName, req.common_name.as_str());
        }
        if let Some(org) = &req.organization {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org.as_str());
        }
        for dns in &req.dns_sans {
            validate_dns_name(dns).map_err(|d| CertError::invalid(what, d))?;
            let name = Ia5String::try_from(dns.as_str())
                .map_err(|e| CertError::invalid(what, format!("DNS name {dns:?}: {e}")))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &req.ip_sans {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for uri in &req.uri_sans {
            if uri.starts_with("spiffe:") || uri.starts_with("SPIFFE:") {
                SpiffeId::parse(uri).map_err(|rule| CertError::Spiffe {
                    what: format!("URI SAN of {what:?}"),
                    rule,
                })?;
            }
            if uri.is_empty() || uri.chars().any(|c| c.is_whitespace()) {
                return Err(CertError::invalid(
                    what,
                    format!("URI {uri:?} is empty or contains whitespace"),
                ));
            }
            let value = Ia5String::try_from(uri.as_str())
                .map_err(|e| CertError::invalid(what, format!("URI {uri:?}: {e}")))?;
            params.subject_alt_names.push(SanType::URI(value));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match req.usage {
            CertUsage::ClientAuth => vec![ExtendedKeyUsagePurpose::ClientAuth],
            CertUsage::ServerAuth => vec![ExtendedKeyUsagePurpose::ServerAuth],
            CertUsage::Both => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.not_before = req.not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let serial = match req.serial {
            Some(n) => n.to_be_bytes().to_vec(),
            None => random_serial(),
        };
        params.serial_number = Some(SerialNumber::from_slice(&serial));

        let key = KeyPair::generate().map_err(|e| CertError::issue(what, e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| CertError::issue(what, e))?;
        let serial_hex = serial_to_hex(&serial);
        let first = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
        let serial = if first == serial.len() {
            vec![0]
        } else {
            serial[first..].to_vec()
        };
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
            serial_hex,
            serial,
        })
    }

    /// Issues a CRL revoking `revoked_serials` (serial bytes, as in
    /// [`IssuedCertificate::serial`]), returned as PEM (`X509 CRL`).
    pub fn issue_crl(
        &self,
        revoked_serials: &[Vec<u8>],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<String, CertError> {
        let crl = self.sign_crl(revoked_serials, this_update, next_update)?;
        crl.pem().map_err(|e| CertError::issue("CRL", e))
    }

    /// Like [`Self::issue_crl`], returning DER.
    pub fn issue_crl_der(
        &self,
        revoked_serials: &[Vec<u8>],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<CertificateRevocationListDer<'static>, CertError> {
        Ok(self
            .sign_crl(revoked_serials, this_update, next_update)?
            .der()
            .clone())
    }

    fn sign_crl(
        &self,
        revoked_serials: &[Vec<u8>],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<rcgen::CertificateRevocationList, CertError> {
        if next_update <= this_update {
            return Err(CertError::invalid(
                "CRL",
                "next_update must be later than this_update",
            ));
        }
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(this_update.unix_timestamp().max(0) as u64),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: this_update,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).map_err(|e| match e {
            rcgen::Error::IssuerNotCrlSigner => CertError::BadCa {
                what: "CA certificate".into(),
                detail: "its key usage does not include cRLSign, so it cannot sign CRLs; \
                         use a CA with cRLSign (as `sigil certs ca` creates)"
                    .into(),
            },
            other => CertError::issue("CRL", other),
        })
    }
}

/// A random positive 128-bit serial whose first byte is non-zero.
fn random_serial() -> Vec<u8> {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // The system RNG failing is not recoverable in a useful way; fall
        // back to time-derived bytes, which are still unique per call.
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        bytes = nanos.to_be_bytes();
    }
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    bytes.to_vec()
}

fn validate_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("DNS name is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*' | '_')))
    {
        return Err(format!(
            "DNS name {name:?} contains {c:?}; use letters, digits, '-', '.' (and '*' for a wildcard label); IP addresses go in --ip"
        ));
    }
    Ok(())
}

fn key_usages_of(x509: &X509Certificate<'_>) -> Vec<KeyUsagePurpose> {
    let Ok(Some(ku)) = x509.key_usage() else {
        return Vec::new();
    };
    let ku = ku.value;
    [
        (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
        (ku.non_repudiation(), KeyUsagePurpose::ContentCommitment),
        (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
        (ku.data_encipherment(), KeyUsagePurpose::DataEncipherment),
        (ku.key_agreement(), KeyUsagePurpose::KeyAgreement),
        (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
        (ku.crl_sign(), KeyUsagePurpose::CrlSign),
        (ku.encipher_only(), KeyUsagePurpose::EncipherOnly),
        (ku.decipher_only(), KeyUsagePurpose::DecipherOnly),
    ]
    .into_iter()
    .filter_map(|(set, purpose)| set.then_some(purpose))
    .collect()
}

/// Rebuilds an rcgen distinguished name from a parsed certificate subject.
fn dn_of(x509: &X509Certificate<'_>) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in x509.subject().iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(
                "its subject has a multi-valued name component, which Sigil cannot reproduce; \
                 create a new CA with `sigil certs ca`"
                    .into(),
            );
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("its subject has an attribute type that cannot be decoded")?
            .collect();
        let data = attr.attr_value().data;
        let text = std::str::from_utf8(data)
            .map_err(|_| "its subject has an attribute that is not text".to_string())?;
        let value = match attr.attr_value().header.tag() {
            Tag::PrintableString => DnValue::PrintableString(
                text.try_into()
                    .map_err(|e| format!("subject attribute {text:?}: {e}"))?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                text.try_into()
                    .map_err(|e| format!("subject attribute {text:?}: {e}"))?,
            ),
            Tag::T61String => DnValue::TeletexString(
                text.try_into()
                    .map_err(|e| format!("subject attribute {text:?}: {e}"))?,
            ),
            _ => DnValue::Utf8String(text.to_string()),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::details::CertificateDetails;
    use std::sync::Arc;

    #[test]
    fn a_ca_outside_its_validity_is_refused_and_nothing_outlives_a_ca() {
        let now = OffsetDateTime::now_utc();
        let day = time::Duration::days(1);
        // Expired (before: loaded, and issued certificates OpenSSL refuses).
        let old = CertificateAuthority::generate_with_validity("Old CA", now - day * 10, now - day)
            .unwrap();
        let err = CertificateAuthority::from_pem(old.cert_pem(), &old.key_pem()).unwrap_err();
        assert!(matches!(err, CertError::Expired { .. }), "{err}");
        assert!(err.to_string().contains("renew it"), "{err}");
        let req = IssueRequest::new("w", CertUsage::ClientAuth, Duration::from_secs(3600));
        let Err(err) = old.issue(&req) else {
            panic!("an expired CA issued a certificate");
        };
        assert!(err.to_string().contains("the CA expired at"), "{err}");
        // Not yet valid.
        let early =
            CertificateAuthority::generate_with_validity("Early CA", now + day, now + day * 10)
                .unwrap();
        let err = CertificateAuthority::from_pem(early.cert_pem(), &early.key_pem()).unwrap_err();
        assert!(matches!(err, CertError::NotYetValid { .. }), "{err}");
        // A CA ending in an hour issues a day-long certificate ending with it.
        let ending =
            CertificateAuthority::generate_with_validity("Ending CA", now - day, now + day / 24)
                .unwrap();
        let ending = CertificateAuthority::from_pem(ending.cert_pem(), &ending.key_pem()).unwrap();
        let issued = ending
            .issue(&IssueRequest::new(
                "w",
                CertUsage::ClientAuth,
                Duration::from_secs(86_400),
            ))
            .unwrap();
        let leaf = crate::check::Validity::from_der(&issued.cert_der).unwrap();
        assert_eq!(leaf.not_after, ending.not_after());
    }

    #[test]
    fn a_lifetime_past_the_year_9999_ends_there() {
        // Before: `identity.ttl_secs = 300000000000` panicked here.
        for lifetime in [Duration::from_secs(300_000_000_000), Duration::MAX] {
            let req = IssueRequest::new("w", CertUsage::ClientAuth, lifetime);
            assert_eq!(req.not_after.year(), 9999);
        }
        let req = IssueRequest::new("w", CertUsage::ClientAuth, Duration::from_secs(3600));
        let left = req.not_after - OffsetDateTime::now_utc();
        assert!((3590..=3600).contains(&left.whole_seconds()), "{left}");
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    fn client_verifier(
        ca: &CertificateAuthority,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(ca.root_store().unwrap()),
            provider(),
        )
        .with_crls(crls)
        .build()
        .unwrap()
    }

    fn now() -> rustls_pki_types::UnixTime {
        rustls_pki_types::UnixTime::now()
    }

    #[test]
    fn leaf_shape() {
        let ca = CertificateAuthority::generate("Issue CA", 30).unwrap();
        let mut req = IssueRequest::new("srv", CertUsage::Both, Duration::from_secs(86400));
        req.dns_sans = vec!["localhost".into()];
        let issued = ca.issue(&req).unwrap();
        let d = CertificateDetails::from_der(&issued.cert_der).unwrap();
        assert!(!d.is_ca);
        assert_eq!(d.extended_key_usages, ["serverAuth", "clientAuth"]);
        let (_, x) = x509_parser::parse_x509_certificate(&issued.cert_der).unwrap();
        let ku = x.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        assert!(!x.basic_constraints().unwrap().unwrap().value.ca);
        let ca_x = x509_parser::parse_x509_certificate(ca.cert_der())
            .unwrap()
            .1;
        let ca_ku = ca_x.key_usage().unwrap().unwrap().value;
        assert!(ca_ku.key_cert_sign() && ca_ku.crl_sign());
    }

    #[test]
    fn invalid_requests() {
        let ca = CertificateAuthority::generate("Issue CA", 30).unwrap();
        let req = IssueRequest::new("srv", CertUsage::ServerAuth, Duration::from_secs(60));
        assert!(ca.issue(&req).unwrap_err().to_string().contains("--dns"));
        let mut req = IssueRequest::new("x", CertUsage::ClientAuth, Duration::from_secs(60));
        req.uri_sans = vec!["spiffe://td//x".into()];
        assert!(matches!(
            ca.issue(&req).unwrap_err(),
            CertError::Spiffe { .. }
        ));
        let mut req = IssueRequest::new("x", CertUsage::ClientAuth, Duration::from_secs(60));
        req.dns_sans = vec!["bad name".into()];
        assert!(ca.issue(&req).is_err());
        let mut req = IssueRequest::new("x", CertUsage::ClientAuth, Duration::from_secs(60));
        req.not_after = req.not_before;
        assert!(ca.issue(&req).is_err());
        assert!(CertificateAuthority::generate("", 30).is_err());
    }

    #[test]
    fn from_pem_round_trip_and_checks() {
        let ca = CertificateAuthority::generate("Round Trip CA", 30).unwrap();
        let loaded = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(loaded.cert_der(), ca.cert_der());
        let leaf = loaded
            .issue(&IssueRequest::new(
                "c",
                CertUsage::ClientAuth,
                Duration::from_secs(600),
            ))
            .unwrap();
        client_verifier(&ca, vec![])
            .verify_client_cert(&leaf.cert_der, &[], now())
            .unwrap();

        // Wrong key.
        let other = CertificateAuthority::generate("Other CA", 30).unwrap();
        let err = CertificateAuthority::from_pem(ca.cert_pem(), &other.key_pem()).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");
        // Not a CA.
        let err = CertificateAuthority::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
        assert!(err.to_string().contains("not a CA"), "{err}");
    }

    #[test]
    fn crl_revokes_the_right_serial() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let ca = CertificateAuthority::generate("CRL CA", 30).unwrap();
        let req = IssueRequest::new("dev", CertUsage::ClientAuth, Duration::from_secs(3600));
        let revoked = ca.issue(&req).unwrap();
        let good = ca.issue(&req).unwrap();
        let now_t = OffsetDateTime::now_utc();
        let pem = ca
            .issue_crl(
                std::slice::from_ref(&revoked.serial),
                now_t - time::Duration::minutes(1),
                now_t + time::Duration::days(7),
            )
            .unwrap();
        let crls = super::super::load::parse_crls(pem.as_bytes(), Path::new("crl.pem")).unwrap();
        let verifier = client_verifier(&ca, crls);
        let err = verifier
            .verify_client_cert(&revoked.cert_der, &[], now())
            .unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
            ),
            "{err}"
        );
        verifier
            .verify_client_cert(&good.cert_der, &[], now())
            .unwrap();

        // Explicit u64 serials revoke the same way.
        let mut req2 = req.clone();
        req2.serial = Some(4242);
        let numbered = ca.issue(&req2).unwrap();
        assert_eq!(numbered.serial_hex, "1092");
        let crl = ca
            .issue_crl_der(
                std::slice::from_ref(&numbered.serial),
                now_t - time::Duration::minutes(1),
                now_t + time::Duration::days(1),
            )
            .unwrap();
        let err = client_verifier(&ca, vec![crl])
            .verify_client_cert(&numbered.cert_der, &[], now())
            .unwrap_err();
        assert!(
            err.to_string().contains("Revoked") || err.to_string().contains("revoked"),
            "{err}"
        );
    }

    #[test]
    fn thousands_of_certificates_are_cheap() {
        let ca = CertificateAuthority::generate("Bulk CA", 30).unwrap();
        let req = IssueRequest::new("bulk", CertUsage::ClientAuth, Duration::from_secs(600));
        let start = std::time::Instant::now();
        let mut serials = std::collections::HashSet::new();
        for _ in 0..1000 {
            serials.insert(ca.issue(&req).unwrap().serial_hex);
        }
        assert_eq!(serials.len(), 1000);
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    }
}
