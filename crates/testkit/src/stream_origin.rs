//! A real mTLS origin on loopback for streaming tests: a request body is
//! read to its end (counted, never held), then answered with as many bytes
//! (each the body's first byte), or with n bytes for `GET /bytes/<n>`; each
//! request's client certificate CN and byte count are recorded.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

type Chunk = Result<Frame<Bytes>, std::io::Error>;

/// What the origin saw for one request.
#[derive(Debug, Clone)]
pub struct Streamed {
    /// The client certificate's CN, if any.
    pub cn: Option<String>,
    /// Request path.
    pub path: String,
    /// Bytes of the request body.
    pub received: u64,
}

/// A running streaming origin.
pub struct StreamOrigin {
    /// Its address.
    pub addr: SocketAddr,
    /// Requests seen (a request appears once its body ended).
    pub seen: Arc<Mutex<Vec<Streamed>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StreamOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn server_config(cert: &Path, key: &Path, client_ca: &Path) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(client_ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// The response body for one request: its own body echoed, or n bytes.
fn answer(
    req: http::Request<hyper::body::Incoming>,
    record: impl FnOnce(u64) + Send + 'static,
) -> http::Response<ChannelBody> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(4);
    let path = req.uri().path().to_string();
    let wanted = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<u64>().ok());
    tokio::spawn(async move {
        let mut body = req.into_body();
        let (mut received, mut first) = (0u64, None);
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                received += data.len() as u64;
                first = first.or(data.first().copied());
            }
        }
        let mut left = wanted.unwrap_or(received);
        let chunk = Bytes::from(vec![first.unwrap_or(b'o'); 64 * 1024]);
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if tx.send(Ok(Frame::data(chunk.slice(..n)))).await.is_err() {
                break;
            }
            left -= n as u64;
        }
        record(received);
    });
    http::Response::new(ChannelBody(rx))
}

/// A response body fed through a channel.
pub struct ChannelBody(tokio::sync::mpsc::Receiver<Chunk>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Chunk>> {
        self.0.poll_recv(cx)
    }
}

impl StreamOrigin {
    /// Start an origin with `cert`/`key`, verifying client certificates
    /// (optional) against `client_ca`.
    pub async fn start(cert: &Path, key: &Path, client_ca: &Path) -> StreamOrigin {
        let acceptor =
            tokio_rustls::TlsAcceptor::from(Arc::new(server_config(cert, key, client_ca)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen2.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let cn = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|leaf| crate::origin::PeerCert::parse(leaf.as_ref(), 1).cn);
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (seen, cn) = (seen.clone(), cn.clone());
                        let path = req.uri().path().to_string();
                        let record = move |received| {
                            seen.lock().unwrap().push(Streamed { cn, path, received })
                        };
                        async move { Ok::<_, std::convert::Infallible>(answer(req, record)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        StreamOrigin { addr, seen, task }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }
}
