//! `sigil certs ...` run as the real binary: the development PKI, a CA of
//! your own, issuing a SPIFFE client certificate, inspecting and verifying it.

use crate::support::sigil::binary;
use crate::support::temp_dir;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};
use x509_parser::prelude::*;

/// Run `sigil <args>`; (success, stdout, stderr).
fn sigil(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run sigil");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run `sigil <args>` and require success; returns stdout.
fn sigil_ok(args: &[&str]) -> String {
    let (ok, out, err) = sigil(args);
    assert!(ok, "sigil {args:?} failed:\n{out}\n{err}");
    out
}

/// Every file in `dir`: name → (contents, mtime).
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                (std::fs::read(e.path()).unwrap(), meta.modified().unwrap()),
            )
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The leaf of a PEM file: (serial as upper-case hex, SHA-256 of the DER as
/// lower-case hex, URI SANs).
fn leaf_facts(pem: &Path) -> (String, String, Vec<String>) {
    let der = CertificateDer::pem_file_iter(pem)
        .unwrap()
        .next()
        .expect("a certificate")
        .unwrap();
    let (_, cert) = X509Certificate::from_der(der.as_ref()).unwrap();
    let serial = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<String>();
    let sha = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let uris = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::URI(u) => Some(u.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    (serial, sha, uris)
}

/// Lower-case hex without separators, for comparing hex however it is printed.
fn hex_norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The value of the report line starting with `key` (e.g. `"SPIFFE ID:"`).
fn field<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key:?} line in\n{report}"))
}

#[test]
fn init_creates_the_dev_pki_once_and_force_recreates_it() {
    let tmp = temp_dir();
    let dir = tmp.path().join("certs");
    let d = dir.to_str().unwrap();

    let out = sigil_ok(&["certs", "init", "--dir", d]);
    assert!(out.contains("created"), "{out}");
    for f in [
        "README.md",
        "identity-ca.pem",
        "identity-ca.key",
        "server-ca.pem",
        "localhost.pem",
        "origin.pem",
        "clients-ca.pem",
        "writer.pem",
        "writer.key",
        "reader.pem",
        "alpha-device.pem",
        "beta-device.key",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing after init:\n{out}");
    }
    let first = snapshot(&dir);
    let keys: Vec<&String> = first.keys().filter(|k| k.ends_with(".key")).collect();
    assert!(keys.len() >= 10, "{keys:?}");
    for k in &keys {
        assert_eq!(mode(&dir.join(k)), 0o600, "{k} must be private");
    }
    assert!(
        !first.keys().any(|k| k.contains(".tmp")),
        "temporary files left behind: {:?}",
        first.keys()
    );
    // The set is consistent: leaves verify against their CAs.
    let report = sigil_ok(&[
        "certs",
        "inspect",
        &format!("{d}/writer.pem"),
        "--ca",
        &format!("{d}/clients-ca.pem"),
    ]);
    assert!(report.contains(": SUCCESS"), "{report}");
    let report = sigil_ok(&[
        "certs",
        "inspect",
        &format!("{d}/localhost.pem"),
        "--ca",
        &format!("{d}/server-ca.pem"),
    ]);
    assert!(report.contains(": SUCCESS"), "{report}");

    // Again: nothing changes, and it says so.
    std::thread::sleep(Duration::from_millis(1100));
    let out = sigil_ok(&["certs", "init", "--dir", d]);
    assert!(out.contains("kept"), "{out}");
    assert!(!out.contains("created"), "{out}");
    let second = snapshot(&dir);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (name, (contents, mtime)) in &first {
        let (c2, m2) = &second[name];
        assert!(contents == c2, "{name} was rewritten by a second init");
        assert_eq!(mtime, m2, "{name} was touched by a second init");
    }

    // A missing leaf is re-issued from the existing CA; nothing else changes.
    std::fs::remove_file(dir.join("writer.pem")).unwrap();
    let out = sigil_ok(&["certs", "init", "--dir", d]);
    assert!(out.contains("writer.pem"), "{out}");
    let third = snapshot(&dir);
    for (name, (contents, _)) in &first {
        let changed = third[name].0 != *contents;
        let expected = name == "writer.pem" || name == "writer.key";
        assert_eq!(changed, expected, "{name}: changed={changed}\n{out}");
    }
    let report = sigil_ok(&[
        "certs",
        "inspect",
        &format!("{d}/writer.pem"),
        "--ca",
        &format!("{d}/clients-ca.pem"),
    ]);
    assert!(report.contains(": SUCCESS"), "{report}");

    // --force: every certificate and key is re-created.
    let out = sigil_ok(&["certs", "init", "--dir", d, "--force"]);
    assert!(out.contains("created"), "{out}");
    let forced = snapshot(&dir);
    for (name, (contents, _)) in &third {
        if name.ends_with(".pem") || name.ends_with(".key") {
            assert!(
                forced[name].0 != *contents,
                "{name} not re-created by --force"
            );
        }
    }
    for k in &keys {
        assert_eq!(mode(&dir.join(k)), 0o600, "{k} must stay private");
    }
    // The old CA no longer verifies the new leaves.
    let old_ca = tmp.path().join("old-clients-ca.pem");
    std::fs::write(&old_ca, &first["clients-ca.pem"].0).unwrap();
    let (ok, report, _) = sigil(&[
        "certs",
        "inspect",
        &format!("{d}/writer.pem"),
        "--ca",
        old_ca.to_str().unwrap(),
    ]);
    assert!(report.contains(": FAILED"), "{report}");
    assert!(
        !ok,
        "a failed verification must fail the command, like openssl verify"
    );
}

#[test]
fn ca_issue_and_inspect_a_spiffe_client_certificate() {
    let tmp = temp_dir();
    let p = |f: &str| tmp.path().join(f).display().to_string();
    let spiffe = "spiffe://sigil.local/worker/writer";

    let out = sigil_ok(&[
        "certs",
        "ca",
        "--cn",
        "Test Identity CA",
        "--days",
        "30",
        "--out-cert",
        &p("ca.pem"),
        "--out-key",
        &p("ca.key"),
    ]);
    assert!(out.contains("CN=Test Identity CA"), "{out}");
    assert_eq!(mode(Path::new(&p("ca.key"))), 0o600);
    sigil_ok(&[
        "certs",
        "ca",
        "--cn",
        "Other CA",
        "--out-cert",
        &p("other.pem"),
        "--out-key",
        &p("other.key"),
    ]);

    let (ca, ca_key, cert, key) = (p("ca.pem"), p("ca.key"), p("writer.pem"), p("writer.key"));
    let issue = |force: bool| {
        let mut args = vec![
            "certs",
            "issue",
            "--ca-cert",
            &ca,
            "--ca-key",
            &ca_key,
            "--cn",
            "writer",
            "--uri",
            spiffe,
            "--client",
            "--days",
            "10",
            "--out-cert",
            &cert,
            "--out-key",
            &key,
        ];
        if force {
            args.push("--force");
        }
        sigil(&args)
    };
    let (ok, out, err) = issue(false);
    assert!(ok, "{out}\n{err}");
    assert_eq!(mode(Path::new(&p("writer.key"))), 0o600);
    let (serial, sha256, uris) = leaf_facts(Path::new(&p("writer.pem")));
    assert_eq!(uris, [spiffe]);

    let report = sigil_ok(&["certs", "inspect", &p("writer.pem"), "--ca", &p("ca.pem")]);
    assert_eq!(field(&report, "SPIFFE ID:"), spiffe, "{report}");
    assert_eq!(
        hex_norm(field(&report, "serial:")),
        hex_norm(&serial),
        "{report}"
    );
    assert_eq!(hex_norm(field(&report, "SHA-256:")), sha256, "{report}");
    assert!(field(&report, "subject:").contains("CN=writer"), "{report}");
    assert!(field(&report, "usage:").contains("clientAuth"), "{report}");
    assert!(
        report.contains("verified (client certificate): SUCCESS"),
        "{report}"
    );
    assert!(!report.contains("FAILED"), "{report}");

    // Against a CA that did not issue it.
    let (ok, report, err) = sigil(&[
        "certs",
        "inspect",
        &p("writer.pem"),
        "--ca",
        &p("other.pem"),
    ]);
    assert!(!ok, "a failed verification must fail the command");
    assert!(
        report.contains("verified (client certificate): FAILED"),
        "{report}\n{err}"
    );
    assert!(!report.contains("SUCCESS"), "{report}");

    // Never overwrite silently; the message names the file.
    let before = std::fs::read(p("writer.pem")).unwrap();
    let key_before = std::fs::read(p("writer.key")).unwrap();
    let (ok, out, err) = issue(false);
    assert!(!ok, "issue overwrote an existing certificate:\n{out}");
    assert!(err.contains(&p("writer.pem")), "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(p("writer.pem")).unwrap(), before);
    assert_eq!(std::fs::read(p("writer.key")).unwrap(), key_before);
    // Only the key exists: still refused, naming the key.
    std::fs::rename(p("writer.pem"), p("writer.pem.bak")).unwrap();
    let (ok, _, err) = issue(false);
    assert!(!ok);
    assert!(err.contains(&p("writer.key")), "{err}");
    assert!(
        !Path::new(&p("writer.pem")).exists(),
        "nothing written on refusal"
    );
    std::fs::rename(p("writer.pem.bak"), p("writer.pem")).unwrap();
    // `ca` refuses too.
    let (ok, _, err) = sigil(&[
        "certs",
        "ca",
        "--cn",
        "Again",
        "--out-cert",
        &p("ca.pem"),
        "--out-key",
        &p("ca.key"),
    ]);
    assert!(!ok && err.contains(&p("ca.pem")), "{err}");

    // --force re-issues: a new certificate and key, still verifying.
    let (ok, out, err) = issue(true);
    assert!(ok, "{out}\n{err}");
    assert_ne!(std::fs::read(p("writer.pem")).unwrap(), before);
    assert_ne!(std::fs::read(p("writer.key")).unwrap(), key_before);
    assert_eq!(mode(Path::new(&p("writer.key"))), 0o600);
    let (serial2, _, _) = leaf_facts(Path::new(&p("writer.pem")));
    assert_ne!(serial2, serial);
    let report = sigil_ok(&["certs", "inspect", &p("writer.pem"), "--ca", &p("ca.pem")]);
    assert!(report.contains("SUCCESS"), "{report}");
}

/// `certs inspect --ca` with a CA outside its validity: webpki alone accepts
/// the chain (it does not check a trust anchor's dates), OpenSSL refuses it.
/// Before, inspect said SUCCESS.
#[test]
fn inspect_fails_a_chain_whose_ca_is_outside_its_validity() {
    let dir = temp_dir();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let now = ::time::OffsetDateTime::now_utc();
    let day = ::time::Duration::days(1);
    let ca = sigil_pki::CertificateAuthority::generate_with_validity(
        "Early CA",
        now + day,
        now + day * 30,
    )
    .unwrap();
    let mut req = sigil_pki::IssueRequest::new(
        "device",
        sigil_pki::CertUsage::ClientAuth,
        Duration::from_secs(3600),
    );
    req.not_before = now - ::time::Duration::hours(1);
    let leaf = ca.issue(&req).unwrap();
    std::fs::write(p("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(p("device.pem"), &leaf.cert_pem).unwrap();
    let (_, out, err) = sigil(&["certs", "inspect", &p("device.pem"), "--ca", &p("ca.pem")]);
    let line = out
        .lines()
        .find(|l| l.starts_with("verified (client certificate): "))
        .unwrap_or_else(|| panic!("no verification line:\n{out}\n{err}"));
    assert!(
        line.contains("FAILED: the CA certificate CN=Early CA in ")
            && line.contains(" is not valid until ")
            && line.contains("renew the CA"),
        "{line}"
    );
}

/// `certs issue --days` past the CA's own end says that the certificate
/// ends with its CA. Before, it was shortened without a word.
#[test]
fn issue_says_when_the_ca_ends_first() {
    let dir = crate::support::temp_dir();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_string_lossy().into_owned();
    sigil_ok(&[
        "certs",
        "ca",
        "--cn",
        "Short CA",
        "--days",
        "2",
        "--out-cert",
        &p("ca.pem"),
        "--out-key",
        &p("ca.key"),
    ]);
    let issue = |days: &str, stem: &str| {
        sigil_ok(&[
            "certs",
            "issue",
            "--ca-cert",
            &p("ca.pem"),
            "--ca-key",
            &p("ca.key"),
            "--cn",
            "d",
            "--days",
            days,
            "--out-cert",
            &p(&format!("{stem}.pem")),
            "--out-key",
            &p(&format!("{stem}.key")),
        ])
    };
    let long = issue("365", "long");
    assert!(
        long.contains("note: the certificate ends with its CA, at "),
        "{long}"
    );
    let short = issue("1", "short");
    assert!(!short.contains("note:"), "{short}");
}
