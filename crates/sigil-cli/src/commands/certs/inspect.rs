//! A human-readable report about a certificate file (`sigil certs inspect`).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use sigil_pki::{
    CertError, CertificateDetails, EXPIRY_WARNING_SECS, format_rfc3339, load_ca_bundle, load_chain,
    provider,
};

/// Describes the certificate(s) in `path` and, when `ca` is given, verifies
/// the chain against that CA bundle with rustls' webpki verifiers (as a
/// client certificate, a server certificate, or both, following its EKU).
///
/// `now` is unix seconds. Verification failures are part of the report
/// (`verified (...): FAILED: <reason>`); only unusable files are errors.
pub fn inspect(path: &Path, ca: Option<&Path>, now: i64) -> Result<String, CertError> {
    let chain = load_chain(path)?;
    let mut out = String::new();
    let n = chain.len();
    let _ = writeln!(
        out,
        "{}: {n} certificate{}",
        path.display(),
        if n == 1 { "" } else { "s" }
    );
    let leaf_details = CertificateDetails::from_der(&chain[0])?;
    describe(&mut out, &leaf_details, now, "");
    for (i, der) in chain.iter().enumerate().skip(1) {
        let d = CertificateDetails::from_der(der)?;
        let _ = writeln!(out, "\nchain certificate #{}:", i + 1);
        describe(&mut out, &d, now, "  ");
    }
    if let Some(ca_path) = ca {
        let roots = load_ca_bundle(ca_path)?;
        let _ = writeln!(out);
        for (label, result) in verify(&chain, &leaf_details, roots, ca_path, now)? {
            let _ = writeln!(out, "verified ({label}): {result}");
        }
    }
    Ok(out)
}

fn describe(out: &mut String, d: &CertificateDetails, now: i64, indent: &str) {
    let list = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(out, "{indent}{k:<13}{v}");
    };
    line("subject:", &d.subject_dn);
    line("issuer:", &d.issuer_dn);
    line("DNS SANs:", &list(&d.dns_sans));
    line("IP SANs:", &list(&d.ip_sans));
    line("URI SANs:", &list(&d.uri_sans));
    line("SPIFFE ID:", d.spiffe_id.as_deref().unwrap_or("(none)"));
    line("serial:", &d.serial_hex);
    line("SHA-256:", &d.fingerprint_sha256_hex);
    line("not before:", &format_rfc3339(d.not_before));
    line(
        "not after:",
        &format!("{} ({})", format_rfc3339(d.not_after), status(d, now)),
    );
    line("key type:", &d.key_type);
    line(
        "kind:",
        if d.is_ca {
            "CA certificate"
        } else {
            "leaf certificate (not a CA)"
        },
    );
    let usage = if d.extended_key_usages.is_empty() {
        "any (no extended key usage)".to_string()
    } else {
        d.extended_key_usages.join(", ")
    };
    line("usage:", &usage);
}

fn status(d: &CertificateDetails, now: i64) -> String {
    const DAY: i64 = 24 * 60 * 60;
    if now < d.not_before {
        let days = (d.not_before - now).div_euclid(DAY);
        format!("NOT YET VALID: starts in {days} days")
    } else if now > d.not_after {
        let days = (now - d.not_after).div_euclid(DAY);
        format!("EXPIRED {days} days ago")
    } else {
        let days = (d.not_after - now).div_euclid(DAY);
        let warn = if d.not_after - now <= EXPIRY_WARNING_SECS {
            ", renew soon"
        } else {
            ""
        };
        format!("expires in {days} days{warn}")
    }
}

/// (what was verified, `SUCCESS` or `FAILED: <reason>`)
type Outcome = (String, String);

/// Why the CA that would anchor `chain` cannot, when every certificate of
/// `roots` named as its issuer is expired or not yet valid. webpki does not
/// check a trust anchor's dates, but OpenSSL, nginx and Python do.
fn anchor_out_of_date(
    chain: &[CertificateDer<'static>],
    roots: &[CertificateDer<'static>],
    ca_path: &Path,
    now: i64,
) -> Result<Option<String>, CertError> {
    let Some(top) = chain.last() else {
        return Ok(None);
    };
    let issuer = CertificateDetails::from_der(top)?.issuer_dn;
    let mut anchors = Vec::new();
    for root in roots {
        let d = CertificateDetails::from_der(root)?;
        if d.subject_dn == issuer {
            anchors.push(d);
        }
    }
    if anchors.iter().any(|d| d.out_of_date(now).is_none()) {
        return Ok(None);
    }
    Ok(anchors.first().and_then(|d| {
        let why = d.out_of_date(now)?;
        Some(format!(
            "the CA certificate {} in {} {why}; OpenSSL, nginx and Python refuse the chain \
             (\"certificate has expired\" or \"is not yet valid\" at the CA); renew the CA",
            d.subject_dn,
            ca_path.display()
        ))
    }))
}

fn verify(
    chain: &[CertificateDer<'static>],
    leaf: &CertificateDetails,
    roots: Vec<CertificateDer<'static>>,
    ca_path: &Path,
    now: i64,
) -> Result<Vec<Outcome>, CertError> {
    let anchor_problem = anchor_out_of_date(chain, &roots, ca_path, now)?;
    let mut store = rustls::RootCertStore::empty();
    for (i, root) in roots.into_iter().enumerate() {
        store.add(root).map_err(|e| CertError::BadCertificate {
            path: ca_path.to_path_buf(),
            index: i + 1,
            detail: format!("not usable as a trust anchor: {e}"),
        })?;
    }
    let store = Arc::new(store);
    let bad_ca = |e: rustls::server::VerifierBuilderError| CertError::BadCa {
        what: ca_path.display().to_string(),
        detail: e.to_string(),
    };
    let time = UnixTime::since_unix_epoch(Duration::from_secs(now.max(0) as u64));
    let intermediates = &chain[1..];
    let result = |r: Result<(), rustls::Error>| match (r, &anchor_problem) {
        (Ok(()), None) => "SUCCESS".to_string(),
        (Ok(()), Some(problem)) => format!("FAILED: {problem}"),
        (Err(e), _) => format!("FAILED: {e}"),
    };
    let mut out = Vec::new();
    // No EKU extension means "any": verify as a client certificate.
    let as_server = !leaf.extended_key_usages.is_empty() && leaf.allows_server_auth();
    let as_client = leaf.allows_client_auth() || !as_server;
    if as_client {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            store.clone(),
            provider().clone(),
        )
        .build()
        .map_err(bad_ca)?;
        let r = verifier
            .verify_client_cert(&chain[0], intermediates, time)
            .map(|_| ());
        out.push(("client certificate".to_string(), result(r)));
    }
    if as_server {
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(store, provider().clone())
                .build()
                .map_err(bad_ca)?;
        let name = leaf.dns_sans.first().or(leaf.ip_sans.first());
        let outcome = match name.map(|n| ServerName::try_from(n.clone())) {
            Some(Ok(sn)) => {
                let r = verifier
                    .verify_server_cert(&chain[0], intermediates, &sn, &[], time)
                    .map(|_| ());
                (format!("server certificate for {}", sn.to_str()), result(r))
            }
            _ => (
                "server certificate".to_string(),
                "FAILED: no usable DNS or IP SAN to verify a server name against".to_string(),
            ),
        };
        out.push(outcome);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::test_dir::TempDir;
    use super::*;
    use sigil_pki::{CertUsage, CertificateAuthority, IssueRequest, unix_now};

    #[test]
    fn report_and_verification() {
        let dir = TempDir::new("inspect");
        let ca = CertificateAuthority::generate("Inspect CA", 60).unwrap();
        let other = CertificateAuthority::generate("Other CA", 30).unwrap();
        let mut req = IssueRequest::new(
            "writer",
            CertUsage::ClientAuth,
            Duration::from_secs(30 * 86400 + 3600),
        );
        req.uri_sans = vec!["spiffe://sigil.local/worker/writer".into()];
        let leaf = ca.issue(&req).unwrap();
        let cert = dir.write("writer.pem", &leaf.cert_pem);
        let ca_file = dir.write("ca.pem", ca.cert_pem());
        let other_file = dir.write("other.pem", other.cert_pem());

        let report = inspect(&cert, Some(&ca_file), unix_now()).unwrap();
        for want in [
            "1 certificate",
            "CN=writer",
            "CN=Inspect CA",
            "spiffe://sigil.local/worker/writer",
            &leaf.serial_hex,
            "expires in 30 days",
            "ECDSA P-256",
            "leaf certificate",
            "verified (client certificate): SUCCESS",
        ] {
            assert!(report.contains(want), "missing {want:?} in\n{report}");
        }
        let report = inspect(&cert, Some(&other_file), unix_now()).unwrap();
        assert!(
            report.contains("verified (client certificate): FAILED:"),
            "{report}"
        );

        let report = inspect(&cert, None, unix_now() + 41 * 86400).unwrap();
        assert!(report.contains("EXPIRED 10 days ago"), "{report}");
        assert!(!report.contains("verified"));

        let empty = dir.write("empty.pem", "");
        let err = inspect(&cert, Some(&empty), unix_now()).unwrap_err();
        assert!(
            err.to_string().contains("contains no certificates"),
            "{err}"
        );
    }

    #[test]
    fn server_certificates_are_verified_as_servers() {
        let dir = TempDir::new("inspect-server");
        let ca = CertificateAuthority::generate("Server CA", 30).unwrap();
        let mut req = IssueRequest::new(
            "pay.alpha.example",
            CertUsage::ServerAuth,
            Duration::from_secs(86400),
        );
        req.dns_sans = vec!["pay.alpha.example".into()];
        let leaf = ca.issue(&req).unwrap();
        let cert = dir.write("srv.pem", &leaf.cert_pem);
        let ca_file = dir.write("ca.pem", ca.cert_pem());
        let report = inspect(&cert, Some(&ca_file), unix_now()).unwrap();
        assert!(
            report.contains("verified (server certificate for pay.alpha.example): SUCCESS"),
            "{report}"
        );
        assert!(!report.contains("client certificate)"), "{report}");
    }
}
