//! RFC 4514 string rendering of an X.509 distinguished name.
//!
//! [`rfc4514`] renders an [`X509Name`] the way LDAP (RFC 4514 §2) and
//! OpenSSL's `XN_FLAG_RFC2253` (used by nginx's `$ssl_client_s_dn` and by
//! Envoy) do:
//!
//! * RDNs in **reverse** order (the last RDN of the encoded sequence
//!   first), joined by `,` with no space;
//! * attributes of a multi-valued RDN joined by `+`, also in reverse
//!   encoded order — the whole attribute sequence is reversed, which is
//!   exactly what OpenSSL prints (checked against `openssl x509 -nameopt
//!   RFC2253`); RFC 4514 leaves this order open;
//! * attribute types as short names — the RFC 4514 table (`CN`, `L`, `ST`,
//!   `O`, `OU`, `C`, `STREET`, `DC`, `UID`) and OpenSSL's names for other
//!   common ones (`emailAddress`, `serialNumber`, `SN`, `GN`, `title`, …,
//!   see [`attribute_type_name`]); any other type as its dotted OID;
//! * string values decoded from every ASN.1 string type found in
//!   certificates: UTF8String, PrintableString, IA5String, VisibleString,
//!   NumericString (ASCII), TeletexString/T61String (read as Latin-1, as
//!   OpenSSL and most software do), BMPString (UTF-16BE) and
//!   UniversalString (UTF-32BE);
//! * values escaped per RFC 4514 §2.4: `,` `+` `"` `\` `<` `>` `;` get a
//!   backslash, as do a leading `#` or space and a trailing space; NUL is
//!   `\00`; other control characters and invisible formatting characters
//!   (bidi overrides, zero-width characters) are hex-escaped byte by byte
//!   (`\0A`, `\E2\80\AE`), so the output never carries raw control or
//!   direction-changing characters into logs or headers;
//! * `#` followed by the uppercase hex of the value's DER encoding when the
//!   value is not a string, is a string whose bytes are not valid for its
//!   type (bad UTF-8, odd-length BMPString, …), or when the attribute type is
//!   written as a dotted OID (RFC 4514 §2.4, first paragraph — OpenSSL's
//!   `ASN1_STRFLGS_DUMP_UNKNOWN` does the same).
//!
//! Rendering never fails and never produces an `<X509Error …>`-style text.
//!
//! [`rfc4514_ascii`] is the same rendering with every non-ASCII character
//! also hex-escaped as its UTF-8 bytes (`Z\C3\BCrich`), as OpenSSL's
//! `ASN1_STRFLGS_ESC_MSB` does; the result is equivalent under RFC 4514 and
//! safe to put in an HTTP header.

use std::borrow::Cow;
use std::fmt::Write as _;

use x509_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::der_parser::Oid;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// Renders `name` as an RFC 4514 string, keeping non-ASCII characters as
/// UTF-8. An empty name renders as the empty string.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    render(name, false)
}

/// Renders `name` like [`rfc4514`] but hex-escapes every non-ASCII
/// character as its UTF-8 bytes, so the result is printable ASCII.
pub fn rfc4514_ascii(name: &X509Name<'_>) -> String {
    render(name, true)
}

fn render(name: &X509Name<'_>, ascii_only: bool) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let attrs: Vec<_> = rdn.iter().collect();
        for (j, attr) in attrs.iter().rev().enumerate() {
            if j > 0 {
                out.push('+');
            }
            write_attribute(attr, ascii_only, &mut out);
        }
    }
    out
}

fn write_attribute(attr: &AttributeTypeAndValue<'_>, ascii_only: bool, out: &mut String) {
    let type_name = attribute_type_name(attr.attr_type());
    let dotted = type_name.starts_with(|c: char| c.is_ascii_digit());
    out.push_str(&type_name);
    out.push('=');
    match decode_string(attr.attr_value()).filter(|_| !dotted) {
        Some(text) => escape_value(&text, ascii_only, out),
        None => {
            out.push('#');
            push_hex(&der_of(attr.attr_value()), out);
        }
    }
}

/// The RFC 4514 / OpenSSL short name of an attribute type, or its dotted
/// OID when it has none.
///
/// Named: `CN` `SN` `serialNumber` `C` `L` `ST` `STREET` `O` `OU` `title`
/// `description` `businessCategory` `postalCode` `postOfficeBox` `name`
/// `GN` `initials` `generationQualifier` `x500UniqueIdentifier`
/// `dnQualifier` `pseudonym` `role` `organizationIdentifier` `UID` `DC`
/// `emailAddress` `unstructuredName` `jurisdictionL` `jurisdictionST`
/// `jurisdictionC`.
pub fn attribute_type_name(oid: &Oid<'_>) -> Cow<'static, str> {
    let dotted = oid.to_id_string();
    let short = match dotted.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.18" => "postOfficeBox",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.45" => "x500UniqueIdentifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.72" => "role",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.2.840.113549.1.9.2" => "unstructuredName",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return Cow::Owned(dotted),
    };
    Cow::Borrowed(short)
}

/// Decodes a string-typed attribute value; `None` for non-string values
/// and for strings whose bytes are invalid for their type.
pub fn decode_string(value: &Any<'_>) -> Option<String> {
    if value.header.class() != Class::Universal || value.header.is_constructed() {
        return None;
    }
    let bytes = value.data;
    match value.tag() {
        Tag::Utf8String => std::str::from_utf8(bytes).ok().map(str::to_owned),
        Tag::PrintableString | Tag::Ia5String | Tag::VisibleString | Tag::NumericString => bytes
            .is_ascii()
            .then(|| bytes.iter().map(|&b| char::from(b)).collect()),
        // T.61 in theory; Latin-1 in practice (OpenSSL, browsers, rcgen).
        Tag::TeletexString => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString => {
            if !bytes.len().is_multiple_of(4) {
                return None;
            }
            bytes
                .chunks_exact(4)
                .map(|q| char::from_u32(u32::from_be_bytes([q[0], q[1], q[2], q[3]])))
                .collect()
        }
        _ => None,
    }
}

/// Characters that are invisible or change text direction; hex-escaped so
/// a DN cannot hide or reorder text when displayed.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Appends `value` escaped per RFC 4514 §2.4.
fn escape_value(value: &str, ascii_only: bool, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            c if c.is_control() || is_invisible_format(c) || (ascii_only && !c.is_ascii()) => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push('\\');
                    push_hex(&[b], out);
                }
            }
            c => out.push(c),
        }
    }
}

/// The DER encoding (identifier, definite length, contents) of `value`.
fn der_of(value: &Any<'_>) -> Vec<u8> {
    let class_bits: u8 = match value.header.class() {
        Class::Universal => 0x00,
        Class::Application => 0x40,
        Class::ContextSpecific => 0x80,
        Class::Private => 0xc0,
    };
    let constructed: u8 = if value.header.is_constructed() {
        0x20
    } else {
        0
    };
    let mut out = Vec::with_capacity(value.data.len() + 8);
    let tag = value.tag().0;
    match u8::try_from(tag) {
        Ok(small) if small < 31 => out.push(class_bits | constructed | small),
        _ => {
            out.push(class_bits | constructed | 0x1f);
            let mut groups = Vec::new();
            let mut t = tag;
            loop {
                groups.push((t & 0x7f) as u8);
                t >>= 7;
                if t == 0 {
                    break;
                }
            }
            for (k, g) in groups.iter().enumerate().rev() {
                out.push(if k > 0 { g | 0x80 } else { *g });
            }
        }
    }
    let len = value.data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value.data);
    out
}

fn push_hex(bytes: &[u8], out: &mut String) {
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::der::{self, oid};
    use rcgen::{CertificateParams, DnType, DnValue, KeyPair};
    use x509_parser::prelude::FromDer;

    const CN: &str = "2.5.4.3";
    const O: &str = "2.5.4.10";
    const OU: &str = "2.5.4.11";
    const C: &str = "2.5.4.6";
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const T61: u8 = 0x14;
    const IA5: u8 = 0x16;
    const VISIBLE: u8 = 0x1a;
    const UNIVERSAL: u8 = 0x1c;
    const BMP: u8 = 0x1e;

    /// An attribute (type OID, value TLV).
    fn atv(oid_text: &str, value: Vec<u8>) -> Vec<u8> {
        der::seq(&[oid(oid_text), value])
    }

    /// A Name from RDNs, each a list of attributes.
    fn name(rdns: Vec<Vec<Vec<u8>>>) -> Vec<u8> {
        der::seq(
            &rdns
                .into_iter()
                .map(|rdn| der::set(&rdn))
                .collect::<Vec<_>>(),
        )
    }

    fn render_der(der: &[u8]) -> (String, String) {
        let (rest, parsed) = X509Name::from_der(der).expect("test name parses");
        assert!(rest.is_empty());
        (rfc4514(&parsed), rfc4514_ascii(&parsed))
    }

    fn utf8(s: &str) -> Vec<u8> {
        der::tlv(UTF8, s.as_bytes())
    }

    #[test]
    fn raw_der_names() {
        let bmp = |s: &str| {
            let bytes: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
            der::tlv(BMP, &bytes)
        };
        let universal = |s: &str| {
            let bytes: Vec<u8> = s.chars().flat_map(|c| (c as u32).to_be_bytes()).collect();
            der::tlv(UNIVERSAL, &bytes)
        };
        let long_hex = format!("CN=#048182{}", "AB".repeat(130));
        let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
            ("empty name", name(vec![]), "", ""),
            (
                "reverse order",
                name(vec![
                    vec![atv(C, der::tlv(PRINTABLE, b"US"))],
                    vec![atv(O, utf8("Acme"))],
                    vec![atv(CN, utf8("dev"))],
                ]),
                "CN=dev,O=Acme,C=US",
                "CN=dev,O=Acme,C=US",
            ),
            (
                "multi-valued RDN in reverse encoded order, as OpenSSL",
                name(vec![
                    vec![atv(O, utf8("Acme"))],
                    vec![atv(CN, utf8("dev")), atv(OU, utf8("ops"))],
                ]),
                "OU=ops+CN=dev,O=Acme",
                "OU=ops+CN=dev,O=Acme",
            ),
            (
                "specials escaped",
                name(vec![
                    vec![atv(O, utf8("Acme, Inc."))],
                    vec![atv(CN, utf8("dev \"one\", O=Admin"))],
                ]),
                r#"CN=dev \"one\"\, O=Admin,O=Acme\, Inc."#,
                r#"CN=dev \"one\"\, O=Admin,O=Acme\, Inc."#,
            ),
            (
                "every special",
                name(vec![vec![atv(CN, utf8(r#"a,b+c"d\e<f>g;h=i"#))]]),
                r#"CN=a\,b\+c\"d\\e\<f\>g\;h=i"#,
                r#"CN=a\,b\+c\"d\\e\<f\>g\;h=i"#,
            ),
            (
                "leading and trailing spaces, leading hash",
                name(vec![
                    vec![atv(O, utf8("#1 team"))],
                    vec![atv(CN, utf8("  padded  "))],
                ]),
                r"CN=\  padded \ ,O=\#1 team",
                r"CN=\  padded \ ,O=\#1 team",
            ),
            (
                "hash and space inside are literal",
                name(vec![vec![atv(CN, utf8("a #b c#"))]]),
                "CN=a #b c#",
                "CN=a #b c#",
            ),
            (
                "single space",
                name(vec![vec![atv(CN, utf8(" "))]]),
                r"CN=\ ",
                r"CN=\ ",
            ),
            (
                "empty value",
                name(vec![vec![atv(CN, utf8(""))]]),
                "CN=",
                "CN=",
            ),
            (
                "NUL and controls",
                name(vec![vec![atv(CN, utf8("a\0b\nc\u{7f}d\u{85}"))]]),
                r"CN=a\00b\0Ac\7Fd\C2\85",
                r"CN=a\00b\0Ac\7Fd\C2\85",
            ),
            (
                "bidi override and zero-width space",
                name(vec![vec![atv(CN, utf8("evil\u{202E}gnp.exe\u{200B}"))]]),
                r"CN=evil\E2\80\AEgnp.exe\E2\80\8B",
                r"CN=evil\E2\80\AEgnp.exe\E2\80\8B",
            ),
            (
                "UTF-8 kept, or escaped in ASCII mode",
                name(vec![vec![atv("2.5.4.7", utf8("Zürich"))]]),
                "L=Zürich",
                r"L=Z\C3\BCrich",
            ),
            (
                "TeletexString is Latin-1",
                name(vec![vec![atv(CN, der::tlv(T61, b"caf\xe9"))]]),
                "CN=café",
                r"CN=caf\C3\A9",
            ),
            (
                "BMPString is UTF-16BE, astral plane too",
                name(vec![vec![atv(CN, bmp("Ωmega 😀"))]]),
                "CN=Ωmega 😀",
                r"CN=\CE\A9mega \F0\9F\98\80",
            ),
            (
                "UniversalString is UTF-32BE",
                name(vec![vec![atv(CN, universal("ü-4"))]]),
                "CN=ü-4",
                r"CN=\C3\BC-4",
            ),
            (
                "IA5 and Visible strings",
                name(vec![
                    vec![atv(
                        "1.2.840.113549.1.9.1",
                        der::tlv(IA5, b"dev@example.com"),
                    )],
                    vec![atv(CN, der::tlv(VISIBLE, b"vis"))],
                ]),
                "CN=vis,emailAddress=dev@example.com",
                "CN=vis,emailAddress=dev@example.com",
            ),
            (
                "short names",
                name(vec![
                    vec![atv("0.9.2342.19200300.100.1.25", der::tlv(IA5, b"example"))],
                    vec![atv("2.5.4.9", utf8("1 Main St"))],
                    vec![atv("2.5.4.8", utf8("CA"))],
                    vec![atv("0.9.2342.19200300.100.1.1", utf8("u1"))],
                    vec![atv("2.5.4.5", der::tlv(PRINTABLE, b"42"))],
                ]),
                "serialNumber=42,UID=u1,ST=CA,STREET=1 Main St,DC=example",
                "serialNumber=42,UID=u1,ST=CA,STREET=1 Main St,DC=example",
            ),
            (
                "dotted OID types always use the hex form",
                name(vec![vec![atv("1.2.3.4", utf8("abc"))]]),
                "1.2.3.4=#0C03616263",
                "1.2.3.4=#0C03616263",
            ),
            (
                "non-string value is hex DER",
                name(vec![vec![atv(CN, der::tlv(0x02, &[0x01, 0x00]))]]),
                "CN=#02020100",
                "CN=#02020100",
            ),
            (
                "constructed value is hex DER",
                name(vec![vec![atv(CN, der::seq(&[utf8("x")]))]]),
                "CN=#30030C0178",
                "CN=#30030C0178",
            ),
            (
                "invalid UTF-8 is hex DER",
                name(vec![vec![atv(CN, der::tlv(UTF8, b"\xff\xfe"))]]),
                "CN=#0C02FFFE",
                "CN=#0C02FFFE",
            ),
            (
                "odd-length BMPString is hex DER",
                name(vec![vec![atv(CN, der::tlv(BMP, b"\x00a\x00"))]]),
                "CN=#1E03006100",
                "CN=#1E03006100",
            ),
            (
                "unpaired surrogate is hex DER",
                name(vec![vec![atv(CN, der::tlv(BMP, b"\xd8\x00"))]]),
                "CN=#1E02D800",
                "CN=#1E02D800",
            ),
            (
                "non-ASCII PrintableString is hex DER",
                name(vec![vec![atv(CN, der::tlv(PRINTABLE, b"\xe9"))]]),
                "CN=#1301E9",
                "CN=#1301E9",
            ),
            (
                "long non-string value uses long-form length",
                name(vec![vec![atv(CN, der::tlv(0x04, &[0xab; 130]))]]),
                &long_hex,
                &long_hex,
            ),
        ];
        for (what, der, want, want_ascii) in cases {
            let (got, got_ascii) = render_der(&der);
            assert_eq!(got, want, "{what}");
            assert_eq!(got_ascii, want_ascii, "{what} (ascii)");
            assert!(!got.contains("X509Error"), "{what}");
            assert!(
                got_ascii.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{what}"
            );
        }
    }

    #[test]
    fn rcgen_certificates() {
        type Case = (&'static str, Vec<(DnType, DnValue)>, &'static str);
        let cases: Vec<Case> = vec![
            (
                "utf8 with specials",
                vec![
                    (DnType::OrganizationName, "Acme, Inc.".into()),
                    (DnType::CommonName, "dev \"one\", O=Admin".into()),
                ],
                r#"CN=dev \"one\"\, O=Admin,O=Acme\, Inc."#,
            ),
            (
                "printable and country",
                vec![
                    (
                        DnType::CountryName,
                        DnValue::PrintableString("US".try_into().expect("printable")),
                    ),
                    (
                        DnType::OrganizationalUnitName,
                        DnValue::PrintableString(" lead+trail ".try_into().expect("printable")),
                    ),
                ],
                r"OU=\ lead\+trail\ ,C=US",
            ),
            (
                "BMPString",
                vec![(
                    DnType::CommonName,
                    DnValue::BmpString("Grüße".try_into().expect("bmp")),
                )],
                "CN=Grüße",
            ),
            (
                "TeletexString",
                vec![(
                    DnType::CommonName,
                    DnValue::TeletexString("#teletex".try_into().expect("t61")),
                )],
                r"CN=\#teletex",
            ),
            (
                "UniversalString",
                vec![(
                    DnType::LocalityName,
                    DnValue::UniversalString("Malmö".try_into().expect("universal")),
                )],
                "L=Malmö",
            ),
            (
                "IA5String",
                vec![(
                    DnType::StateOrProvinceName,
                    DnValue::Ia5String("a<b>".try_into().expect("ia5")),
                )],
                r"ST=a\<b\>",
            ),
            (
                "custom dotted type",
                vec![(
                    DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99999, 1]),
                    "x".into(),
                )],
                "1.3.6.1.4.1.99999.1=#0C0178",
            ),
        ];
        for (what, entries, want) in cases {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name = rcgen::DistinguishedName::new();
            for (ty, value) in entries {
                params.distinguished_name.push(ty, value);
            }
            let key = KeyPair::generate().expect("key");
            let cert = params.self_signed(&key).expect("cert");
            let (_, parsed) =
                x509_parser::parse_x509_certificate(cert.der()).expect("certificate parses");
            assert_eq!(rfc4514(parsed.subject()), want, "{what}");
            assert_eq!(rfc4514(parsed.issuer()), want, "{what} (issuer)");
        }
    }

    #[test]
    fn attribute_names() {
        for (dotted, want) in [
            ("2.5.4.3", "CN"),
            ("2.5.4.9", "STREET"),
            ("1.2.840.113549.1.9.1", "emailAddress"),
            ("2.5.4.5", "serialNumber"),
            ("0.9.2342.19200300.100.1.25", "DC"),
            ("1.2.3.4.5", "1.2.3.4.5"),
        ] {
            let encoded = oid(dotted);
            let (_, parsed) = Oid::from_der(&encoded).expect("oid parses");
            assert_eq!(attribute_type_name(&parsed), want);
        }
    }
}
