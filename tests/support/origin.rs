//! A real mTLS origin on loopback that records which client certificate each
//! request arrived with (verified by rustls against the given CAs).

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
use tokio::net::TcpListener;
use x509_parser::prelude::*;

/// What the origin saw for one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// CN of the verified client certificate, if any.
    pub cn: Option<String>,
    /// Serial of the client certificate (upper-case hex), if any.
    pub serial: Option<String>,
    /// URI SANs of the client certificate.
    pub uris: Vec<String>,
    /// The request path and query.
    pub path: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
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

/// Details of a DER certificate: (CN, serial hex, URI SANs).
pub fn cert_identity(der: &[u8]) -> (Option<String>, String, Vec<String>) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
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
    (cn, serial, uris)
}

impl Origin {
    /// Start an origin with server cert/key, trusting `client_cas`; client
    /// certificates are required when `require` is true, else optional.
    pub async fn start(cert: &Path, key: &Path, client_cas: &[&Path], require: bool) -> Origin {
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
                    let ident = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| cert_identity(c.as_ref()));
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        let ident = ident.clone();
                        async move {
                            let (cn, serial, uris) = match ident {
                                Some((cn, serial, uris)) => (cn, Some(serial), uris),
                                None => (None, None, Vec::new()),
                            };
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
                            let body =
                                format!("cn={} path={path}", cn.as_deref().unwrap_or("none"));
                            seen.lock().unwrap().push(Seen {
                                cn,
                                serial,
                                uris,
                                path,
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
