//! Naming a TLS failure the HTTP client could not see.
//!
//! In TLS 1.3 the client finishes its handshake before the origin checks the
//! client certificate; an origin that refuses it sends its alert afterwards,
//! and the HTTP client then reports only "connection closed". On such an
//! ambiguous failure we open one diagnostic connection with the same TLS
//! configuration and read the origin's verdict.

use super::pool::ClientPool;
use dashmap::DashMap;
use rustls::client::Resumption;
use rustls_pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long to wait for the origin's verdict once the handshake is done.
const VERDICT_WAIT: Duration = Duration::from_millis(1500);

/// At most one diagnostic connection per origin in this period.
const PER_ORIGIN: Duration = Duration::from_secs(1);

fn tls_error(e: &std::io::Error) -> Option<rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned()
}

/// Whether a diagnostic connection to `origin` may be opened now (at most
/// one per origin per [`PER_ORIGIN`], so a failing origin is not flooded).
fn admitted(origin: &str) -> bool {
    static LAST: OnceLock<DashMap<String, Instant>> = OnceLock::new();
    let last = LAST.get_or_init(DashMap::new);
    let now = Instant::now();
    if last.len() > 4096 {
        last.retain(|_, at| now.duration_since(*at) < PER_ORIGIN);
    }
    let mut entry = last.entry(origin.to_string()).or_insert(now - PER_ORIGIN);
    if now.duration_since(*entry) < PER_ORIGIN {
        return false;
    }
    *entry = now;
    true
}

/// Connect to `host:port` as `pool` would — through its resolver (so blocked
/// networks stay blocked), within its connect timeout, presenting its
/// current certificate with no session resumption (a resumed session would
/// carry the identity of an older handshake) — complete the handshake, and
/// return the TLS error the origin answers with, if any.
pub async fn tls_verdict(
    pool: &ClientPool,
    host: &str,
    port: u16,
    trusted: bool,
) -> Option<rustls::Error> {
    if !admitted(&format!("{}@{host}:{port}", pool.label)) {
        return None;
    }
    let name = ServerName::try_from(host.to_string()).ok()?;
    let mut config = (*pool.tls).clone();
    config.resumption = Resumption::disabled();
    let connect = async {
        let addrs = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => pool.resolver(trusted).lookup(host, port).await.ok()?,
        };
        let tcp = TcpStream::connect(&addrs[..]).await.ok()?;
        Some(
            tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await,
        )
    };
    let tls = match tokio::time::timeout(pool.connect_timeout(), connect).await {
        Ok(Some(Ok(tls))) => tls,
        Ok(Some(Err(e))) => return tls_error(&e),
        _ => return None,
    };
    let mut tls = tls;
    let mut buf = [0u8; 1];
    match tokio::time::timeout(VERDICT_WAIT, tls.read(&mut buf)).await {
        Ok(Err(e)) => tls_error(&e),
        _ => None,
    }
}
