//! End-to-end tests: start the origin in-process on 127.0.0.1 with
//! certificates generated here, and call it over TLS with client certificates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use clap::Parser;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sigil_example_origin::config::Args;
use sigil_example_origin::server::Origin;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

// ---------------------------------------------------------------- PKI --------

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(cn: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA cert"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    fn issue(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::try_from(key.serialize_der()).expect("key der"),
        }
    }

    fn client(&self, cn: &str, uri: Option<&str>) -> Leaf {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(uri) = uri {
            params.subject_alt_names = vec![SanType::URI(uri.try_into().expect("uri"))];
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn worker(&self, name: &str) -> Leaf {
        self.client(name, Some(&format!("spiffe://sigil.local/worker/{name}")))
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sigil-example-origin-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------------- origin --------

/// An error with all its sources, e.g. "connection error: received fatal alert: CertificateRequired".
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

struct Running {
    addr: SocketAddr,
    server_ca: Ca,
    identity_ca: Ca,
    customer_ca: Ca,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    _dir: TempDir,
}

impl Running {
    async fn start() -> Self {
        let server_ca = Ca::new("Origin server CA");
        let identity_ca = Ca::new("Sigil identity CA");
        let customer_ca = Ca::new("Customer CA");
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        server_params.distinguished_name = DistinguishedName::new();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server = server_ca.issue(server_params);

        let dir = TempDir::new();
        let cert = dir.write("server.pem", &server.cert_pem);
        let key = dir.write("server.key", &server.key_pem);
        let ca1 = dir.write("identity-ca.pem", &identity_ca.pem());
        let ca2 = dir.write("customer-ca.pem", &customer_ca.pem());

        let args = Args::try_parse_from([
            "sigil-example-origin",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            &cert,
            "--key",
            &key,
            "--client-ca",
            &ca1,
            "--client-ca",
            &ca2,
            "--trust-domain",
            "sigil.local",
            "--writer",
            "spiffe://sigil.local/worker/writer",
            "--writer",
            "cn:byo-writer",
            "--writer",
            "serial:00:5E:1A:15",
        ])
        .expect("args");
        let origin = Origin::bind(args.load().expect("load config"))
            .await
            .expect("bind");
        let addr = origin.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(origin.run(async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            server_ca,
            identity_ca,
            customer_ca,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    fn connector(&self, client: Option<&Leaf>, alpn: &[u8]) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.server_ca.der()).expect("root");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
        let mut config = match client {
            Some(leaf) => builder
                .with_client_auth_cert(leaf.chain.clone(), leaf.key.clone_key())
                .expect("client cert"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        TlsConnector::from(Arc::new(config))
    }

    async fn connect(
        &self,
        client: Option<&Leaf>,
        alpn: &[u8],
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::try_from("localhost").expect("name");
        self.connector(client, alpn).connect(name, tcp).await
    }

    /// One HTTP/1.1 request on a fresh connection.
    async fn request(
        &self,
        client: Option<&Leaf>,
        method: Method,
        path: &str,
        body: &str,
    ) -> Result<(StatusCode, String), String> {
        let tls = self
            .connect(client, b"http/1.1")
            .await
            .map_err(|e| chain(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| chain(&e))?;
        tokio::spawn(conn);
        let worker = client.map(|_| "test-worker").unwrap_or("none");
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("sigil-worker", worker)
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        let resp = sender.send_request(req).await.map_err(|e| chain(&e))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| chain(&e))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(std::time::Duration::from_secs(15), &mut self.task)
            .await
            .expect("origin stops promptly")
            .expect("origin task")
            .expect("origin run");
    }
}

// -------------------------------------------------------------- tests --------

#[tokio::test]
async fn writer_identity_may_post() {
    let origin = Running::start().await;
    let writer = origin.identity_ca.worker("writer");

    let (status, body) = origin
        .request(
            Some(&writer),
            Method::POST,
            "/records",
            "hello from writer\n",
        )
        .await
        .expect("request");
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body.contains("spiffe://sigil.local/worker/writer"),
        "{body}"
    );

    let (status, body) = origin
        .request(Some(&writer), Method::GET, "/records", "")
        .await
        .expect("request");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "1\tspiffe://sigil.local/worker/writer\thello from writer\n"
    );
    origin.stop().await;
}

#[tokio::test]
async fn reader_identity_may_get_but_not_post() {
    let origin = Running::start().await;
    let reader = origin.identity_ca.worker("reader");

    let (status, body) = origin
        .request(Some(&reader), Method::POST, "/records", "sneaky")
        .await
        .expect("request");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains("spiffe://sigil.local/worker/reader"),
        "403 names the caller: {body}"
    );

    let (status, body) = origin
        .request(Some(&reader), Method::GET, "/records", "")
        .await
        .expect("request");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "", "the forbidden write was not stored");
    origin.stop().await;
}

#[tokio::test]
async fn no_client_certificate_is_refused() {
    let origin = Running::start().await;

    // With TLS 1.3 the client may finish its side of the handshake before the
    // server rejects the empty certificate, so the refusal can surface on the
    // first read: either way no request gets through.
    let result = origin.request(None, Method::GET, "/records", "").await;
    let err = result.expect_err("request without a client certificate must fail");
    assert!(
        err.to_lowercase().contains("certificate"),
        "refusal names the missing certificate: {err}"
    );

    // The refused handshake is not counted; a good one is.
    let reader = origin.identity_ca.worker("reader");
    let (status, body) = origin
        .request(Some(&reader), Method::GET, "/stats", "")
        .await
        .expect("stats");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "handshakes=1 requests=1\n");
    origin.stop().await;
}

#[tokio::test]
async fn certificate_from_an_untrusted_ca_is_refused() {
    let origin = Running::start().await;
    let rogue = Ca::new("Rogue CA").worker("writer");
    let result = origin
        .request(Some(&rogue), Method::POST, "/records", "x")
        .await;
    assert!(result.is_err(), "{result:?}");
    origin.stop().await;
}

#[tokio::test]
async fn byo_certificates_by_cn_and_serial() {
    let origin = Running::start().await;

    let byo_writer = origin.customer_ca.client("byo-writer", None);
    let (status, body) = origin
        .request(Some(&byo_writer), Method::POST, "/records", "by cn")
        .await
        .expect("request");
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "device-7");
    params.serial_number = Some(SerialNumber::from_slice(&[0x5E, 0x1A, 0x15]));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let by_serial = origin.customer_ca.issue(params);
    let (status, body) = origin
        .request(Some(&by_serial), Method::POST, "/records", "by serial")
        .await
        .expect("request");
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let other = origin.customer_ca.client("someone-else", None);
    let (status, body) = origin
        .request(Some(&other), Method::POST, "/records", "no")
        .await
        .expect("request");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("CN=someone-else"), "{body}");
    assert!(body.contains("CN=Customer CA"), "{body}");
    origin.stop().await;
}

#[tokio::test]
async fn whoami_over_http2() {
    let origin = Running::start().await;
    let writer = origin.identity_ca.worker("writer");

    let tls = origin.connect(Some(&writer), b"h2").await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    for _ in 0..2 {
        let req = Request::builder()
            .uri("https://localhost/whoami")
            .header("sigil-worker", "writer")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let body = String::from_utf8_lossy(&body);
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines[0], "spiffe_id=spiffe://sigil.local/worker/writer");
        assert_eq!(lines[1], "subject=CN=writer");
        assert_eq!(lines[2], "issuer=CN=Sigil identity CA");
        assert!(lines[3].starts_with("serial="), "{body}");
        assert_eq!(lines[4], "sni=localhost");
        assert_eq!(lines[5], "alpn=h2");
        assert_eq!(lines[6], "sigil-worker=writer");
    }
    drop(sender);

    let (_, stats) = origin
        .request(Some(&writer), Method::GET, "/stats", "")
        .await
        .expect("stats");
    assert_eq!(stats, "handshakes=2 requests=3\n");
    origin.stop().await;
}

#[tokio::test]
async fn bad_configuration_is_reported() {
    let dir = TempDir::new();
    let empty = dir.write("empty.pem", "");
    let err = Args::try_parse_from([
        "sigil-example-origin",
        "--cert",
        &empty,
        "--key",
        &empty,
        "--client-ca",
        &empty,
        "--writer",
        "spiffe://other.domain/worker/writer",
    ])
    .expect("args")
    .load()
    .expect_err("wrong trust domain");
    assert!(err.to_string().contains("other.domain"), "{err:#}");

    let err = Args::try_parse_from([
        "sigil-example-origin",
        "--cert",
        &empty,
        "--key",
        &empty,
        "--client-ca",
        &empty,
    ])
    .expect("args")
    .load()
    .expect_err("empty cert file");
    assert!(
        format!("{err:#}").contains("contains no certificates"),
        "{err:#}"
    );

    assert!(
        Args::try_parse_from([
            "sigil-example-origin",
            "--cert",
            "c",
            "--key",
            "k",
            "--client-ca",
            "a",
            "--writer",
            "writer",
        ])
        .is_err()
    );
}
