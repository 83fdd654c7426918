//! The inbound client certificate as request headers, for component workers
//! (SDK workers get the same details from `client_auth()`). Only Sigil sets
//! them: client copies are always stripped ([`super::RUNTIME_OWNED`]), and a
//! worker's copies never reach an origin.

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use sigil_sdk::wire::ClientAuth;

/// `true` or `false`: whether the client presented a certificate.
pub const PRESENTED: &str = "sigil-client-cert-presented";
/// `SUCCESS`, `NONE` or `FAILED:<reason>` (as nginx's `$ssl_client_verify`).
pub const VERIFIED: &str = "sigil-client-cert-verified";
/// `true` or `false`: whether the hostname's CRL lists it.
pub const REVOKED: &str = "sigil-client-cert-revoked";
/// Subject distinguished name (RFC 4514).
pub const SUBJECT: &str = "sigil-client-cert-subject";
/// Issuer distinguished name (RFC 4514).
pub const ISSUER: &str = "sigil-client-cert-issuer";
/// Serial number, upper-case hex.
pub const SERIAL: &str = "sigil-client-cert-serial";
/// SHA-256 of the DER certificate, lower-case hex.
pub const SHA256: &str = "sigil-client-cert-sha256";
/// Not-before, seconds since the Unix epoch.
pub const NOT_BEFORE: &str = "sigil-client-cert-not-before";
/// Not-after, seconds since the Unix epoch.
pub const NOT_AFTER: &str = "sigil-client-cert-not-after";
/// One field per DNS subject alternative name.
pub const DNS_SANS: &str = "sigil-client-cert-dns-sans";
/// One field per URI subject alternative name.
pub const URI_SANS: &str = "sigil-client-cert-uri-sans";
/// The SPIFFE ID, when the certificate carries exactly one `spiffe://` URI SAN.
pub const SPIFFE_ID: &str = "sigil-client-cert-spiffe-id";

/// Every header name above.
pub const ALL: [&str; 12] = [
    PRESENTED, VERIFIED, REVOKED, SUBJECT, ISSUER, SERIAL, SHA256, NOT_BEFORE, NOT_AFTER, DNS_SANS,
    URI_SANS, SPIFFE_ID,
];

/// Bytes that cannot appear in a header value as they are: controls and `%`.
const ESCAPED: &AsciiSet = &CONTROLS.add(b'%');

/// In a SAN, a `,` is encoded too: one field line goes per SAN, and field
/// lines of one name are joined with `, ` (RFC 9110, the Fetch API's
/// `Headers.get`), so a comma inside one SAN would read as two SANs.
const SAN_ESCAPED: &AsciiSet = &ESCAPED.add(b',');

/// `text` as a header value, percent-encoded: every `%`, control character
/// (tab included) and non-ASCII byte, always, so that a value is never
/// ambiguous (a DN holding a literal `%0A` arrives as `%250A`). Plain text
/// passes unchanged.
fn value(text: &str) -> HeaderValue {
    encoded(text, ESCAPED)
}

/// A SAN as one field line (its commas encoded as well).
fn san_value(text: &str) -> HeaderValue {
    encoded(text, SAN_ESCAPED)
}

fn encoded(text: &str, set: &'static AsciiSet) -> HeaderValue {
    let encoded = utf8_percent_encode(text, set).to_string();
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

/// Set the client-certificate headers for `details` (`None`: a plain-HTTP
/// connection, where no certificate can have been presented).
pub fn apply(details: Option<&ClientAuth>, headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: &'static str, v: HeaderValue| {
        headers.append(HeaderName::from_static(name), v);
    };
    let Some(a) = details.filter(|a| a.cert_presented) else {
        set(headers, PRESENTED, HeaderValue::from_static("false"));
        set(headers, VERIFIED, HeaderValue::from_static("NONE"));
        return;
    };
    let flag = |b: bool| HeaderValue::from_static(if b { "true" } else { "false" });
    set(headers, PRESENTED, flag(true));
    set(headers, VERIFIED, value(&a.cert_verified.to_string()));
    set(headers, REVOKED, flag(a.cert_revoked));
    set(headers, SUBJECT, value(&a.cert_subject_dn));
    set(headers, ISSUER, value(&a.cert_issuer_dn));
    set(headers, SERIAL, value(&a.cert_serial));
    set(headers, SHA256, value(&a.cert_fingerprint_sha256));
    set(headers, NOT_BEFORE, HeaderValue::from(a.cert_not_before));
    set(headers, NOT_AFTER, HeaderValue::from(a.cert_not_after));
    for san in &a.dns_sans {
        set(headers, DNS_SANS, san_value(san));
    }
    for san in &a.uri_sans {
        set(headers, URI_SANS, san_value(san));
    }
    if let Some(id) = &a.spiffe_id {
        set(headers, SPIFFE_ID, value(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_sdk::wire::CertVerified;

    #[test]
    fn presented_certificates_become_headers() {
        let mut h = HeaderMap::new();
        apply(None, &mut h);
        assert_eq!(h[PRESENTED], "false");
        assert_eq!(h[VERIFIED], "NONE");
        assert_eq!(h.len(), 2);
        let mut a = ClientAuth::not_presented();
        a.cert_presented = true;
        a.cert_verified = CertVerified::Failed("expired".into());
        a.cert_subject_dn = "CN=device-1,O=Alpha\n".into();
        a.uri_sans = vec!["spiffe://a/x".into(), "https://b".into()];
        a.spiffe_id = Some("spiffe://a/x".into());
        a.cert_not_after = 1_700_000_000;
        let mut h = HeaderMap::new();
        apply(Some(&a), &mut h);
        assert_eq!(h[VERIFIED], "FAILED:expired");
        assert_eq!(h[SUBJECT], "CN=device-1,O=Alpha%0A");
        assert_eq!(h.get_all(URI_SANS).iter().count(), 2);
        assert_eq!(h[SPIFFE_ID], "spiffe://a/x");
        assert_eq!(h[NOT_AFTER], "1700000000");
        assert!(!h.contains_key(DNS_SANS));
    }

    #[test]
    fn values_are_never_ambiguous() {
        // Before: `%`, tab and non-ASCII passed as they were, so a DN with
        // a literal `%0A` read the same as an encoded newline.
        assert_eq!(value("CN=a%0Ab"), "CN=a%250Ab");
        assert_eq!(value("CN=a\tb"), "CN=a%09b");
        assert_eq!(value("CN=Zoë"), "CN=Zo%C3%AB");
        assert_eq!(value("CN=plain, O=Alpha"), "CN=plain, O=Alpha");
        // One SAN holding ", " stays one SAN once field lines are joined.
        // Before: "spiffe://d/worker/reader, spiffe://d/worker/writer".
        assert_eq!(
            san_value("spiffe://d/worker/reader, spiffe://d/worker/writer"),
            "spiffe://d/worker/reader%2C spiffe://d/worker/writer"
        );
        assert_eq!(san_value("a.example"), "a.example");
    }
}
