//! Loading PEM certificate chains, private keys, CA bundles and CRLs.
//!
//! All loaders read the whole file first, so that I/O errors and PEM errors
//! are reported separately and every error names the file.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::CertError;

/// PEM text of one DER object, e.g. `encode_pem("CERTIFICATE", der)`: 64
/// characters of base64 per line, `\n` line endings.
pub fn encode_pem(label: &str, der: &[u8]) -> String {
    let block = ::pem::Pem::new(label, der.to_vec());
    ::pem::encode_config(
        &block,
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}

/// Reads a PEM file (a regular file of at most
/// [`MAX_PEM_BYTES`](crate::fs::MAX_PEM_BYTES)), mapping I/O errors to
/// [`CertError::Read`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, CertError> {
    read_capped(path, crate::fs::MAX_PEM_BYTES)
}

/// Reads a regular file of at most `max` bytes, mapping I/O errors to
/// [`CertError::Read`].
fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, CertError> {
    crate::fs::read_regular(path, max).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        cause: source,
    })
}

/// A PEM parser error in words (the parser's own text prints the marker or
/// line as a byte array).
fn pem_error_in_words(e: &pem::Error) -> String {
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .trim_end()
            .chars()
            .take(80)
            .flat_map(char::escape_default)
            .collect::<String>()
    };
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a section has no end line (expected \"-----END {}-----\"); the file may be cut short",
            text(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("a \"-----BEGIN\" line is malformed: \"{}\"", text(line))
        }
        pem::Error::Base64Decode(detail) => match invalid_base64_byte(detail) {
            Some(b) => format!(
                "a section's body is not valid base64: it holds {} (header lines, or text pasted into the block?)",
                match b {
                    0x21..=0x7e => format!("the character '{}'", b as char),
                    _ => format!("the byte 0x{b:02x}"),
                }
            ),
            None => format!("a section's body is not valid base64 ({detail})"),
        },
        pem::Error::SectionTooLarge => "a section is larger than 256 MB".into(),
        other => other.to_string(),
    }
}

/// The byte the base64 decoder refused, from its `InvalidCharacter(N)`.
fn invalid_base64_byte(detail: &str) -> Option<u8> {
    let start = detail.find("InvalidCharacter(")? + "InvalidCharacter(".len();
    let end = start + detail[start..].find(')')?;
    detail[start..end].parse().ok()
}

/// Splits PEM text into its recognised sections (unknown labels are skipped).
/// A UTF-8 byte-order mark (Windows editors write one) is skipped, as
/// OpenSSL does.
fn sections(bytes: &[u8], path: &Path) -> Result<Vec<(SectionKind, Vec<u8>)>, CertError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| CertError::Pem {
            path: path.to_path_buf(),
            detail: pem_error_in_words(&e),
        })
}

fn contains(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Checks that a certificate is well-formed X.509 DER.
fn check_certificate_der(der: &[u8], path: &Path, index: usize) -> Result<(), CertError> {
    x509_parser::parse_x509_certificate(der)
        .map(|_| ())
        .map_err(|e| CertError::BadCertificate {
            path: path.to_path_buf(),
            index,
            detail: e.to_string(),
        })
}

/// Parses a PEM certificate chain held in memory; `path` is only used in
/// error messages.
///
/// Every `CERTIFICATE` block is returned in file order (leaf first, by
/// convention) after checking that it parses as X.509.
pub fn parse_chain(bytes: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let sections = sections(bytes, path)?;
    let mut chain = Vec::new();
    let mut saw_key = false;
    for (kind, der) in sections {
        match kind {
            SectionKind::Certificate => {
                check_certificate_der(&der, path, chain.len() + 1)?;
                chain.push(CertificateDer::from(der));
            }
            SectionKind::PrivateKey | SectionKind::EcPrivateKey | SectionKind::RsaPrivateKey => {
                saw_key = true;
            }
            _ => {}
        }
    }
    if chain.is_empty() {
        let hint = if saw_key {
            " (it holds a private key: are the certificate and key paths swapped?)"
        } else if bytes.first() == Some(&0x30) {
            " (it looks like DER: convert it with `openssl x509 -inform der -in <file> -out <file>.pem`)"
        } else {
            ""
        };
        return Err(CertError::NoCertificates {
            path: path.to_path_buf(),
            hint: hint.to_string(),
        });
    }
    Ok(chain)
}

/// Loads a PEM certificate chain (leaf first) from `path`.
///
/// Fails if the file is missing or unreadable, holds no `CERTIFICATE` block,
/// or holds a block that is not valid X.509.
pub fn load_chain(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let path = path.as_ref();
    parse_chain(&read_file(path)?, path)
}

/// Parses a PEM private key held in memory; `path` is only used in error
/// messages.
///
/// Accepts PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) and SEC1
/// (`EC PRIVATE KEY`). The first key in the file is returned.
pub fn parse_private_key(bytes: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    // Before the PEM parser: an OpenSSL "traditional" encrypted key
    // (`Proc-Type: 4,ENCRYPTED` and `DEK-Info:` header lines inside the
    // block) is not base64, and its error would hide what is wrong.
    if contains(bytes, "Proc-Type: 4,ENCRYPTED") {
        return Err(CertError::EncryptedKey {
            path: path.to_path_buf(),
        });
    }
    let sections = sections(bytes, path)?;
    let mut saw_cert = false;
    for (kind, der) in sections {
        match kind {
            SectionKind::PrivateKey => return Ok(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::RsaPrivateKey => return Ok(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::EcPrivateKey => return Ok(PrivateKeyDer::Sec1(der.into())),
            SectionKind::Certificate => saw_cert = true,
            _ => {}
        }
    }
    if contains(bytes, "-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(bytes, "Proc-Type: 4,ENCRYPTED")
    {
        return Err(CertError::EncryptedKey {
            path: path.to_path_buf(),
        });
    }
    let hint = if saw_cert {
        " (it holds a certificate: are the certificate and key paths swapped?)"
    } else {
        ""
    };
    Err(CertError::NoPrivateKey {
        path: path.to_path_buf(),
        hint: hint.to_string(),
    })
}

/// Loads a PEM private key (PKCS#8, PKCS#1 or SEC1) from `path`.
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, CertError> {
    let path = path.as_ref();
    parse_private_key(&read_file(path)?, path)
}

/// Loads a CA bundle: one or more PEM certificates that are trust anchors.
///
/// Fails with a "contains no certificates" error when the file holds none.
pub fn load_ca_bundle(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let path = path.as_ref();
    match parse_chain(&read_file(path)?, path) {
        Err(CertError::NoCertificates { .. }) => Err(CertError::EmptyCaBundle {
            path: path.to_path_buf(),
        }),
        other => other,
    }
}

/// Parses CRLs held in memory: PEM `X509 CRL` blocks, or a single DER CRL.
/// `path` is only used in error messages.
pub fn parse_crls(
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, CertError> {
    let ders: Vec<Vec<u8>> = if bytes.first() == Some(&0x30) {
        vec![bytes.to_vec()]
    } else {
        sections(bytes, path)?
            .into_iter()
            .filter(|(kind, _)| *kind == SectionKind::Crl)
            .map(|(_, der)| der)
            .collect()
    };
    if ders.is_empty() {
        return Err(CertError::NoCrls {
            path: path.to_path_buf(),
        });
    }
    let mut crls = Vec::with_capacity(ders.len());
    for (i, der) in ders.into_iter().enumerate() {
        check_crl_der(&der, path, i + 1)?;
        crls.push(CertificateRevocationListDer::from(der));
    }
    Ok(crls)
}

/// Checks that a CRL is well-formed DER.
fn check_crl_der(der: &[u8], path: &Path, index: usize) -> Result<(), CertError> {
    use x509_parser::prelude::FromDer;
    use x509_parser::revocation_list::CertificateRevocationList;
    let detail = match CertificateRevocationList::from_der(der) {
        Ok(([], _)) => return Ok(()),
        Ok(_) => "trailing data after the CRL".to_string(),
        Err(e) => e.to_string(),
    };
    Err(CertError::BadCrl {
        path: path.to_path_buf(),
        index,
        detail,
    })
}

/// Loads certificate revocation lists from `path`: PEM `X509 CRL` blocks or a
/// single DER-encoded CRL.
pub fn load_crls(
    path: impl AsRef<Path>,
) -> Result<Vec<CertificateRevocationListDer<'static>>, CertError> {
    let path = path.as_ref();
    parse_crls(&read_capped(path, crate::fs::MAX_CRL_BYTES)?, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{CertUsage, CertificateAuthority, IssueRequest};
    use crate::test_util::TempDir;
    use std::time::Duration;

    #[test]
    fn a_byte_order_mark_before_the_pem_is_skipped() {
        // Before: "contains no certificates", while OpenSSL read the file.
        let ca = CertificateAuthority::generate("BOM CA", 30).unwrap();
        let issued = ca
            .issue(&IssueRequest::new(
                "bom",
                CertUsage::ClientAuth,
                Duration::from_secs(3600),
            ))
            .unwrap();
        let with_bom = |pem: &str| [b"\xEF\xBB\xBF".as_slice(), pem.as_bytes()].concat();
        let path = Path::new("bom.pem");
        assert_eq!(
            parse_chain(&with_bom(&issued.cert_pem), path)
                .unwrap()
                .len(),
            1
        );
        parse_private_key(&with_bom(&issued.key_pem), path).unwrap();
    }

    #[test]
    fn missing_file_is_named() {
        let err = load_chain("/nonexistent/sigil/x.pem").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("/nonexistent/sigil/x.pem: cannot read file"),
            "{msg}"
        );
    }

    #[test]
    fn chain_and_keys_round_trip() {
        let dir = TempDir::new("pem-roundtrip");
        let ca = CertificateAuthority::generate("Test CA", 30).unwrap();
        let leaf = ca
            .issue(&IssueRequest::new(
                "leaf",
                CertUsage::ClientAuth,
                Duration::from_secs(3600),
            ))
            .unwrap();
        let cert = dir.write("leaf.pem", format!("{}{}", leaf.cert_pem, ca.cert_pem()));
        let key = dir.write("leaf.key", &leaf.key_pem);
        let chain = load_chain(&cert).unwrap();
        assert_eq!(chain.len(), 2);
        assert!(matches!(
            load_private_key(&key).unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));

        // Swapped files are diagnosed.
        let msg = load_chain(&key).unwrap_err().to_string();
        assert!(msg.contains("swapped"), "{msg}");
        let msg = load_private_key(&cert).unwrap_err().to_string();
        assert!(msg.contains("swapped"), "{msg}");
    }

    #[test]
    fn sec1_and_pkcs1_keys() {
        let dir = TempDir::new("pem-keys");
        let sec1 = dir.write(
            "sec1.key",
            "-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n",
        );
        assert!(matches!(
            load_private_key(&sec1).unwrap(),
            PrivateKeyDer::Sec1(_)
        ));
        let pkcs1 = dir.write(
            "rsa.key",
            "-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n",
        );
        assert!(matches!(
            load_private_key(&pkcs1).unwrap(),
            PrivateKeyDer::Pkcs1(_)
        ));
        let enc = dir.write(
            "enc.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        assert!(matches!(
            load_private_key(&enc).unwrap_err(),
            CertError::EncryptedKey { .. }
        ));
        let empty = dir.write("empty.key", "");
        assert!(matches!(
            load_private_key(&empty).unwrap_err(),
            CertError::NoPrivateKey { .. }
        ));
        // OpenSSL's traditional encryption (`openssl genrsa -aes256`):
        // header lines in the block. Before: "malformed PEM: ... not valid
        // base64 (InvalidCharacter(45))".
        let traditional = dir.write(
            "trad.key",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nMAA=\n-----END RSA PRIVATE KEY-----\n",
        );
        let err = load_private_key(&traditional).unwrap_err();
        assert!(matches!(err, CertError::EncryptedKey { .. }), "{err}");
    }

    #[test]
    fn ca_bundle_with_no_certs() {
        let dir = TempDir::new("pem-ca");
        let path = dir.write("ca.pem", "# nothing here\n");
        let msg = load_ca_bundle(&path).unwrap_err().to_string();
        assert!(msg.contains("contains no certificates"), "{msg}");
        assert!(msg.contains("ca.pem"), "{msg}");
    }

    #[test]
    fn garbage_certificate_is_rejected() {
        let dir = TempDir::new("pem-garbage");
        let path = dir.write(
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        );
        let err = load_chain(&path).unwrap_err();
        assert!(
            matches!(err, CertError::BadCertificate { index: 1, .. }),
            "{err}"
        );
        let path = dir.write(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!notbase64\n-----END CERTIFICATE-----\n",
        );
        let err = load_chain(&path).unwrap_err();
        assert!(matches!(err, CertError::Pem { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("not valid base64: it holds the character '!'"),
            "{err}"
        );
        // A file cut short names the missing line in words, not bytes.
        let cut = dir.write("cut.pem", "-----BEGIN CERTIFICATE-----\nMAA=\n");
        let msg = load_chain(&cut).unwrap_err().to_string();
        assert!(
            msg.contains("no end line (expected \"-----END CERTIFICATE-----\")"),
            "{msg}"
        );
        assert!(!msg.contains("[45"), "{msg}");
    }

    #[test]
    fn crls_pem_and_der() {
        let dir = TempDir::new("pem-crl");
        let ca = CertificateAuthority::generate("CRL CA", 30).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let pem = ca
            .issue_crl(&[vec![1, 2, 3]], now, now + time::Duration::days(1))
            .unwrap();
        let p = dir.write("crl.pem", &pem);
        let crls = load_crls(&p).unwrap();
        assert_eq!(crls.len(), 1);
        let d = dir.write("crl.der", crls[0].as_ref());
        assert_eq!(load_crls(&d).unwrap(), crls);
        let none = dir.write("none.pem", "");
        assert!(matches!(
            load_crls(&none).unwrap_err(),
            CertError::NoCrls { .. }
        ));
        let bad = dir.write("bad.der", [0x30u8, 0x03, 1, 2, 3]);
        assert!(matches!(
            load_crls(&bad).unwrap_err(),
            CertError::BadCrl { .. }
        ));
    }
}
