//! A loopback mTLS origin: requires client certificates, answers a small
//! body, counts TLS handshakes and records the client certificate's CN of
//! every request, so a benchmark can check connection reuse and that each
//! request carried the expected identity.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use serde::Serialize;

use super::{ServerHandle, serve_connection, spawn_server, text};
use crate::pki::{CertKeyPem, TestPki};
use crate::tls::server_config;

/// Response header carrying the CN of the client certificate the origin saw.
pub const CLIENT_CN_HEADER: &str = "x-client-cn";

/// The CN recorded for a connection without a parseable client certificate.
pub const NO_CN: &str = "<none>";

/// Configuration of [`start`].
#[derive(Clone)]
pub struct MtlsOriginConfig {
    /// Address to bind; `127.0.0.1:0` by default.
    pub listen: SocketAddr,
    /// Server certificate (must cover `localhost` for [`MtlsOrigin::url`]).
    pub server: CertKeyPem,
    /// CA bundle (PEM) whose client certificates are accepted.
    pub client_ca_pem: String,
    /// Response body.
    pub body: Bytes,
}

impl MtlsOriginConfig {
    /// Uses the PKI's server certificate and CA, body `origin ok\n`.
    pub fn from_pki(pki: &TestPki) -> Self {
        MtlsOriginConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: pki.server().clone(),
            client_ca_pem: pki.ca_pem().to_string(),
            body: Bytes::from_static(b"origin ok\n"),
        }
    }
}

#[derive(Default)]
struct Stats {
    handshakes: AtomicU64,
    failed_handshakes: AtomicU64,
    requests: AtomicU64,
    by_cn: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl Stats {
    /// The per-CN request counter, created on first use (once per connection).
    fn counter(&self, cn: &str) -> Arc<AtomicU64> {
        let mut map = self.by_cn.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(cn.to_string()).or_default().clone()
    }
}

/// A snapshot of the origin's counters.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct OriginCounters {
    /// TLS handshakes completed (one per accepted connection).
    pub handshakes: u64,
    /// TLS handshakes that failed (e.g. no or untrusted client certificate).
    pub failed_handshakes: u64,
    /// Requests answered.
    pub requests: u64,
    /// Requests answered, by client certificate CN.
    pub requests_by_cn: BTreeMap<String, u64>,
}

/// A running mTLS origin.
pub struct MtlsOrigin {
    handle: ServerHandle,
    stats: Arc<Stats>,
}

impl MtlsOrigin {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.handle.addr()
    }

    /// `https://localhost:<port>` (the PKI's server certificate covers it).
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr().port())
    }

    /// Current counters.
    pub fn counters(&self) -> OriginCounters {
        let by_cn = self.stats.by_cn.lock().unwrap_or_else(|p| p.into_inner());
        OriginCounters {
            handshakes: self.stats.handshakes.load(Ordering::Relaxed),
            failed_handshakes: self.stats.failed_handshakes.load(Ordering::Relaxed),
            requests: self.stats.requests.load(Ordering::Relaxed),
            requests_by_cn: by_cn
                .iter()
                .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
                .collect(),
        }
    }

    /// Stops the origin.
    pub async fn shutdown(self) {
        self.handle.shutdown().await
    }
}

/// The CN of a DER certificate, if it has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// Starts the origin in-process.
pub async fn start(cfg: MtlsOriginConfig) -> Result<MtlsOrigin> {
    let tls = server_config(&cfg.server, Some(&cfg.client_ca_pem)).context("origin TLS config")?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let stats = Arc::new(Stats::default());
    let st = stats.clone();
    let body = cfg.body.clone();
    let handle = spawn_server(cfg.listen, move |tcp| {
        let acceptor = acceptor.clone();
        let stats = st.clone();
        let body = body.clone();
        async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    stats.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                    return tracing::debug!(error = %e, "origin TLS handshake failed");
                }
            };
            stats.handshakes.fetch_add(1, Ordering::Relaxed);
            let conn = tls.get_ref().1;
            let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
            let cn = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| common_name(c))
                .unwrap_or_else(|| NO_CN.to_string());
            let per_cn = stats.counter(&cn);
            let cn_value = hyper::header::HeaderValue::from_str(&cn)
                .unwrap_or(hyper::header::HeaderValue::from_static(NO_CN));
            serve_connection(tls, alpn, move |_req| {
                stats.requests.fetch_add(1, Ordering::Relaxed);
                per_cn.fetch_add(1, Ordering::Relaxed);
                let mut resp = text(200, body.clone());
                resp.headers_mut()
                    .insert(CLIENT_CN_HEADER, cn_value.clone());
                async move { resp }
            })
            .await;
        }
    })
    .await?;
    Ok(MtlsOrigin { handle, stats })
}
