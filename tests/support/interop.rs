//! Origins for the identity tests: a recording rustls origin that keeps the
//! whole peer certificate and the time each request arrived, nginx (the
//! Debian package) and a Python `ssl` origin, all on 127.0.0.1; plus an
//! independent SPIFFE X.509-SVID check with x509-parser.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::*;

/// A client certificate as the recording origin saw it.
#[derive(Debug, Clone)]
pub struct PeerCert {
    /// DER of the leaf.
    pub der: Vec<u8>,
    /// Certificates the client sent (leaf included).
    pub chain_len: usize,
    /// Subject CN.
    pub cn: Option<String>,
    /// Serial, upper-case hex.
    pub serial: String,
    /// URI SANs.
    pub uris: Vec<String>,
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds.
    pub not_after: i64,
}

impl PeerCert {
    /// Parse a DER leaf.
    pub fn parse(der: &[u8], chain_len: usize) -> PeerCert {
        let (_, cert) = X509Certificate::from_der(der).expect("peer certificate parses");
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .map(str::to_string);
        let serial = cert
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        PeerCert {
            der: der.to_vec(),
            chain_len,
            cn,
            serial,
            uris: uri_sans(&cert),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        }
    }

    /// Whether the certificate is valid at unix time `secs` (X.509 validity is
    /// inclusive and has one-second resolution).
    pub fn valid_at(&self, secs: f64) -> bool {
        let s = secs.floor() as i64;
        self.not_before <= s && s <= self.not_after
    }
}

fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject_alternative_name()
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
        .unwrap_or_default()
}

/// One request the recording origin answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Unix time (seconds, fractional) when the request arrived.
    pub at: f64,
    /// The verified client certificate, if any.
    pub peer: Option<PeerCert>,
    /// Path and query.
    pub path: String,
    /// Whether the connection was a resumed TLS session (its client
    /// certificate is then the one from the original handshake).
    pub resumed: bool,
    /// Request headers.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// Values of header `name`.
    pub fn header(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Unix time now, in fractional seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A rustls mTLS origin that records every request with its client
/// certificate and arrival time, answering `cn=<cn> uri=<uri> path=<path>`.
pub struct RecordingOrigin {
    /// Its address.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// TLS handshakes completed.
    pub handshakes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RecordingOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RecordingOrigin {
    /// Start with server `cert`/`key`, trusting client certificates from
    /// `client_ca`; a client certificate is optional (absent ones are recorded
    /// as `peer: None`) but one that is presented must verify.
    pub async fn start(cert: &Path, key: &Path, client_ca: &Path) -> RecordingOrigin {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(client_ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .unwrap();
        let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handshakes = Arc::new(AtomicU64::new(0));
        let (seen2, hs2) = (seen.clone(), handshakes.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let seen = seen2.clone();
                let hs = hs2.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    hs.fetch_add(1, Ordering::Relaxed);
                    let resumed =
                        tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                    let peer = tls.get_ref().1.peer_certificates().and_then(|chain| {
                        chain
                            .first()
                            .map(|leaf| PeerCert::parse(leaf.as_ref(), chain.len()))
                    });
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        let peer = peer.clone();
                        async move {
                            let at = unix_now();
                            let path = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        k.to_string(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect();
                            let body = format!(
                                "cn={} uri={} path={path}",
                                peer.as_ref()
                                    .and_then(|p| p.cn.as_deref())
                                    .unwrap_or("none"),
                                peer.as_ref()
                                    .map(|p| p.uris.join(","))
                                    .unwrap_or_else(|| "none".into()),
                            );
                            seen.lock().unwrap().push(Seen {
                                at,
                                peer,
                                path,
                                resumed,
                                headers,
                            });
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from(body),
                            )))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        RecordingOrigin {
            addr,
            seen,
            handshakes,
            task,
        }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Check `der` is a Sigil worker X.509-SVID in `trust_domain` the way an
/// origin would (the rules `sigil_origin::IdentityVerifier` applies): exactly
/// one URI SAN `spiffe://<trust_domain>/worker/<name>` with a valid path,
/// leaf not a CA, no keyCertSign / cRLSign, clientAuth EKU. Returns the
/// worker name.
pub fn identify_worker(der: &[u8], trust_domain: &str) -> Result<String, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| format!("parse: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the certificate".into());
    }
    let uris = uri_sans(&cert);
    if uris.len() != 1 {
        return Err(format!(
            "{} URI SANs ({uris:?}); an SVID has exactly one",
            uris.len()
        ));
    }
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) if bc.ca => {
                return Err("leaf is a CA (basicConstraints CA:true)".into());
            }
            ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => {
                return Err("leaf has keyCertSign or cRLSign".into());
            }
            _ => {}
        }
    }
    let eku = cert
        .extended_key_usage()
        .map_err(|e| format!("EKU: {e}"))?
        .ok_or("no extended key usage extension")?;
    if !eku.value.client_auth {
        return Err("EKU lacks clientAuth".into());
    }
    let prefix = format!("spiffe://{trust_domain}/worker/");
    let name = uris[0]
        .strip_prefix(&prefix)
        .ok_or_else(|| format!("{:?} is not a worker of {trust_domain}", uris[0]))?;
    let ok_segment = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !ok_segment || uris[0].len() > 2048 {
        return Err(format!("{:?}: invalid SPIFFE worker path", uris[0]));
    }
    Ok(name.to_string())
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until `port` accepts TCP connections, or panic with `describe()` if
/// `child` exits or `timeout` passes.
fn wait_listening(
    port: u16,
    child: &mut Child,
    timeout: Duration,
    what: &str,
    describe: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening:\n{}",
                describe()
            );
        }
        if Instant::now() > deadline {
            panic!(
                "{what} did not listen on 127.0.0.1:{port} within {timeout:?}:\n{}",
                describe()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process killed (and reaped) on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The nginx binary the Debian package installs.
pub const NGINX: &str = "/usr/sbin/nginx";

/// nginx as an mTLS origin, killed on drop.
pub struct Nginx {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its directory (config, logs, temp paths).
    pub dir: PathBuf,
    _child: Killed,
}

impl Nginx {
    /// Fail (never skip) when nginx is not installed.
    pub fn require() {
        let ok = Command::new(NGINX)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "{NGINX} not found or not runnable: this test needs nginx as a real mTLS origin; \
             install it with `apt-get install nginx-light` (Debian/Ubuntu)"
        );
    }

    /// Start nginx on a free port in `dir`, with server `cert`/`key`,
    /// requiring client certificates from `client_ca`, and `locations` (the
    /// body of the `server` block after the TLS settings).
    pub fn start(dir: &Path, cert: &Path, key: &Path, client_ca: &Path, locations: &str) -> Nginx {
        Self::require();
        let dir = dir.join("nginx");
        std::fs::create_dir_all(&dir).unwrap();
        let version = Command::new(NGINX).arg("-V").output().unwrap();
        let build = String::from_utf8_lossy(&version.stderr).into_owned();
        let d = dir.display();
        let mut temp_paths = format!("    client_body_temp_path {d}/client_body;\n");
        for module in ["proxy", "fastcgi", "uwsgi", "scgi"] {
            if !build.contains(&format!("--without-http_{module}_module")) {
                temp_paths.push_str(&format!("    {module}_temp_path {d}/{module};\n"));
            }
        }
        // Running as root, nginx would hand its temp paths to `nobody`.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;\n"
        } else {
            ""
        };
        let port = free_port();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\n{user}\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             {temp_paths}\
             \x20   access_log {d}/access.log;\n\
             \x20   default_type text/plain;\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port} ssl;\n\
             \x20       server_name localhost;\n\
             \x20       ssl_certificate {cert};\n\
             \x20       ssl_certificate_key {key};\n\
             \x20       ssl_client_certificate {ca};\n\
             \x20       ssl_verify_client on;\n\
             \x20       ssl_verify_depth 2;\n\
             {locations}\n\
             \x20   }}\n\
             }}\n",
            cert = cert.display(),
            key = key.display(),
            ca = client_ca.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, &conf).unwrap();
        let test = Command::new(NGINX)
            .arg("-t")
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .output()
            .unwrap();
        assert!(
            test.status.success(),
            "nginx -t refused the generated config:\n{}\n{conf}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut child = Killed(child);
        let log = dir.join("error.log");
        wait_listening(
            port,
            &mut child.0,
            Duration::from_secs(20),
            "nginx",
            &|| std::fs::read_to_string(&log).unwrap_or_default(),
        );
        Nginx {
            port,
            dir,
            _child: child,
        }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// A Python `ssl` HTTPS origin requiring a client certificate from the CA
/// and answering with what `getpeercert()` gave it.
const PYTHON_ORIGIN: &str = r#"
import http.server, ssl, sys

port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(ca)

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        peer = self.connection.getpeercert() or {}
        uris = [v for (k, v) in peer.get("subjectAltName", ()) if k == "URI"]
        cn = [v for rdn in peer.get("subject", ()) for (k, v) in rdn if k == "commonName"]
        worker = self.headers.get("sigil-worker", "")
        body = ("uri=%s cn=%s worker=%s" % (",".join(uris), ",".join(cn), worker)).encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("python-origin: " + (fmt % args) + "\n")

server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
# Handshake in the handler thread, so a failing client cannot stall accept().
server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
print("ready", flush=True)
server.serve_forever()
"#;

/// The Python origin, killed on drop.
pub struct PythonOrigin {
    /// Its port on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
    _child: Killed,
}

impl PythonOrigin {
    /// Write the script into `dir` and start it with server `cert`/`key`,
    /// requiring client certificates from `client_ca`.
    pub fn start(dir: &Path, cert: &Path, key: &Path, client_ca: &Path) -> PythonOrigin {
        let script = dir.join("origin.py");
        std::fs::write(&script, PYTHON_ORIGIN).unwrap();
        let log = dir.join("python-origin.log");
        let port = free_port();
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(cert)
            .arg(key)
            .arg(client_ca)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 must be installed to run the Python ssl interop test");
        let mut child = Killed(child);
        let log2 = log.clone();
        wait_listening(
            port,
            &mut child.0,
            Duration::from_secs(20),
            "python3",
            &|| std::fs::read_to_string(&log2).unwrap_or_default(),
        );
        PythonOrigin {
            port,
            log,
            _child: child,
        }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// What the script wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
