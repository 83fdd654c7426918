//! Rendering of one Envoy `x-forwarded-client-cert` (XFCC) element.
//!
//! Envoy's format (docs: HTTP header manipulation → x-forwarded-client-cert):
//! the header is a `,`-separated list of elements, each a `;`-separated list
//! of `Key=Value` pairs. *"If `,`, `;` or `=` appear in a value, the value
//! should be double-quoted. Double-quotes in the value should be replaced by
//! backslash-double-quote (`\"`)."* Envoy's own XFCC reader
//! (`source/extensions/formatter/xfcc_value`) also unescapes `\\` to `\` and
//! decides whether a `"` is escaped by counting the backslashes before it,
//! so a backslash must be escaped too, or a value ending in `\` would
//! swallow its closing quote.
//!
//! [`render_element`] produces
//! `Hash=<hex>;Cert="<url-encoded PEM>";Subject="<dn>";URI=<uri>;…;DNS=<dns>;…`
//! and guarantees:
//!
//! * **No injection.** Every value that contains `,` `;` `=` `"` `\` or
//!   whitespace is double-quoted with `\` → `\\` and `"` → `\"`
//!   ([`value`]); `Cert` and `Subject` are always quoted, as Envoy does. A
//!   SAN such as `https://x/p;URI=spiffe://evil/admin,By=spiffe://evil/x`
//!   therefore stays one value of one key of one element.
//! * **A valid header value.** The output is printable ASCII only. The
//!   subject, an RFC 4514 string, has any non-ASCII or control character
//!   rewritten as RFC 4514 `\XX` hex escapes of its UTF-8 bytes (an
//!   equivalent DN, as OpenSSL prints it). A URI or DNS SAN that contains a
//!   control or non-ASCII character is **left out** (such a SAN is invalid —
//!   IA5String URIs and DNS names are printable ASCII — and there is no
//!   lossless way to carry it).
//! * **One key per SAN.** Each URI and DNS SAN is its own `URI=` / `DNS=`
//!   pair, in certificate order.
//! * `Hash` is the lowercase hex SHA-256 of the certificate DER; `Cert` is
//!   its PEM (LF line endings) with every byte other than `A-Z a-z 0-9 - . _ ~`
//!   percent-encoded.

use std::borrow::Cow;
use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What one XFCC element describes: the client's leaf certificate.
#[derive(Debug, Clone, Copy)]
pub struct ClientCert<'a> {
    /// The certificate's DER encoding.
    pub der: &'a [u8],
    /// Its subject as an RFC 4514 string (see `sigil_pki::dn`).
    pub subject: &'a str,
    /// Its URI subject alternative names, in certificate order.
    pub uri_sans: &'a [String],
    /// Its DNS subject alternative names, in certificate order.
    pub dns_sans: &'a [String],
}

/// Renders the XFCC element for `cert`. See the module documentation for
/// the format and guarantees.
pub fn render_element(cert: &ClientCert<'_>) -> String {
    let mut out = String::with_capacity(cert.der.len() * 2 + 256);
    let _ = write!(
        out,
        "Hash={};Cert={};Subject={}",
        sha256_hex(cert.der),
        quoted(&url_encoded_pem(cert.der)),
        quoted(&dn_ascii(cert.subject)),
    );
    for (key, sans) in [("URI", cert.uri_sans), ("DNS", cert.dns_sans)] {
        for san in sans.iter().filter(|s| is_printable_ascii(s)) {
            let _ = write!(out, ";{key}={}", value(san));
        }
    }
    out
}

/// An XFCC value: as-is when it holds none of `,` `;` `=` `"` `\` or
/// whitespace, else [`quoted`].
pub fn value(text: &str) -> Cow<'_, str> {
    let needs_quotes = text
        .bytes()
        .any(|b| matches!(b, b',' | b';' | b'=' | b'"' | b'\\') || b.is_ascii_whitespace());
    if needs_quotes {
        Cow::Owned(quoted(text))
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` in double quotes, with `\` written `\\` and `"` written `\"`.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Lowercase hex SHA-256 of `der`.
pub fn sha256_hex(der: &[u8]) -> String {
    sigil_pki::fingerprint_sha256_hex(der)
}

/// Bytes left as they are in the URL-encoded PEM: RFC 3986 unreserved.
const URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The certificate as PEM (LF line endings), URL-encoded.
pub fn url_encoded_pem(der: &[u8]) -> String {
    let pem = sigil_pki::encode_pem("CERTIFICATE", der);
    utf8_percent_encode(&pem, URL_ENCODE).to_string()
}

/// The DN with every non-ASCII or control character written as RFC 4514
/// `\XX` escapes of its UTF-8 bytes.
fn dn_ascii(dn: &str) -> Cow<'_, str> {
    if is_printable_ascii(dn) {
        return Cow::Borrowed(dn);
    }
    let mut out = String::with_capacity(dn.len() * 2);
    for c in dn.chars() {
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\{b:02X}");
            }
        }
    }
    Cow::Owned(out)
}

fn is_printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `input` on `sep` outside double quotes; inside quotes `\`
    /// escapes the next character (Envoy's backslash counting).
    fn split_outside_quotes(input: &str, sep: char) -> Result<Vec<&str>, String> {
        let mut parts = Vec::new();
        let (mut start, mut in_quotes, mut escaped) = (0, false, false);
        for (i, c) in input.char_indices() {
            if escaped {
                escaped = false;
            } else if in_quotes && c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = !in_quotes;
            } else if c == sep && !in_quotes {
                parts.push(&input[start..i]);
                start = i + c.len_utf8();
            }
        }
        if in_quotes {
            return Err(format!("unterminated quote in {input:?}"));
        }
        parts.push(&input[start..]);
        Ok(parts)
    }

    /// Reads a value: a quoted value is unescaped; a bare one must not
    /// contain a quote.
    fn unquote(raw: &str) -> Result<String, String> {
        let Some(inner) = raw.strip_prefix('"') else {
            return if raw.contains('"') {
                Err(format!("stray quote in {raw:?}"))
            } else {
                Ok(raw.to_string())
            };
        };
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| format!("bad quoting {raw:?}"))?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(next @ ('"' | '\\')) => out.push(next),
                    Some(other) => return Err(format!("unknown escape \\{other}")),
                    None => return Err("dangling backslash".into()),
                },
                '"' => return Err(format!("unescaped quote inside {raw:?}")),
                c => out.push(c),
            }
        }
        Ok(out)
    }

    type Element = Vec<(String, String)>;

    /// A strict XFCC parser: elements of `key=value` pairs.
    fn parse(header: &str) -> Result<Vec<Element>, String> {
        split_outside_quotes(header, ',')?
            .into_iter()
            .map(|element| {
                split_outside_quotes(element, ';')?
                    .into_iter()
                    .map(|pair| {
                        let (key, raw) = pair
                            .split_once('=')
                            .ok_or_else(|| format!("no '=' in {pair:?}"))?;
                        Ok((key.to_string(), unquote(raw)?))
                    })
                    .collect()
            })
            .collect()
    }

    fn keys(element: &Element) -> Vec<&str> {
        element.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn leaf() -> rcgen::Certificate {
        let key = rcgen::KeyPair::generate().expect("key");
        rcgen::CertificateParams::new(vec!["x.alpha.example".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert")
    }

    #[test]
    fn value_quoting_rule() {
        let cases = [
            (
                "spiffe://sigil.local/w/writer",
                "spiffe://sigil.local/w/writer",
            ),
            ("x.alpha.example", "x.alpha.example"),
            ("", ""),
            ("a,b", r#""a,b""#),
            ("a;b", r#""a;b""#),
            ("a=b", r#""a=b""#),
            (r#"a"b"#, r#""a\"b""#),
            (r"a\b", r#""a\\b""#),
            (r"ends\", r#""ends\\""#),
            ("a b", r#""a b""#),
            (r#"\";URI=x"#, r#""\\\";URI=x""#),
        ];
        for (input, want) in cases {
            assert_eq!(value(input), want, "{input:?}");
            assert_eq!(unquote(&value(input)), Ok(input.to_string()), "{input:?}");
        }
    }

    #[test]
    fn element_layout() {
        let cert = leaf();
        let der = cert.der().as_ref();
        let uris = vec![
            "spiffe://sigil.local/w/a".to_string(),
            "https://x.alpha.example/".to_string(),
        ];
        let dns = vec!["x.alpha.example".to_string(), "y.alpha.example".to_string()];
        let header = render_element(&ClientCert {
            der,
            subject: "CN=dev,O=Acme",
            uri_sans: &uris,
            dns_sans: &dns,
        });
        let elements = parse(&header).expect("parses");
        assert_eq!(elements.len(), 1);
        let e = &elements[0];
        assert_eq!(
            keys(e),
            ["Hash", "Cert", "Subject", "URI", "URI", "DNS", "DNS"]
        );
        assert_eq!(e[0].1, sha256_hex(der));
        assert_eq!(e[0].1.len(), 64);
        assert!(header.contains(";Subject=\"CN=dev,O=Acme\";"));
        assert_eq!(e[3].1, uris[0]);
        assert_eq!(e[4].1, uris[1]);
        assert_eq!(e[5].1, dns[0]);
        assert_eq!(e[6].1, dns[1]);
        // Cert is quoted, URL-encoded PEM that decodes back to the DER.
        assert!(header.contains(";Cert=\"-----BEGIN%20CERTIFICATE-----%0A"));
        let pem_text = percent_encoding::percent_decode_str(&e[1].1)
            .decode_utf8()
            .expect("utf8");
        let parsed = pem::parse(pem_text.as_bytes()).expect("pem");
        assert_eq!(parsed.contents(), der);
    }

    #[test]
    fn sans_cannot_inject_elements_or_keys() {
        let cert = leaf();
        let hostile_uris = [
            "https://x.alpha.example/p;URI=spiffe://evil/admin,By=spiffe://evil/x",
            r#"https://x.alpha.example/"quoted";URI=spiffe://evil/admin"#,
            r#"https://x.alpha.example/\";URI=spiffe://evil/admin,By=x"#,
            r"https://x.alpha.example/trailing\",
            "https://x.alpha.example/a=b",
            "https://x.alpha.example/a;b",
            "https://x.alpha.example/a,b",
            "https://x.alpha.example/a b",
        ];
        for uri in hostile_uris {
            let uris = vec![uri.to_string()];
            let dns = vec!["x.alpha.example".to_string()];
            let header = render_element(&ClientCert {
                der: cert.der(),
                subject: "CN=x",
                uri_sans: &uris,
                dns_sans: &dns,
            });
            let elements = parse(&header).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(elements.len(), 1, "{uri} made a second element: {header}");
            let e = &elements[0];
            assert_eq!(keys(e), ["Hash", "Cert", "Subject", "URI", "DNS"], "{uri}");
            assert_eq!(e[3].1, uri);
            assert_eq!(e[4].1, "x.alpha.example");
        }
    }

    #[test]
    fn subject_cannot_inject_and_is_ascii() {
        let cert = leaf();
        let cases = [
            (
                r#"CN=dev \"one\"\, O=Admin,O=Acme\, Inc."#,
                r#"CN=dev \"one\"\, O=Admin,O=Acme\, Inc."#,
            ),
            (
                r#"CN=x\"\;URI=spiffe://evil"#,
                r#"CN=x\"\;URI=spiffe://evil"#,
            ),
            (r"CN=ends\\", r"CN=ends\\"),
            ("L=Zürich", r"L=Z\C3\BCrich"),
            ("CN=a\u{7f}b", r"CN=a\7Fb"),
        ];
        for (subject, want) in cases {
            let header = render_element(&ClientCert {
                der: cert.der(),
                subject,
                uri_sans: &[],
                dns_sans: &[],
            });
            let elements = parse(&header).unwrap_or_else(|e| panic!("{subject}: {e}"));
            assert_eq!(elements.len(), 1, "{subject}");
            assert_eq!(keys(&elements[0]), ["Hash", "Cert", "Subject"], "{subject}");
            assert_eq!(elements[0][2].1, want, "{subject}");
        }
    }

    #[test]
    fn output_is_a_valid_header_value() {
        let cert = leaf();
        let uris = vec![
            "spiffe://ok/a".to_string(),
            "spiffe://bad/\r\nX-Evil: 1".to_string(),
            "spiffe://bad/\u{e9}".to_string(),
            "spiffe://bad/\0".to_string(),
        ];
        let dns = vec!["ok.example".to_string(), "bad\n.example".to_string()];
        let header = render_element(&ClientCert {
            der: cert.der(),
            subject: "CN=Grüße\u{202e}",
            uri_sans: &uris,
            dns_sans: &dns,
        });
        assert!(
            header.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{header}"
        );
        let elements = parse(&header).expect("parses");
        assert_eq!(
            keys(&elements[0]),
            ["Hash", "Cert", "Subject", "URI", "DNS"]
        );
        assert_eq!(elements[0][3].1, "spiffe://ok/a");
        assert_eq!(elements[0][4].1, "ok.example");
        assert_eq!(elements[0][2].1, r"CN=Gr\C3\BC\C3\9Fe\E2\80\AE");
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn test_parser_rejects_what_it_should() {
        // Guard the guard: the parser used above really detects injection.
        assert_eq!(parse("A=1;B=2,C=3").map(|e| e.len()), Ok(2));
        assert!(parse(r#"A="unterminated"#).is_err());
        assert!(parse(r#"A=x"y"#).is_err());
        let naive = "URI=https://x/p;URI=spiffe://evil/admin,By=spiffe://evil/x";
        let parsed = parse(naive).expect("parses");
        assert_eq!(parsed.len(), 2);
        assert_eq!(keys(&parsed[0]), ["URI", "URI"]);
    }
}
