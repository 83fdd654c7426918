//! One bad manifest per error (tests/manifests/bad/*.toml), each with the
//! message `sigil check` must print: its `# expect:` lines. Every message
//! names the manifest file and the item.

use crate::support::pki::{Ca, Leaf};
use crate::support::sigil::check;
use crate::support::{module, temp_dir, workspace_root};
use sigil_pki::CertUsage;
use std::path::Path;

/// The certificates and modules the bad manifests refer to.
fn fixtures(dir: &Path) {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = Ca::new(&certs, "ca");
    ca.client("client", "client");
    let other = ca.client("other-cert", "other");
    std::fs::rename(&other.key, certs.join("other.key")).unwrap();
    ca.server("server", &["a.example"]);
    ca.issue(
        "expired",
        CertUsage::ClientAuth,
        Leaf {
            cn: "old",
            not_before: Some(-7200),
            not_after: Some(-3600),
            ..Default::default()
        },
    );
    ca.issue(
        "notyet",
        CertUsage::ServerAuth,
        Leaf {
            cn: "a.example",
            dns: &["a.example"],
            not_before: Some(3600),
            not_after: Some(7200),
            ..Default::default()
        },
    );
    std::fs::write(certs.join("empty-ca.pem"), "# no certificates here\n").unwrap();
    // The client certificate's chain with its CA first.
    let reversed = [
        std::fs::read_to_string(&ca.cert).unwrap(),
        std::fs::read_to_string(certs.join("client.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(certs.join("reversed.pem"), reversed).unwrap();
    // Identity CAs outside their validity (a CA is made, not loaded, here).
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    for (name, from, to) in [
        ("expired-ca", now - day * 30, now - day),
        ("future-ca", now + day, now + day * 30),
        ("ending-ca", now - day * 30, now + day * 2),
    ] {
        let ca = sigil_pki::CertificateAuthority::generate_with_validity(name, from, to).unwrap();
        std::fs::write(certs.join(format!("{name}.pem")), ca.cert_pem()).unwrap();
        std::fs::write(certs.join(format!("{name}.key")), ca.key_pem()).unwrap();
    }
    let other_ca = Ca::new(&certs, "other-ca");
    other_ca.crl("other-ca", &[]);
    ca.crl_valid_for("stale", &[], -3600);
    std::fs::copy(module("probe"), dir.join("probe.wasm")).unwrap();
    std::fs::write(dir.join("not-wasm.wasm"), b"this is not wasm").unwrap();
    crate::bad_modules::write_all(dir);
}

#[test]
fn every_bad_manifest_gets_its_named_error() {
    let dir = temp_dir();
    fixtures(dir.path());
    let bad = workspace_root().join("tests/manifests/bad");
    let mut cases: Vec<_> = std::fs::read_dir(&bad)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 20,
        "expected the bad-manifest suite, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let text = std::fs::read_to_string(case).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no # expect: line",
            case.display()
        );
        let name = case.file_name().unwrap();
        let target = dir.path().join(name);
        std::fs::write(&target, &text).unwrap();
        let (ok, output) = check(&target);
        let mut problems = Vec::new();
        if ok {
            problems.push("sigil check succeeded".to_string());
        }
        if !output.contains(&target.display().to_string()) {
            problems.push("the message does not name the manifest file".to_string());
        }
        for e in &expected {
            if !output.contains(e) {
                problems.push(format!("missing: {e}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n--- output ---\n{output}",
                name.to_string_lossy(),
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_good_manifest_checks_clean() {
    let dir = temp_dir();
    fixtures(dir.path());
    let path = dir.path().join("sigil.toml");
    std::fs::write(
        &path,
        r#"
[server]
http = "127.0.0.1:0"
https = "127.0.0.1:0"

[[certificates]]
name = "client"
cert = "certs/client.pem"
key = "certs/client.key"
ca = "certs/ca.pem"

[[hostnames]]
name = "a.example"
cert = "certs/server.pem"
key = "certs/server.key"
client_cert = "require"
client_ca = ["certs/ca.pem"]

[[workers]]
name = "w"
module = "probe.wasm"
default_binding = "C"
[[workers.mtls_certificates]]
binding = "C"
certificate = "client"

[[routes]]
host = "a.example"
worker = "w"
"#,
    )
    .unwrap();
    let (ok, output) = check(&path);
    assert!(ok, "{output}");
    assert!(
        output.contains("ok (1 workers, 1 hostnames, 1 certificates, 1 routes)"),
        "{output}"
    );
}

#[test]
fn problems_that_do_not_stop_serving_are_warnings() {
    let dir = temp_dir();
    fixtures(dir.path());
    let path = dir.path().join("sigil.toml");
    std::fs::write(
        &path,
        r#"
[server]
https = "127.0.0.1:0"
admin = "0.0.0.0:9090"

[identity]
trust_domain = "sigil.local"
ca_cert = "certs/ending-ca.pem"
ca_key = "certs/ending-ca.key"

[[hostnames]]
name = "b.example"
cert = "certs/server.pem"
key = "certs/server.key"
client_cert = "require"
client_ca = ["certs/ca.pem", "certs/expired-ca.pem"]
crl = ["certs/stale.crl.pem"]

[[hostnames]]
name = "a.example"
cert = "certs/server.pem"
key = "certs/server.key"
client_ca = ["certs/ca.pem"]
forward_client_cert = true

[[workers]]
name = "w"
module = "probe.wasm"

[[routes]]
worker = "w"
"#,
    )
    .unwrap();
    let (ok, output) = check(&path);
    assert!(ok, "{output}");
    assert!(
        output.contains(
            "warning: {}: hostname \"b.example\": "
                .replace("{}", &path.display().to_string())
                .as_str()
        ),
        "{output}"
    );
    assert!(
        output.contains(
            "the server certificate does not name b.example among its DNS names (a.example)"
        ),
        "{output}"
    );
    assert!(
        output.contains("the CRL's nextUpdate") && output.contains("has passed"),
        "{output}"
    );
    // An expired client CA beside a valid one.
    assert!(
        output.contains("expired-ca.pem: CA certificate #1 (CN=expired-ca) expired at")
            && output.contains("renew it (OpenSSL, nginx and Python refuse chains"),
        "{output}"
    );
    // Each warning once (before: printed, and logged again).
    assert_eq!(
        output
            .matches("the server certificate does not name b.example")
            .count(),
        1,
        "{output}"
    );
    // client_ca and forward_client_cert with client_cert off (the default).
    assert!(
        output.contains("hostname \"a.example\": client_ca is set but client_cert = \"off\" (the default), so no client certificate is asked for and anyone may connect"),
        "{output}"
    );
    assert!(
        output.contains(
            "hostname \"a.example\": forward_client_cert = true but client_cert = \"off\""
        ),
        "{output}"
    );
    // An admin listener on every interface.
    assert!(
        output.contains("server.admin: 0.0.0.0:9090 is reachable beyond this machine")
            && output.contains("there is no authentication"),
        "{output}"
    );
    // An identity CA ending in two days: its worker certificates end with it.
    assert!(
        output.contains("ending-ca.pem: the identity CA expires on")
            && output.contains("worker certificates end with it; renew the CA soon"),
        "{output}"
    );
}
