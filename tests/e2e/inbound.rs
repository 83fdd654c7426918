//! End to end: inbound mTLS per hostname, each hostname with its own CA,
//! with real TLS clients (rustls, and curl).

use crate::support::client::{https_client, requests_on_one_connection, tls_config, tls_connect};
use crate::support::origin::Origin;
use crate::support::pki::{Ca, CertFiles, Leaf};
use crate::support::sigil::Sigil;
use crate::support::{module, module_cache, temp_dir};
use sigil_pki::CertUsage;
use std::path::PathBuf;

/// Four hostnames on one Sigil (also used by the edge tests): `pay.alpha.example`
/// (require, alpha's CA, a CRL, forwarding), `pay.beta.example` (require,
/// beta's CA), `opt.example` (optional, alpha's CA, forwarding),
/// `open.example` (off); plain HTTP and admin listeners; the probe worker on
/// every host.
pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) sigil: Sigil,
    pub(crate) server_ca: PathBuf,
    pub(crate) alpha_ca: Ca,
    pub(crate) alpha_device: CertFiles,
    pub(crate) alpha_expired: CertFiles,
    pub(crate) alpha_revoked: CertFiles,
    pub(crate) beta_device: CertFiles,
    pub(crate) origin: Origin,
}

pub(crate) async fn setup(default_hostname: Option<&str>) -> Setup {
    let dir = temp_dir();
    let d = dir.path();
    let server_ca = Ca::new(d, "server-ca");
    let alpha_ca = Ca::new(d, "alpha-ca");
    let beta_ca = Ca::new(d, "beta-ca");
    let alpha_srv = server_ca.server("alpha-server", &["pay.alpha.example"]);
    let beta_srv = server_ca.server("beta-server", &["pay.beta.example"]);
    let opt_srv = server_ca.server("opt-server", &["opt.example"]);
    let open_srv = server_ca.server("open-server", &["open.example"]);
    let origin_srv = server_ca.server("origin-server", &["localhost"]);
    let alpha_device = alpha_ca.client("alpha-device", "alpha-device-1");
    let alpha_revoked = alpha_ca.client("alpha-revoked", "alpha-device-revoked");
    let alpha_expired = alpha_ca.issue(
        "alpha-expired",
        CertUsage::ClientAuth,
        Leaf {
            cn: "alpha-device-old",
            not_before: Some(-7200),
            not_after: Some(-3600),
            ..Default::default()
        },
    );
    let beta_device = beta_ca.client("beta-device", "beta-device-1");
    let crl = alpha_ca.crl("alpha", std::slice::from_ref(&alpha_revoked.serial));
    let origin = Origin::start(
        &origin_srv.cert,
        &origin_srv.key,
        &[&alpha_ca.cert, &beta_ca.cert],
        false,
    )
    .await;

    let host = |name: &str,
                srv: &CertFiles,
                mode: &str,
                ca: Option<&Ca>,
                crl: Option<&PathBuf>,
                forward: bool| {
        let mut s = format!(
            "[[hostnames]]\nname = \"{name}\"\ncert = \"{}\"\nkey = \"{}\"\nclient_cert = \"{mode}\"\nforward_client_cert = {forward}\n",
            srv.cert_s(),
            srv.key_s()
        );
        if let Some(ca) = ca {
            s.push_str(&format!("client_ca = [\"{}\"]\n", ca.cert_s()));
        }
        if let Some(crl) = crl {
            s.push_str(&format!("crl = [\"{}\"]\n", crl.display()));
        }
        s
    };
    let default = default_hostname
        .map(|h| format!("default_hostname = \"{h}\"\n"))
        .unwrap_or_default();
    let manifest = [
        format!(
            "[server]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nreload_poll_secs = 0\nmodule_cache = \"{}\"\n{default}\n[outbound]\nca = [\"{}\"]\n",
            module_cache(),
            server_ca.cert_s()
        ),
        host("pay.alpha.example", &alpha_srv, "require", Some(&alpha_ca), Some(&crl), true),
        host("pay.beta.example", &beta_srv, "require", Some(&beta_ca), None, false),
        host("opt.example", &opt_srv, "optional", Some(&alpha_ca), Some(&crl), true),
        host("open.example", &open_srv, "off", None, None, false),
        format!(
            "[[workers]]\nname = \"probe\"\nmodule = \"{}\"\nallowed_outbound_hosts = [\"https://127.0.0.1:*\"]\n[[routes]]\nworker = \"probe\"\n",
            module("probe")
        ),
    ]
    .join("\n");
    let sigil = Sigil::start(d, &manifest);
    Setup {
        server_ca: server_ca.cert.clone(),
        alpha_ca,
        dir,
        sigil,
        alpha_device,
        alpha_expired,
        alpha_revoked,
        beta_device,
        origin,
    }
}

impl Setup {
    pub(crate) fn client(&self, cert: Option<&CertFiles>) -> reqwest::Client {
        https_client(
            self.sigil.https.unwrap(),
            &[
                "pay.alpha.example",
                "pay.beta.example",
                "opt.example",
                "open.example",
            ],
            &self.server_ca,
            cert.map(|c| (c.cert.as_path(), c.key.as_path())),
        )
    }

    pub(crate) fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.sigil.https.unwrap().port())
    }

    pub(crate) async fn get(
        &self,
        cert: Option<&CertFiles>,
        host: &str,
        path: &str,
    ) -> Result<(u16, String), String> {
        match self.client(cert).get(self.url(host, path)).send().await {
            Ok(r) => Ok((r.status().as_u16(), r.text().await.unwrap_or_default())),
            Err(e) => Err(format!("{e:?}")),
        }
    }
}

pub(crate) fn field<'a>(body: &'a str, key: &str) -> &'a str {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_hostname_accepts_only_its_own_ca() {
    let s = setup(None).await;
    let (status, body) = s
        .get(Some(&s.alpha_device), "pay.alpha.example", "/auth")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(field(&body, "presented"), "true");
    assert_eq!(field(&body, "verified"), "SUCCESS");
    assert_eq!(field(&body, "subject"), "CN=alpha-device-1");
    assert_eq!(field(&body, "serial"), s.alpha_device.serial_hex);
    assert_eq!(field(&body, "fingerprint").len(), 64);

    let (status, body) = s
        .get(Some(&s.beta_device), "pay.beta.example", "/auth")
        .await
        .unwrap();
    assert_eq!((status, field(&body, "subject")), (200, "CN=beta-device-1"));

    // alpha's device on beta's hostname, and beta's on alpha's: refused in the handshake.
    assert!(
        s.get(Some(&s.alpha_device), "pay.beta.example", "/auth")
            .await
            .is_err()
    );
    assert!(
        s.get(Some(&s.beta_device), "pay.alpha.example", "/auth")
            .await
            .is_err()
    );
    // No certificate, expired, revoked: refused.
    assert!(s.get(None, "pay.alpha.example", "/auth").await.is_err());
    assert!(
        s.get(Some(&s.alpha_expired), "pay.alpha.example", "/auth")
            .await
            .is_err()
    );
    assert!(
        s.get(Some(&s.alpha_revoked), "pay.alpha.example", "/auth")
            .await
            .is_err()
    );
    // Still serving; the off-mode hostname asks for nothing.
    let (status, body) = s.get(None, "open.example", "/auth").await.unwrap();
    assert_eq!((status, field(&body, "presented")), (200, "false"));
    assert_eq!(field(&body, "verified"), "NONE");

    // The refusals are counted by hostname and reason.
    let metrics = reqwest::get(format!("http://{}/metrics", s.sigil.http.unwrap())).await;
    drop(metrics); // (the admin listener is not configured here; see live-ops tests)
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        s.sigil.logs().contains("TLS handshake failed"),
        "{}",
        s.sigil.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_mode_lets_the_worker_see_failures() {
    let s = setup(None).await;
    let (_, body) = s.get(None, "opt.example", "/auth").await.unwrap();
    assert_eq!(field(&body, "presented"), "false");
    assert_eq!(field(&body, "verified"), "NONE");

    let (_, body) = s
        .get(Some(&s.alpha_device), "opt.example", "/auth")
        .await
        .unwrap();
    assert_eq!(field(&body, "verified"), "SUCCESS");

    let (_, body) = s
        .get(Some(&s.beta_device), "opt.example", "/auth")
        .await
        .unwrap();
    assert_eq!(field(&body, "presented"), "true");
    assert_eq!(
        field(&body, "verified"),
        "FAILED:unable to get local issuer certificate"
    );
    assert_eq!(field(&body, "subject"), "CN=beta-device-1");

    let (_, body) = s
        .get(Some(&s.alpha_expired), "opt.example", "/auth")
        .await
        .unwrap();
    assert_eq!(field(&body, "verified"), "FAILED:certificate has expired");

    let (_, body) = s
        .get(Some(&s.alpha_revoked), "opt.example", "/auth")
        .await
        .unwrap();
    assert_eq!(field(&body, "verified"), "FAILED:certificate revoked");
    assert_eq!(field(&body, "revoked"), "true");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_sni_is_refused_without_a_default_hostname() {
    let s = setup(None).await;
    let config = tls_config(&s.server_ca, None, &[b"http/1.1"]);
    let result = tls_connect(s.sigil.https.unwrap(), None, config).await;
    // Either the handshake fails, or the connection is closed before any response.
    if let Ok(stream) = result {
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            use tokio::io::AsyncReadExt;
            let mut stream = stream;
            let mut buf = [0u8; 16];
            stream.read(&mut buf).await
        })
        .await;
        assert!(
            !matches!(r, Ok(Ok(n)) if n > 0),
            "a no-SNI client was served"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_sni_gets_the_default_hostname_policy() {
    let s = setup(Some("open.example")).await;
    // The client verifies the server certificate for 127.0.0.1 (the IP SAN).
    let config = tls_config(&s.server_ca, None, &[b"http/1.1"]);
    let stream = tls_connect(s.sigil.https.unwrap(), None, config)
        .await
        .expect("handshake");
    let out = requests_on_one_connection(
        stream,
        false,
        &[("127.0.0.1", "/auth"), ("pay.alpha.example", "/auth")],
    )
    .await;
    assert_eq!(out[0].0, 200, "{}", out[0].1);
    assert!(out[0].1.contains("presented=false"), "{}", out[0].1);
    // A configured hostname still needs its own connection (and its own policy).
    assert_eq!(out[1].0, 421, "{}", out[1].1);
}

#[tokio::test(flavor = "multi_thread")]
async fn host_differing_from_sni_is_misdirected_on_h1_and_h2() {
    let s = setup(None).await;
    for (h2, alpn) in [(false, b"http/1.1".as_slice()), (true, b"h2".as_slice())] {
        let config = tls_config(
            &s.server_ca,
            Some((s.alpha_device.cert.as_path(), s.alpha_device.key.as_path())),
            &[alpn],
        );
        let stream = tls_connect(s.sigil.https.unwrap(), Some("pay.alpha.example"), config)
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn));
        let out = requests_on_one_connection(
            stream,
            h2,
            &[
                ("pay.alpha.example", "/auth"),
                ("opt.example", "/auth"),
                ("pay.alpha.example", "/auth"),
            ],
        )
        .await;
        assert_eq!(out[0].0, 200, "h2={h2}: {}", out[0].1);
        assert_eq!(out[1].0, 421, "h2={h2}: {}", out[1].1);
        assert!(out[1].1.contains("misdirected request"), "{}", out[1].1);
        assert_eq!(
            out[2].0, 200,
            "h2={h2}: the connection keeps serving its own hostname"
        );
    }
}

/// The HTTP version is the one ALPN chose (RFC 7301): HTTP/2 after `h2`,
/// HTTP/1.1 after `http/1.1` (an HTTP/2 preface there gets no HTTP/2), and
/// read from the first bytes when the client offered no ALPN.
#[tokio::test(flavor = "multi_thread")]
async fn alpn_decides_the_http_version() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup(None).await;
    let addr = s.sigil.https.unwrap();
    for alpn in [Some(b"h2".as_slice()), None] {
        let offered: Vec<&[u8]> = alpn.into_iter().collect();
        let config = tls_config(&s.server_ca, None, &offered);
        let stream = tls_connect(addr, Some("open.example"), config)
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), alpn);
        let out = requests_on_one_connection(stream, true, &[("open.example", "/")]).await;
        assert_eq!(out[0].0, 200, "HTTP/2 with ALPN {alpn:?}: {}", out[0].1);
    }
    // After `http/1.1` the HTTP/2 preface is not HTTP/2: no SETTINGS frame
    // comes back (hyper answers an HTTP/1 error or closes).
    let config = tls_config(&s.server_ca, None, &[b"http/1.1"]);
    let mut stream = tls_connect(addr, Some("open.example"), config)
        .await
        .unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut reply),
    )
    .await
    .expect("the server answers or closes");
    let _ = read;
    // An HTTP/2 server's first frame is SETTINGS: type 0x4 at byte 3.
    let is_settings = reply.len() >= 9 && reply[3] == 0x4;
    assert!(
        !is_settings && (reply.is_empty() || reply.starts_with(b"HTTP/1.1 ")),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificate_is_forwarded_and_forged_headers_are_stripped() {
    let s = setup(None).await;
    let forged = [
        ("client-cert", ":Zm9yZ2Vk:"),
        ("client-cert-chain", ":Zm9yZ2Vk:"),
        (
            "x-forwarded-client-cert",
            "Hash=forged;Subject=\"CN=admin\"",
        ),
        ("sigil-worker", "admin"),
    ];
    // Forged headers never reach the worker.
    let mut req = s
        .client(Some(&s.alpha_device))
        .get(s.url("pay.alpha.example", "/headers"));
    for (k, v) in forged {
        req = req.header(k, v);
    }
    let body = req.send().await.unwrap().text().await.unwrap();
    for (k, _) in forged {
        assert!(
            !body.contains(&format!("{k}:")),
            "{k} reached the worker:\n{body}"
        );
    }

    // Forwarding on (alpha): the origin gets the verified certificate, on every request.
    for _ in 0..2 {
        let mut req = s
            .client(Some(&s.alpha_device))
            .get(s.url("pay.alpha.example", "/fetch"))
            .header("x-fetch-url", s.origin.url("/fwd"))
            .header("x-fetch-binding", "none");
        for (k, v) in forged {
            req = req.header(k, v);
        }
        let body = req.send().await.unwrap().text().await.unwrap();
        assert!(body.starts_with("ok 200"), "{body}");
    }
    use rustls::pki_types::pem::PemObject;
    let device_der =
        rustls::pki_types::CertificateDer::from_pem_file(&s.alpha_device.cert).unwrap();
    let seen = s.origin.seen();
    assert_eq!(seen.len(), 2);
    for r in &seen {
        let get = |k: &str| {
            r.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        let client_cert = get("client-cert").expect("Client-Cert forwarded");
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(device_der.as_ref());
        assert_eq!(client_cert, format!(":{b64}:"));
        let xfcc = get("x-forwarded-client-cert").expect("XFCC forwarded");
        assert!(xfcc.contains("Subject=\"CN=alpha-device-1\""), "{xfcc}");
        assert!(!xfcc.contains("forged"), "{xfcc}");
        assert_eq!(get("sigil-worker").as_deref(), Some("probe"));
    }

    // Forwarding off (beta): nothing forwarded, forged copies dropped.
    let mut req = s
        .client(Some(&s.beta_device))
        .get(s.url("pay.beta.example", "/fetch"))
        .header("x-fetch-url", s.origin.url("/nofwd"))
        .header("x-fetch-binding", "none");
    for (k, v) in forged {
        req = req.header(k, v);
    }
    req.send().await.unwrap();
    // A worker cannot forge them either.
    let body = s
        .client(Some(&s.beta_device))
        .get(s.url("pay.beta.example", "/fetch"))
        .header("x-fetch-url", s.origin.url("/nofwd2"))
        .header("x-fetch-binding", "none")
        .header("x-fetch-header", "client-cert: :Zm9yZ2Vk:")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("ok 200"), "{body}");
    for r in s
        .origin
        .seen()
        .iter()
        .filter(|r| r.path.starts_with("/nofwd"))
    {
        for (k, _) in forged {
            if k == "sigil-worker" {
                continue;
            }
            assert!(
                !r.headers.iter().any(|(n, _)| n == k),
                "{k} reached the origin: {:?}",
                r.headers
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_as_a_real_client() {
    crate::support::ensure_tool("curl", "--version", "curl");
    let s = setup(None).await;
    let curl = |cert: Option<&CertFiles>, host: &str| {
        let port = s.sigil.https.unwrap().port();
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "--resolve"])
            .arg(format!("{host}:{port}:127.0.0.1"))
            .arg("--cacert")
            .arg(&s.server_ca);
        if let Some(c) = cert {
            cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
        }
        cmd.arg(format!("https://{host}:{port}/auth"));
        cmd.output()
            .expect("curl must be installed (apt-get install curl)")
    };
    let ok = curl(Some(&s.alpha_device), "pay.alpha.example");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("subject=CN=alpha-device-1"));
    let refused = curl(Some(&s.alpha_device), "pay.beta.example");
    assert!(
        !refused.status.success(),
        "alpha's device was accepted on beta's hostname"
    );
    let refused = curl(None, "pay.alpha.example");
    assert!(!refused.status.success());
    let _ = &s.dir;
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_hostnames_each_with_their_policy() {
    let dir = temp_dir();
    let d = dir.path();
    let server_ca = Ca::new(d, "server-ca");
    let client_ca = Ca::new(d, "client-ca");
    let wildcard = server_ca.issue(
        "wild",
        CertUsage::ServerAuth,
        Leaf {
            cn: "*.many.example",
            dns: &["*.many.example"],
            ..Default::default()
        },
    );
    let device = client_ca.client("device", "device");
    let n = 2000;
    let mut manifest = format!(
        "[server]\nhttps = \"127.0.0.1:0\"\nmodule_cache = \"{}\"\n[[workers]]\nname = \"probe\"\nmodule = \"{}\"\n[[routes]]\nworker = \"probe\"\n",
        module_cache(),
        module("probe")
    );
    for i in 0..n {
        let mode = if i % 2 == 0 { "require" } else { "off" };
        manifest.push_str(&format!(
            "[[hostnames]]\nname = \"h{i}.many.example\"\ncert = \"{}\"\nkey = \"{}\"\nclient_cert = \"{mode}\"\nclient_ca = [\"{}\"]\n",
            wildcard.cert_s(),
            wildcard.key_s(),
            client_ca.cert_s()
        ));
    }
    let sigil = Sigil::start(d, &manifest);
    let addr = sigil.https.unwrap();
    for i in [0, 1, n - 2, n - 1] {
        let host = format!("h{i}.many.example");
        let c = https_client(addr, &[host.as_str()], &server_ca.cert, None);
        let r = c
            .get(format!("https://{host}:{}/auth", addr.port()))
            .send()
            .await;
        if i % 2 == 0 {
            assert!(r.is_err(), "{host} requires a client certificate");
            let c = https_client(
                addr,
                &[host.as_str()],
                &server_ca.cert,
                Some((&device.cert, &device.key)),
            );
            let body = c
                .get(format!("https://{host}:{}/auth", addr.port()))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(body.contains("verified=SUCCESS"), "{body}");
        } else {
            let body = r.unwrap().text().await.unwrap();
            assert!(body.contains("presented=false"), "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_chain_depth_limits_client_chains() {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let dir = temp_dir();
    let d = dir.path();
    let ca_params = |cn: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let root =
        CertifiedIssuer::self_signed(ca_params("deep root"), KeyPair::generate().unwrap()).unwrap();
    let intermediate = CertifiedIssuer::signed_by(
        ca_params("deep intermediate"),
        KeyPair::generate().unwrap(),
        &root,
    )
    .unwrap();
    let mut leaf_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "deep-device");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &intermediate).unwrap();
    let root_file = d.join("deep-root.pem");
    std::fs::write(&root_file, root.pem()).unwrap();
    let chain_file = d.join("deep-chain.pem");
    std::fs::write(
        &chain_file,
        format!("{}\n{}\n", leaf.pem(), intermediate.pem()),
    )
    .unwrap();
    let key_file = d.join("deep-client.key");
    std::fs::write(&key_file, leaf_key.serialize_pem()).unwrap();
    let server_ca = Ca::new(d, "server-ca");
    let shallow = server_ca.server("shallow", &["shallow.example"]);
    let deep = server_ca.server("deep", &["deep.example"]);
    let manifest = format!(
        r#"
[server]
https = "127.0.0.1:0"
module_cache = "{cache}"

[[hostnames]]
name = "shallow.example"
cert = "{shallow_cert}"
key = "{shallow_key}"
client_cert = "require"
client_ca = ["{root}"]
max_chain_depth = 2

[[hostnames]]
name = "deep.example"
cert = "{deep_cert}"
key = "{deep_key}"
client_cert = "require"
client_ca = ["{root}"]

[[workers]]
name = "probe"
module = "{probe}"

[[routes]]
worker = "probe"
"#,
        cache = module_cache(),
        shallow_cert = shallow.cert_s(),
        shallow_key = shallow.key_s(),
        deep_cert = deep.cert_s(),
        deep_key = deep.key_s(),
        root = root_file.display(),
        probe = module("probe"),
    );
    let sigil = Sigil::start(d, &manifest);
    let addr = sigil.https.unwrap();
    let client = https_client(
        addr,
        &["shallow.example", "deep.example"],
        &server_ca.cert,
        Some((&chain_file, &key_file)),
    );
    let body = client
        .get(format!("https://deep.example:{}/auth", addr.port()))
        .send()
        .await
        .expect("a three-certificate path (leaf, intermediate, root) is within the default depth")
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("verified=SUCCESS") && body.contains("subject=CN=deep-device"),
        "{body}"
    );
    let refused = client
        .get(format!("https://shallow.example:{}/auth", addr.port()))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a path longer than max_chain_depth (2) was accepted"
    );
}
