//! A real mTLS origin on loopback that records which client certificate each
//! request arrived with (verified by rustls against the given CAs), when it
//! arrived, and whether its TLS session was resumed.

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

/// A client certificate as the origin saw it.
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

pub fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
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

/// What the origin saw for one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Unix time (seconds, fractional) when the request arrived.
    pub at: f64,
    /// The verified client certificate, if any.
    pub peer: Option<PeerCert>,
    /// CN of the client certificate, if any.
    pub cn: Option<String>,
    /// Serial of the client certificate (upper-case hex), if any.
    pub serial: Option<String>,
    /// URI SANs of the client certificate.
    pub uris: Vec<String>,
    /// The request path and query.
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

/// Details of a DER certificate: (CN, serial hex, URI SANs).
pub fn cert_identity(der: &[u8]) -> (Option<String>, String, Vec<String>) {
    let p = PeerCert::parse(der, 1);
    (p.cn, p.serial, p.uris)
}

/// How the origin answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `cn=<cn> path=<path>`
    Cn,
    /// `cn=<cn> uri=<uri sans> path=<path>`
    CnAndUri,
    /// No HTTP at all: every connection is closed right after its TLS
    /// handshake, which is recorded with path `(handshake)` (a client then
    /// sees an ambiguous failure).
    HangUp,
}

/// A running origin.
pub struct Origin {
    /// Its address.
    pub addr: SocketAddr,
    /// Requests seen, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// TLS handshakes completed.
    pub handshakes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn load_roots(cas: &[&Path]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        for c in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
    }
    roots
}

impl Origin {
    /// Start an origin with server cert/key, trusting `client_cas`; client
    /// certificates are required when `require` is true, else optional.
    /// It answers `cn=<cn> path=<path>`; a path starting with `/slow` waits 2 s.
    pub async fn start(cert: &Path, key: &Path, client_cas: &[&Path], require: bool) -> Origin {
        Self::start_with(cert, key, client_cas, require, Body::Cn).await
    }

    /// Like [`start`](Self::start), choosing the response body.
    pub async fn start_with(
        cert: &Path,
        key: &Path,
        client_cas: &[&Path],
        require: bool,
        body: Body,
    ) -> Origin {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(load_roots(client_cas)),
            provider.clone(),
        );
        if !require {
            verifier = verifier.allow_unauthenticated();
        }
        let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier.build().unwrap())
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
                    if let Body::HangUp = body {
                        seen.lock().unwrap().push(Seen {
                            at: unix_now(),
                            cn: peer.as_ref().and_then(|p| p.cn.clone()),
                            serial: peer.as_ref().map(|p| p.serial.clone()),
                            uris: peer.as_ref().map(|p| p.uris.clone()).unwrap_or_default(),
                            peer,
                            path: "(handshake)".into(),
                            resumed,
                            headers: Vec::new(),
                        });
                        return;
                    }
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
                            if path.starts_with("/slow") {
                                // A slow origin, for drain tests.
                                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                            }
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
                            let cn = peer.as_ref().and_then(|p| p.cn.clone());
                            let text = match body {
                                Body::Cn => {
                                    format!("cn={} path={path}", cn.as_deref().unwrap_or("none"))
                                }
                                Body::HangUp => String::new(),
                                Body::CnAndUri => format!(
                                    "cn={} uri={} path={path}",
                                    cn.as_deref().unwrap_or("none"),
                                    peer.as_ref()
                                        .map(|p| p.uris.join(","))
                                        .unwrap_or_else(|| "none".into()),
                                ),
                            };
                            seen.lock().unwrap().push(Seen {
                                at,
                                cn,
                                serial: peer.as_ref().map(|p| p.serial.clone()),
                                uris: peer.as_ref().map(|p| p.uris.clone()).unwrap_or_default(),
                                peer,
                                path,
                                resumed,
                                headers,
                            });
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from(text),
                            )))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Origin {
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
