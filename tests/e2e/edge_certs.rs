//! Hostile clients at the edge, part 2: what reaches logs, metrics and
//! origins (closed metric labels, XFCC that cannot be injected into, RFC 4514
//! names, OpenSSL's verification wording), and the revocation and chain
//! rules (a CRL speaks only for its issuer, `crl_required`, the verified path
//! depth, connections dropped when a reload revokes their certificate).

use crate::inbound::{field, setup};
use crate::support::client::{https_client, tls_config, tls_connect};
use crate::support::handmade::{
    HandCa, HandLeaf, client_params, client_params_with_subject, openssl_v1_leaf, self_signed_leaf,
};
use crate::support::pki::{Ca, Leaf};
use crate::support::sigil::Sigil;
use crate::support::{module, module_cache, temp_dir};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rcgen::string::{BmpString, TeletexString};
use rcgen::{DnType, DnValue};
use sigil_pki::CertUsage;
use std::path::Path;
use std::time::Duration;

/// The admin metrics of `sigil`, parsed.
async fn metrics(sigil: &Sigil) -> prometheus_parse::Scrape {
    let text = reqwest::get(format!("http://{}/metrics", sigil.admin.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn counter(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn handshake_metrics_take_labels_from_closed_sets() {
    // Before: the SNI became a label and the failure label held the current
    // time, so retries with an expired certificate grew /metrics every second.
    let s = setup(None).await;
    let addr = s.sigil.https.unwrap();
    for i in 0..5 {
        let sni = format!("random-{i}.attacker.example");
        let config = tls_config(&s.server_ca, None, &[b"http/1.1"]);
        assert!(tls_connect(addr, Some(&sni), config).await.is_err());
    }
    for _ in 0..3 {
        let expired = Some((
            s.alpha_expired.cert.as_path(),
            s.alpha_expired.key.as_path(),
        ));
        let client = https_client(addr, &["pay.alpha.example"], &s.server_ca, expired);
        let refused = client.get(s.url("pay.alpha.example", "/auth")).send().await;
        assert!(refused.is_err());
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let m = metrics(&s.sigil).await;
    let name = "sigil_tls_handshakes_total";
    assert_eq!(
        counter(
            &m,
            name,
            &[("hostname", "pay.alpha.example"), ("result", "expired")]
        ),
        3.0
    );
    assert_eq!(
        counter(
            &m,
            name,
            &[("hostname", "unknown"), ("result", "unknown_sni")]
        ),
        5.0
    );
    let series: Vec<_> = m.samples.iter().filter(|s| s.metric == name).collect();
    for s in &series {
        for v in s.labels.values() {
            assert!(
                !v.contains("attacker") && !v.chars().any(|c| c.is_ascii_digit()),
                "a client-controlled or time-derived label value: {v}"
            );
        }
    }
    assert!(series.len() <= 4, "{} handshake series", series.len());
}

/// Split an XFCC header on `sep` outside double quotes (`\` escapes inside).
fn split_xfcc(input: &str, sep: char) -> Vec<String> {
    let (mut parts, mut current, mut quoted, mut escaped) =
        (Vec::new(), String::new(), false, false);
    for c in input.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(std::mem::take(&mut current));
            continue;
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

#[tokio::test(flavor = "multi_thread")]
async fn xfcc_values_cannot_inject_keys_or_elements() {
    let s = setup(None).await;
    let hostile_uri = "https://x.alpha.example/p;URI=spiffe://evil/admin,By=spiffe://evil/x";
    let device = s.alpha_ca.issue(
        "hostile-device",
        CertUsage::ClientAuth,
        Leaf {
            cn: "hostile",
            uris: &[hostile_uri],
            ..Default::default()
        },
    );
    let client = https_client(
        s.sigil.https.unwrap(),
        &["pay.alpha.example"],
        &s.server_ca,
        Some((&device.cert, &device.key)),
    );
    let body = client
        .get(s.url("pay.alpha.example", "/fetch"))
        .header("x-fetch-url", s.origin.url("/xfcc"))
        .header("x-fetch-binding", "none")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("ok 200"), "{body}");
    let seen = s.origin.seen();
    let xfcc = seen.last().unwrap().header("x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1, "{xfcc:?}");
    let elements = split_xfcc(&xfcc[0], ',');
    assert_eq!(elements.len(), 1, "one element: {}", xfcc[0]);
    let pairs = split_xfcc(&elements[0], ';');
    let keys: Vec<&str> = pairs
        .iter()
        .map(|p| p.split_once('=').map_or(p.as_str(), |(k, _)| k))
        .collect();
    assert_eq!(keys, ["Hash", "Cert", "Subject", "URI"], "{}", xfcc[0]);
    let uri = pairs[3].split_once('=').unwrap().1;
    assert_eq!(
        uri,
        format!("\"{hostile_uri}\""),
        "the URI is one quoted value"
    );
}

/// GET /auth on opt.example (optional mode) presenting `leaf`; the body.
async fn auth_on_optional(s: &crate::inbound::Setup, leaf: &HandLeaf) -> String {
    let client = https_client(
        s.sigil.https.unwrap(),
        &["opt.example"],
        &s.server_ca,
        Some((&leaf.cert, &leaf.key)),
    );
    let response = client
        .get(s.url("opt.example", "/auth"))
        .send()
        .await
        .expect("optional mode completes the handshake");
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn names_and_verification_results_read_like_openssl() {
    let s = setup(None).await;
    let d = s.dir.path();
    let other = HandCa::root(d, "Other Root");
    // Names RFC 4514 must escape, in certificate order O then CN.
    let tricky = other.leaf(
        "tricky",
        client_params_with_subject(vec![
            (
                DnType::OrganizationName,
                DnValue::Utf8String("Acme, Inc.".into()),
            ),
            (
                DnType::CommonName,
                DnValue::Utf8String("dev \"one\", O=Admin".into()),
            ),
        ]),
        "",
    );
    let body = auth_on_optional(&s, &tricky).await;
    assert_eq!(
        field(&body, "subject"),
        r#"CN=dev \"one\"\, O=Admin,O=Acme\, Inc."#,
        "{body}"
    );
    assert_eq!(field(&body, "issuer"), "CN=Other Root");
    assert_eq!(
        field(&body, "verified"),
        "FAILED:unable to get local issuer certificate"
    );
    // BMPString and TeletexString names are decoded, not an X509Error.
    let wide = other.leaf(
        "wide",
        client_params_with_subject(vec![
            (
                DnType::OrganizationName,
                DnValue::TeletexString(TeletexString::try_from("Cafe").unwrap()),
            ),
            (
                DnType::CommonName,
                DnValue::BmpString(BmpString::try_from("b\u{f6}rse").unwrap()),
            ),
        ]),
        "",
    );
    let body = auth_on_optional(&s, &wide).await;
    let subject = field(&body, "subject");
    assert!(!subject.contains("X509Error"), "{subject}");
    assert_eq!(subject, "CN=b\u{f6}rse,O=Cafe", "{subject}");
    // A self-signed leaf, and an X.509 v1 certificate (which used to fail the
    // handshake in optional mode): both reach the worker as FAILED:<reason>.
    let selfie = self_signed_leaf(d, "selfie", "me");
    let body = auth_on_optional(&s, &selfie).await;
    assert_eq!(
        field(&body, "verified"),
        "FAILED:self-signed certificate",
        "{body}"
    );
    let server_ca = Ca::new(d, "v1-ca");
    let v1 = openssl_v1_leaf(d, "v1", "old-device", &server_ca.cert, &server_ca.key);
    // rustls will not even load a v1 certificate as a client certificate;
    // curl (OpenSSL) presents it.
    crate::support::ensure_tool("curl", "--version", "curl");
    let port = s.sigil.https.unwrap().port();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--resolve", &format!("opt.example:{port}:127.0.0.1")])
        .arg("--cacert")
        .arg(&s.server_ca)
        .arg("--cert")
        .arg(&v1.cert)
        .arg("--key")
        .arg(&v1.key)
        .arg(format!("https://opt.example:{port}/auth"))
        .output()
        .expect("run curl");
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{body}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(field(&body, "presented"), "true", "{body}");
    assert!(field(&body, "verified").starts_with("FAILED:"), "{body}");
    assert_eq!(field(&body, "subject"), "CN=old-device", "{body}");
}

/// A Sigil serving hostnames whose client CAs are `cas`, one with CRL
/// scoping as configured and one with `crl_required`, and a third with
/// `max_chain_depth = 3`.
fn chain_manifest(d: &Path, server: &Ca, cas: &str, crls: &str) -> String {
    let srv = server.server(
        "chains",
        &["crl.example", "strict.example", "depth.example"],
    );
    let host = |name: &str, extra: &str| {
        format!(
            "[[hostnames]]\nname = \"{name}\"\ncert = \"{}\"\nkey = \"{}\"\nclient_cert = \"require\"\nclient_ca = [{cas}]\n{extra}\n",
            srv.cert_s(),
            srv.key_s()
        )
    };
    let _ = d;
    format!(
        "[server]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nreload_poll_secs = 0\nmodule_cache = \"{}\"\n\n{}{}{}[[workers]]\nname = \"probe\"\nmodule = \"{}\"\n\n[[routes]]\nworker = \"probe\"\n",
        module_cache(),
        host("crl.example", &format!("crl = [{crls}]")),
        host(
            "strict.example",
            &format!("crl = [{crls}]\ncrl_required = true")
        ),
        host("depth.example", "max_chain_depth = 3"),
        module("probe"),
    )
}

/// Whether `leaf` gets a 200 from `/auth` on `host`.
async fn accepted(sigil: &Sigil, server_ca: &Path, host: &str, leaf: &HandLeaf) -> bool {
    let client = https_client(
        sigil.https.unwrap(),
        &[host],
        server_ca,
        Some((&leaf.cert, &leaf.key)),
    );
    let url = format!("https://{host}:{}/auth", sigil.https.unwrap().port());
    matches!(client.get(url).send().await, Ok(r) if r.status() == 200)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crl_speaks_only_for_its_issuer_and_depth_counts_the_verified_path() {
    let dir = temp_dir();
    let d = dir.path();
    let server = Ca::new(d, "server-ca");
    let a = HandCa::root(d, "Root A");
    let b = HandCa::root(d, "Root B");
    let ia = a.intermediate("Intermediate A");
    let ia2 = ia.intermediate("Intermediate A2");
    let a_ok = a.leaf("a-ok", client_params("a-ok"), "");
    let a_revoked = a.leaf("a-revoked", client_params("a-revoked"), "");
    let b_ok = b.leaf("b-ok", client_params("b-ok"), "");
    let behind_ia = ia.leaf("behind-ia", client_params("behind-ia"), &ia.sent_chain());
    let with_root = ia.leaf(
        "with-root",
        client_params("with-root"),
        &format!("{}{}", ia.sent_chain(), a.pem()),
    );
    let deep = ia2.leaf("deep", client_params("deep"), &ia2.sent_chain());
    let crl = a.crl("a", &[a_revoked.serial], 86_400);
    let cas = format!("\"{}\", \"{}\"", a.cert.display(), b.cert.display());
    let manifest = chain_manifest(d, &server, &cas, &format!("\"{}\"", crl.display()));
    let sigil = Sigil::start(d, &manifest);
    let ca = &server.cert;
    // Before: A's CRL refused every certificate of B and those behind A's
    // intermediate (which has no CRL of its own).
    assert!(accepted(&sigil, ca, "crl.example", &a_ok).await);
    assert!(
        !accepted(&sigil, ca, "crl.example", &a_revoked).await,
        "revoked by A's CRL"
    );
    assert!(
        accepted(&sigil, ca, "crl.example", &b_ok).await,
        "B has no CRL: not refused for it"
    );
    assert!(
        accepted(&sigil, ca, "crl.example", &behind_ia).await,
        "the intermediate has no CRL"
    );
    // crl_required: an issuer without a CRL is refused.
    assert!(accepted(&sigil, ca, "strict.example", &a_ok).await);
    assert!(!accepted(&sigil, ca, "strict.example", &b_ok).await);
    assert!(!accepted(&sigil, ca, "strict.example", &behind_ia).await);
    // Depth counts leaf + intermediates + the trusted root, whatever was sent.
    assert!(
        accepted(&sigil, ca, "depth.example", &behind_ia).await,
        "path of 3 within 3"
    );
    assert!(
        accepted(&sigil, ca, "depth.example", &with_root).await,
        "sending the root changes nothing"
    );
    assert!(
        !accepted(&sigil, ca, "depth.example", &deep).await,
        "a path of 4 exceeds 3"
    );
}

/// Send one request on an open HTTP/1.1 connection; its status.
async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: &str,
) -> Result<u16, String> {
    send_reading(sender, host).await.map(|(status, _)| status)
}

/// Send one request on an open HTTP/1.1 connection; its status and body.
async fn send_reading(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: &str,
) -> Result<(u16, String), String> {
    let req = http::Request::get("/auth")
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    // A body that fails after the status still counts as answered.
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// An HTTP/1.1 connection over `stream`, driven in the background.
async fn http1<S>(stream: S) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_revokes_a_device_stops_its_open_connections() {
    let s = setup(None).await;
    let device = (s.alpha_device.cert.as_path(), s.alpha_device.key.as_path());
    let config = tls_config(&s.server_ca, Some(device), &[b"http/1.1"]);
    let stream = tls_connect(s.sigil.https.unwrap(), Some("pay.alpha.example"), config)
        .await
        .unwrap();
    let mut sender = http1(stream).await;
    assert_eq!(send(&mut sender, "pay.alpha.example").await, Ok(200));
    // Revoke the device in alpha's CRL and reload.
    s.alpha_ca.crl(
        "alpha",
        &[
            s.alpha_revoked.serial.clone(),
            s.alpha_device.serial.clone(),
        ],
    );
    let reload = reqwest::Client::new()
        .post(format!("http://{}/reload", s.sigil.admin.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200, "{}", reload.text().await.unwrap());
    // Before: the keep-alive connection kept being served.
    let next = send(&mut sender, "pay.alpha.example").await;
    assert!(
        next != Ok(200),
        "the revoked device was still served: {next:?}"
    );
    if let Ok(status) = next {
        assert_eq!(status, 421);
    }
    // A new connection is refused in the handshake.
    let client = s.client(Some(&s.alpha_device));
    assert!(
        client
            .get(s.url("pay.alpha.example", "/auth"))
            .send()
            .await
            .is_err()
    );
}

/// A device certificate that expires while its TLS session can still be
/// resumed, and while a keep-alive connection it opened is still open.
/// rustls does not run the client verifier again on resumption; before, a
/// `require` hostname served both after expiry, telling the worker the
/// certificate verified.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_certificate_gets_nothing_through_a_resumed_session_or_an_open_connection() {
    let s = setup(None).await;
    let brief = s.alpha_ca.issue(
        "alpha-brief",
        CertUsage::ClientAuth,
        Leaf {
            cn: "alpha-device-brief",
            not_before: Some(-60),
            not_after: Some(4),
            ..Default::default()
        },
    );
    let addr = s.sigil.https.unwrap();
    let device = (brief.cert.as_path(), brief.key.as_path());
    // One config: its session cache lets the later connection resume.
    let config = tls_config(&s.server_ca, Some(device), &[b"http/1.1"]);
    let stream = tls_connect(addr, Some("pay.alpha.example"), config.clone())
        .await
        .unwrap();
    let mut kept = http1(stream).await;
    assert_eq!(send(&mut kept, "pay.alpha.example").await, Ok(200));
    // A second connection while valid: resumed, and served.
    let resumed = tls_connect(addr, Some("pay.alpha.example"), config.clone())
        .await
        .unwrap();
    assert_eq!(
        resumed.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed),
        "the client did not resume, so this test would not test resumption"
    );
    let mut early = http1(resumed).await;
    assert_eq!(send(&mut early, "pay.alpha.example").await, Ok(200));

    // Past the certificate's notAfter (4 s, whole seconds, inclusive).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let before = metrics(&s.sigil).await;

    // The open keep-alive connection: refused with a reason, and closed.
    let (status, body) = send_reading(&mut kept, "pay.alpha.example").await.unwrap();
    assert_eq!(status, 421, "{body}");
    assert!(
        body.contains("client certificate of this connection expired at"),
        "{body}"
    );

    // A resumed session: the handshake completes (the client resumes), and
    // the server closes the connection instead of serving it.
    let late = tls_connect(addr, Some("pay.alpha.example"), config)
        .await
        .unwrap();
    assert_eq!(
        late.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    let mut sender = http1(late).await;
    let outcome = send(&mut sender, "pay.alpha.example").await;
    assert!(
        outcome.is_err(),
        "a resumed session with an expired certificate was served: {outcome:?}"
    );
    let after = metrics(&s.sigil).await;
    let expired = |m: &prometheus_parse::Scrape| {
        counter(
            m,
            "sigil_tls_handshakes_total",
            &[("hostname", "pay.alpha.example"), ("result", "expired")],
        )
    };
    assert_eq!(expired(&after) - expired(&before), 1.0);
    // The log is written in batches: wait for it.
    let mut logged = false;
    for _ in 0..50 {
        logged = s.sigil.logs().contains("refused a resumed TLS session");
        if logged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged, "no log line says why");
}

/// An intermediate that expires while a connection it verified is open:
/// the connection's next request gets 421 like an expired leaf's. Before,
/// only the leaf's notAfter was checked, and the connection kept being
/// served with verified=SUCCESS.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_connection_ends_when_an_intermediate_of_its_chain_expires() {
    let dir = temp_dir();
    let d = dir.path();
    let server = Ca::new(d, "server-ca");
    let root = HandCa::root(d, "Root S");
    let brief = root.intermediate_expiring_in("Brief Intermediate", 4);
    let leaf = brief.leaf(
        "under-brief",
        client_params("under-brief"),
        &brief.sent_chain(),
    );
    let cas = format!("\"{}\"", root.cert.display());
    let crl = root.crl("root-s", &[], 86_400);
    let manifest = chain_manifest(d, &server, &cas, &format!("\"{}\"", crl.display()));
    let sigil = Sigil::start(d, &manifest);
    let config = tls_config(&server.cert, Some((&leaf.cert, &leaf.key)), &[b"http/1.1"]);
    let stream = tls_connect(sigil.https.unwrap(), Some("depth.example"), config)
        .await
        .unwrap();
    let mut kept = http1(stream).await;
    assert_eq!(send(&mut kept, "depth.example").await, Ok(200));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, body) = send_reading(&mut kept, "depth.example").await.unwrap();
    assert_eq!(status, 421, "{body}");
    assert!(
        body.contains("(an intermediate CA certificate of its chain)"),
        "{body}"
    );
}
