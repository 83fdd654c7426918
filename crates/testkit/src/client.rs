//! TLS clients for the tests: reqwest over a rustls config we control, and
//! raw hyper connections for SNI / Host / HTTP/2 reuse cases.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, RootCertStore};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A rustls client config trusting `ca` and presenting `client` (cert, key) if given.
pub fn tls_config(ca: &Path, client: Option<(&Path, &Path)>, alpn: &[&[u8]]) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A reqwest client that resolves `hosts` to `addr`, trusts `ca` and presents `client`.
pub fn https_client(
    addr: SocketAddr,
    hosts: &[&str],
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(ca, client, &[b"h2", b"http/1.1"]))
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30));
    for h in hosts {
        b = b.resolve(h, addr);
    }
    b.build().unwrap()
}

/// Open a TLS connection to `addr` with SNI `sni` (None: no SNI).
pub async fn tls_connect(
    addr: SocketAddr,
    sni: Option<&str>,
    mut config: ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = match sni {
        Some(s) => ServerName::try_from(s.to_string()).unwrap(),
        None => {
            config.enable_sni = false;
            ServerName::IpAddress(addr.ip().into())
        }
    };
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Send GET requests with the given `authority` values over ONE connection
/// (HTTP/2 if `h2`, else HTTP/1.1 keep-alive); returns (status, body) each.
pub async fn requests_on_one_connection(
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    h2: bool,
    requests: &[(&str, &str)],
) -> Vec<(u16, String)> {
    let io = hyper_util::rt::TokioIo::new(stream);
    let mut out = Vec::new();
    if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        for (authority, path) in requests {
            let req = http::Request::get(format!("https://{authority}{path}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            sender.ready().await.expect("h2 connection ready");
            let resp = sender.send_request(req).await.expect("h2 request");
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            out.push((status, String::from_utf8_lossy(&body).into_owned()));
        }
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        for (authority, path) in requests {
            let req = http::Request::get(*path)
                .header("host", *authority)
                .body(Empty::<Bytes>::new())
                .unwrap();
            sender.ready().await.expect("h1 connection ready");
            let resp = sender.send_request(req).await.expect("h1 request");
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            out.push((status, String::from_utf8_lossy(&body).into_owned()));
        }
    }
    out
}

/// Write `request` (raw bytes: a whole HTTP/1.1 request, with
/// `Connection: close` so the server closes after answering) to `stream` and
/// read everything the server sends until it closes (at most 10 s). Lets a
/// test send what a well-behaved client library refuses to: two `Host`
/// headers, odd `Transfer-Encoding`, absolute-form targets.
pub async fn raw_exchange<S>(mut stream: S, request: &[u8]) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.expect("write the request");
    let mut out = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await;
    if !matches!(read, Ok(Ok(_))) && out.is_empty() {
        return String::new();
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 response (0 when there is none).
pub fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Send `requests` over one HTTP/2 connection with the `h2` crate, which
/// (unlike higher-level clients) sends the `:authority` and `host` it is
/// given as they are. Returns (status, body) per request, or the error text.
pub async fn h2_exchange<S>(
    stream: S,
    requests: Vec<http::Request<()>>,
) -> Vec<Result<(u16, String), String>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = match h2::client::handshake(stream).await {
        Ok(x) => x,
        Err(e) => return vec![Err(format!("h2 handshake: {e}"))],
    };
    tokio::spawn(connection);
    let mut out = Vec::new();
    for request in requests {
        let result = async {
            let mut client = client.clone().ready().await.map_err(|e| e.to_string())?;
            let (response, _) = client
                .send_request(request, true)
                .map_err(|e| e.to_string())?;
            let response = response.await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                let _ = body.flow_control().release_capacity(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
        }
        .await;
        out.push(result);
    }
    out
}
