//! What a server child runs: a [`ServerSpec`], written as JSON to a file
//! whose path the child gets on its command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::baseline::bare_proxy::{BareProxyConfig, Inbound};
use crate::baseline::bare_server::BareServerConfig;
use crate::baseline::mtls_origin::MtlsOriginConfig;
use crate::pki::CertKeyPem;

/// The server one child process runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ServerSpec {
    /// Sigil on this manifest (`Server::load` + `Server::serve`; listen
    /// addresses in it should be `127.0.0.1:0`).
    Sigil {
        /// The manifest file.
        manifest: PathBuf,
    },
    /// The bare hyper + rustls mTLS server.
    BareServer(BareServerSpec),
    /// The bare proxy: mTLS in, one reqwest client with one identity out.
    BareProxy(BareProxySpec),
    /// The mTLS origin counting handshakes.
    Origin(OriginSpec),
}

/// A [`BareServerConfig`] whose extra hostnames share one certificate,
/// stored once (10,000 copies of a PEM would make a 10 MB spec).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BareServerSpec {
    /// Server certificate of the primary hostnames.
    pub server: CertKeyPem,
    /// Primary hostnames.
    pub hostnames: Vec<String>,
    /// CA bundle for client certificates.
    pub client_ca_pem: String,
    /// Number of extra hostnames `h<i>.extra.bench.example`.
    pub extra: usize,
    /// The certificate every extra hostname presents.
    pub extra_cert: Option<CertKeyPem>,
}

impl BareServerSpec {
    /// From a configuration whose extra hostnames (if any) share one
    /// certificate, as `with_extra_hostnames(.., false)` makes them.
    pub fn from_config(cfg: &BareServerConfig) -> Result<Self> {
        let extra_cert = cfg.extra.first().map(|(_, c)| c.clone());
        if let Some(first) = &extra_cert {
            anyhow::ensure!(
                cfg.extra.iter().all(|(_, c)| c.cert_pem == first.cert_pem),
                "a server child needs extra hostnames that share one certificate"
            );
        }
        Ok(BareServerSpec {
            server: cfg.server.clone(),
            hostnames: cfg.hostnames.clone(),
            client_ca_pem: cfg.client_ca_pem.clone(),
            extra: cfg.extra.len(),
            extra_cert,
        })
    }

    /// The configuration, listening on `127.0.0.1:0`.
    pub fn to_config(&self) -> BareServerConfig {
        let cfg = BareServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: self.server.clone(),
            hostnames: self.hostnames.clone(),
            client_ca_pem: self.client_ca_pem.clone(),
            extra: Vec::new(),
        };
        match &self.extra_cert {
            Some(cert) => cfg.with_shared_extra_hostnames(self.extra, cert),
            None => cfg,
        }
    }
}

/// A [`BareProxyConfig`] with mTLS inbound.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BareProxySpec {
    /// Server certificate presented to clients.
    pub server: CertKeyPem,
    /// CA bundle for client certificates.
    pub client_ca_pem: String,
    /// Origin base URL.
    pub origin_url: String,
    /// CA bundle that verifies the origin.
    pub origin_ca_pem: String,
    /// The identity presented to the origin.
    pub identity: CertKeyPem,
    /// reqwest `pool_max_idle_per_host`.
    pub pool_max_idle_per_host: usize,
    /// Offer `h2` to the origin.
    pub origin_http2: bool,
    /// Per-request timeout towards the origin, milliseconds.
    pub timeout_ms: u64,
}

impl BareProxySpec {
    /// From a configuration with mTLS inbound (client certificates required).
    pub fn from_config(cfg: &BareProxyConfig) -> Result<Self> {
        let Inbound::Tls {
            server,
            client_ca_pem,
        } = &cfg.inbound
        else {
            anyhow::bail!("a proxy child needs TLS inbound");
        };
        Ok(BareProxySpec {
            server: server.clone(),
            client_ca_pem: client_ca_pem
                .clone()
                .context("a proxy child needs client certificates inbound")?,
            origin_url: cfg.origin_url.clone(),
            origin_ca_pem: cfg.origin_ca_pem.clone(),
            identity: cfg.identity.clone(),
            pool_max_idle_per_host: cfg.pool_max_idle_per_host,
            origin_http2: cfg.origin_http2,
            timeout_ms: cfg.timeout.as_millis() as u64,
        })
    }

    /// The configuration, listening on `127.0.0.1:0`.
    pub fn to_config(&self) -> BareProxyConfig {
        BareProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            inbound: Inbound::Tls {
                server: self.server.clone(),
                client_ca_pem: Some(self.client_ca_pem.clone()),
            },
            origin_url: self.origin_url.clone(),
            origin_ca_pem: self.origin_ca_pem.clone(),
            identity: self.identity.clone(),
            pool_max_idle_per_host: self.pool_max_idle_per_host,
            origin_http2: self.origin_http2,
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

/// An [`MtlsOriginConfig`] with the default body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OriginSpec {
    /// Server certificate (must cover `localhost`).
    pub server: CertKeyPem,
    /// CA bundle for client certificates.
    pub client_ca_pem: String,
}

impl OriginSpec {
    /// From a configuration (its body is not carried: the child answers
    /// with the default body).
    pub fn from_config(cfg: &MtlsOriginConfig) -> Self {
        OriginSpec {
            server: cfg.server.clone(),
            client_ca_pem: cfg.client_ca_pem.clone(),
        }
    }

    /// The configuration, listening on `127.0.0.1:0`.
    pub fn to_config(&self) -> MtlsOriginConfig {
        MtlsOriginConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: self.server.clone(),
            client_ca_pem: self.client_ca_pem.clone(),
            body: bytes::Bytes::from_static(b"origin ok\n"),
        }
    }
}
