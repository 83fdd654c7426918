//! An async HTTPS load generator built on hyper 1 client connections over
//! tokio-rustls, so that each mode is exact and the number of TLS
//! handshakes is known:
//!
//! * [`Mode::H1KeepAlive`]: one HTTP/1.1 keep-alive connection per worker
//!   (`concurrency` connections, requests in sequence on each);
//! * [`Mode::H2`]: `h2_connections` HTTP/2 connections shared by all
//!   workers (requests multiplexed);
//! * [`Mode::NewConnectionPerRequest`]: TCP connect + full TLS handshake
//!   (session resumption off unless [`LoadConfig::tls_resumption`]) +
//!   one HTTP/1.1 request with `Connection: close`, every request.
//!
//! Run with [`run`]; read the result in a [`LoadReport`]. [`run_with_window`]
//! also calls a probe at both ends of the measured phase (the suite reads
//! the servers' CPU time there).

mod report;
mod worker;

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::pki::CertKeyPem;

pub use report::{LatencyUs, LoadReport};
pub use worker::{Windowed, run, run_with_window};

/// How requests are carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// HTTP/1.1, one keep-alive connection per worker.
    H1KeepAlive,
    /// HTTP/2, a few connections multiplexed by all workers.
    H2,
    /// A new TCP + TLS connection (full handshake) per request, HTTP/1.1.
    NewConnectionPerRequest,
}

impl Mode {
    /// The CLI name: `h1`, `h2` or `new-conn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::H1KeepAlive => "h1",
            Mode::H2 => "h2",
            Mode::NewConnectionPerRequest => "new-conn",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "h1" | "h1-keep-alive" => Ok(Mode::H1KeepAlive),
            "h2" => Ok(Mode::H2),
            "new-conn" | "new-connection-per-request" => Ok(Mode::NewConnectionPerRequest),
            other => anyhow::bail!("unknown mode {other:?} (expected h1, h2 or new-conn)"),
        }
    }
}

/// When the measured phase ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this long (requests in flight are completed and counted).
    Duration(Duration),
    /// After this many requests (successful or not) have been issued.
    Requests(u64),
    /// Whichever comes first: the duration or the request count.
    First(Duration, u64),
}

/// Trust and identity of the load generator's TLS client.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// CA bundle (PEM) that verifies the server.
    pub ca_pem: Vec<u8>,
    /// Client certificate and key to present, if any.
    pub identity: Option<CertKeyPem>,
}

impl ClientTls {
    /// From PEM strings already in memory.
    pub fn from_pem(ca_pem: &str, identity: Option<&CertKeyPem>) -> Self {
        ClientTls {
            ca_pem: ca_pem.as_bytes().to_vec(),
            identity: identity.cloned(),
        }
    }

    /// From PEM files; `cert` and `key` must be given together.
    pub fn from_files(ca: &Path, cert: Option<&Path>, key: Option<&Path>) -> Result<Self> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        };
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some(CertKeyPem {
                cert_pem: read(c)?,
                key_pem: read(k)?,
            }),
            (None, None) => None,
            _ => anyhow::bail!("a client certificate needs both a certificate and a key file"),
        };
        Ok(ClientTls {
            ca_pem: read(ca)?.into_bytes(),
            identity,
        })
    }
}

/// Configuration of one load run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Label shown in the report (e.g. `sigil hello` or `bare hello`).
    pub label: String,
    /// Target URL; must be `https`. Its host is the SNI and `Host` unless
    /// `server_name` overrides them; its path and query are requested.
    pub url: http::Uri,
    /// Address to connect to instead of resolving the URL's host
    /// (like curl's `--connect-to`).
    pub connect: Option<SocketAddr>,
    /// SNI and `Host` / `:authority` override, e.g. `pay.alpha.example`.
    pub server_name: Option<String>,
    /// Client trust and identity.
    pub tls: ClientTls,
    /// Connection mode.
    pub mode: Mode,
    /// Concurrent workers (each has at most one request in flight).
    pub concurrency: usize,
    /// Number of connections in [`Mode::H2`] (ignored otherwise).
    pub h2_connections: usize,
    /// End of the measured phase.
    pub stop: Stop,
    /// Warm-up before measuring: same load, results discarded.
    pub warmup: Duration,
    /// Per-request timeout (connect + handshake included).
    pub request_timeout: Duration,
    /// Allow TLS session resumption (off by default, so new-conn mode does
    /// a full handshake every time).
    pub tls_resumption: bool,
}

impl LoadConfig {
    /// A config for `url` with defaults: HTTP/1.1 keep-alive, concurrency
    /// 16, one HTTP/2 connection, 5 s measured after 1 s of warm-up, 10 s
    /// request timeout, no resumption.
    pub fn new(url: &str, tls: ClientTls) -> Result<Self> {
        let url: http::Uri = url
            .parse()
            .with_context(|| format!("invalid URL {url:?}"))?;
        anyhow::ensure!(
            url.scheme_str() == Some("https"),
            "the load generator needs an https URL, got {url}"
        );
        anyhow::ensure!(url.host().is_some(), "URL {url} has no host");
        Ok(LoadConfig {
            label: String::new(),
            url,
            connect: None,
            server_name: None,
            tls,
            mode: Mode::H1KeepAlive,
            concurrency: 16,
            h2_connections: 1,
            stop: Stop::Duration(Duration::from_secs(5)),
            warmup: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            tls_resumption: false,
        })
    }
}
