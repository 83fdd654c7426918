//! A bare proxy: a hyper server whose handler calls an mTLS origin through
//! one shared reqwest client holding one client identity, and returns the
//! origin's body. The lower bound for a Sigil worker that does one `fetch`
//! with a client certificate binding.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_rustls::TlsAcceptor;

use super::{ServerHandle, serve_connection, spawn_server, text};
use crate::pki::{CertKeyPem, TestPki};
use crate::tls::{alpn_h2_h1, client_config, server_config};

/// How clients reach the proxy.
#[derive(Clone)]
pub enum Inbound {
    /// Plain HTTP (HTTP/1.1, or HTTP/2 with prior knowledge).
    Plain,
    /// TLS with this server certificate; client certificates are required
    /// and verified against `client_ca_pem` when it is `Some`.
    Tls {
        /// Server certificate and key.
        server: CertKeyPem,
        /// CA bundle for client certificates; `None` = no client auth.
        client_ca_pem: Option<String>,
    },
}

/// Configuration of [`start`].
#[derive(Clone)]
pub struct BareProxyConfig {
    /// Address to bind; `127.0.0.1:0` by default.
    pub listen: SocketAddr,
    /// Inbound side.
    pub inbound: Inbound,
    /// Origin base URL, e.g. `https://localhost:9443`; the request's path
    /// and query are appended.
    pub origin_url: String,
    /// CA bundle (PEM) that verifies the origin's server certificate.
    pub origin_ca_pem: String,
    /// The one client identity presented to the origin.
    pub identity: CertKeyPem,
    /// reqwest `pool_max_idle_per_host`.
    pub pool_max_idle_per_host: usize,
    /// Offer `h2` in ALPN to the origin (else HTTP/1.1 only).
    pub origin_http2: bool,
    /// Per-request timeout towards the origin.
    pub timeout: Duration,
}

impl BareProxyConfig {
    /// mTLS inbound with the PKI's server certificate and CA, outbound to
    /// `origin_url` as client `client_cn` (which must exist in the PKI),
    /// HTTP/2 to the origin, pool of 32 idle connections.
    pub fn from_pki(pki: &TestPki, origin_url: &str, client_cn: &str) -> Result<Self> {
        let identity = pki
            .client(client_cn)
            .with_context(|| format!("no client certificate {client_cn} in the PKI"))?
            .clone();
        Ok(BareProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            inbound: Inbound::Tls {
                server: pki.server().clone(),
                client_ca_pem: Some(pki.ca_pem().to_string()),
            },
            origin_url: origin_url.trim_end_matches('/').to_string(),
            origin_ca_pem: pki.ca_pem().to_string(),
            identity,
            pool_max_idle_per_host: 32,
            origin_http2: true,
            timeout: Duration::from_secs(10),
        })
    }
}

/// Builds the shared reqwest client: rustls config with a fixed client
/// certificate resolver and the origin CA, passed with
/// `tls_backend_preconfigured`.
pub fn origin_client(cfg: &BareProxyConfig) -> Result<reqwest::Client> {
    let alpn = if cfg.origin_http2 {
        alpn_h2_h1()
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let tls = client_config(cfg.origin_ca_pem.as_bytes(), Some(&cfg.identity), alpn)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
        .timeout(cfg.timeout)
        .no_proxy()
        .build()
        .context("building reqwest client")
}

/// Starts the proxy in-process.
pub async fn start(cfg: BareProxyConfig) -> Result<ServerHandle> {
    let client = origin_client(&cfg)?;
    let acceptor = match &cfg.inbound {
        Inbound::Plain => None,
        Inbound::Tls {
            server,
            client_ca_pem,
        } => Some(TlsAcceptor::from(Arc::new(server_config(
            server,
            client_ca_pem.as_deref(),
        )?))),
    };
    let base: Arc<str> = cfg.origin_url.trim_end_matches('/').into();
    let handler = move |req: hyper::Request<hyper::body::Incoming>| {
        let client = client.clone();
        let url = format!(
            "{base}{}",
            req.uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        async move {
            let resp = match client.get(&url).send().await {
                Ok(r) => r,
                Err(e) => return text(502, format!("origin request failed: {e}\n")),
            };
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Ok(body) => text(status, body),
                Err(e) => text(502, format!("origin body failed: {e}\n")),
            }
        }
    };
    spawn_server(cfg.listen, move |tcp| {
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        async move {
            match acceptor {
                None => serve_connection(tcp, None, handler).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(tls) => {
                        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                        serve_connection(tls, alpn, handler).await
                    }
                    Err(e) => tracing::debug!(error = %e, "proxy TLS handshake failed"),
                },
            }
        }
    })
    .await
}
