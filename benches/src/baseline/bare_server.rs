//! A bare hyper + rustls mTLS server answering `hello`: the lower bound for
//! Sigil serving a worker that returns a constant.
//!
//! It requires and verifies client certificates ([`WebPkiClientVerifier`]),
//! speaks HTTP/1.1 and HTTP/2 (ALPN), and can hold N extra hostnames, each
//! with its own [`ServerConfig`] chosen by SNI through a
//! [`LazyConfigAcceptor`], so it is comparable with Sigil configured with
//! thousands of hostnames.
//!
//! [`WebPkiClientVerifier`]: rustls::server::WebPkiClientVerifier

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use rustls::ServerConfig;
use tokio_rustls::LazyConfigAcceptor;

use super::{ServerHandle, serve_connection, spawn_server, text};
use crate::pki::{CertKeyPem, TestPki};
use crate::tls::{certified_key, root_store, server_config_with_key};

/// The body every request gets.
pub const HELLO: &str = "hello from the bare server\n";

/// Suffix of the generated extra hostnames (`h<i>.extra.bench.example`).
pub const EXTRA_SUFFIX: &str = "extra.bench.example";

/// Configuration of [`start`].
#[derive(Clone)]
pub struct BareServerConfig {
    /// Address to bind; `127.0.0.1:0` by default.
    pub listen: SocketAddr,
    /// Server certificate used for `hostnames`, for clients sending no SNI
    /// and for unknown SNI names.
    pub server: CertKeyPem,
    /// Hostnames served with `server` (each gets its own `ServerConfig`).
    pub hostnames: Vec<String>,
    /// CA bundle (PEM) whose client certificates are accepted.
    pub client_ca_pem: String,
    /// Extra hostnames and their certificates, each with its own
    /// `ServerConfig` and client verifier.
    pub extra: Vec<(String, CertKeyPem)>,
}

impl BareServerConfig {
    /// Serves the PKI's server certificate for `hostnames`, trusting the
    /// PKI's CA for client certificates, on `127.0.0.1:0`.
    pub fn from_pki(pki: &TestPki, hostnames: &[&str]) -> Self {
        BareServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: pki.server().clone(),
            hostnames: hostnames.iter().map(|s| s.to_string()).collect(),
            client_ca_pem: pki.ca_pem().to_string(),
            extra: Vec::new(),
        }
    }

    /// Adds `n` extra hostnames `h<i>.extra.bench.example`. With
    /// `distinct_certs` each gets its own key and certificate (slow for
    /// large `n`: about a key generation per name); otherwise all share one
    /// `*.extra.bench.example` certificate (still one `ServerConfig` each).
    pub fn with_extra_hostnames(
        self,
        pki: &TestPki,
        n: usize,
        distinct_certs: bool,
    ) -> Result<Self> {
        if !distinct_certs {
            let shared = pki.issue_server(&[format!("*.{EXTRA_SUFFIX}")])?;
            return Ok(self.with_shared_extra_hostnames(n, &shared));
        }
        let mut cfg = self;
        for i in 0..n {
            let name = format!("h{i}.{EXTRA_SUFFIX}");
            let cert = pki.issue_server(std::slice::from_ref(&name))?;
            cfg.extra.push((name, cert));
        }
        Ok(cfg)
    }

    /// Adds `n` extra hostnames `h<i>.extra.bench.example` that all present
    /// `cert` (which should cover `*.extra.bench.example`).
    pub fn with_shared_extra_hostnames(mut self, n: usize, cert: &CertKeyPem) -> Self {
        for i in 0..n {
            self.extra
                .push((format!("h{i}.{EXTRA_SUFFIX}"), cert.clone()));
        }
        self
    }
}

/// A running bare server.
pub struct BareServer {
    handle: ServerHandle,
    handshakes: Arc<AtomicU64>,
    hostnames: usize,
}

impl BareServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.handle.addr()
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// Number of hostnames in the SNI map.
    pub fn hostnames(&self) -> usize {
        self.hostnames
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        self.handle.shutdown().await
    }
}

/// Starts the bare server in-process (needs a Tokio runtime and an
/// installed crypto provider).
pub async fn start(cfg: BareServerConfig) -> Result<BareServer> {
    let roots = Arc::new(root_store(cfg.client_ca_pem.as_bytes()).context("client CA bundle")?);
    let primary_key = certified_key(&cfg.server).context("server certificate")?;
    let default = Arc::new(server_config_with_key(
        primary_key.clone(),
        Some(roots.clone()),
    )?);
    let mut by_name: HashMap<String, Arc<ServerConfig>> =
        HashMap::with_capacity(cfg.hostnames.len() + cfg.extra.len());
    for name in &cfg.hostnames {
        let c = server_config_with_key(primary_key.clone(), Some(roots.clone()))?;
        by_name.insert(name.to_ascii_lowercase(), Arc::new(c));
    }
    // Certificates shared between extra hostnames are loaded once.
    let mut loaded: HashMap<String, Arc<rustls::sign::CertifiedKey>> = HashMap::new();
    for (name, cert) in &cfg.extra {
        let key = match loaded.get(&cert.cert_pem) {
            Some(k) => k.clone(),
            None => {
                let k = certified_key(cert).with_context(|| format!("certificate of {name}"))?;
                loaded.insert(cert.cert_pem.clone(), k.clone());
                k
            }
        };
        let c = server_config_with_key(key, Some(roots.clone()))?;
        by_name.insert(name.to_ascii_lowercase(), Arc::new(c));
    }
    let hostnames = by_name.len();
    let by_name = Arc::new(by_name);
    let handshakes = Arc::new(AtomicU64::new(0));
    let hs = handshakes.clone();
    let handle = spawn_server(cfg.listen, move |tcp| {
        let by_name = by_name.clone();
        let default = default.clone();
        let hs = hs.clone();
        async move {
            let start =
                match LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await {
                    Ok(s) => s,
                    Err(e) => return tracing::debug!(error = %e, "bad client hello"),
                };
            let config = start
                .client_hello()
                .server_name()
                .and_then(|sni| by_name.get(&sni.to_ascii_lowercase()).cloned())
                .unwrap_or(default);
            let tls = match start.into_stream(config).await {
                Ok(s) => s,
                Err(e) => return tracing::debug!(error = %e, "TLS handshake failed"),
            };
            hs.fetch_add(1, Ordering::Relaxed);
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            serve_connection(tls, alpn, |_req| async { text(200, HELLO) }).await;
        }
    })
    .await?;
    Ok(BareServer {
        handle,
        handshakes,
        hostnames,
    })
}
