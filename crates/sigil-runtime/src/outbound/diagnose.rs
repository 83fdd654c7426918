//! Naming a TLS failure the HTTP client could not see.
//!
//! In TLS 1.3 the client finishes its handshake before the origin checks the
//! client certificate; an origin that refuses it sends its alert afterwards,
//! and the HTTP client then reports only "connection closed". On such an
//! ambiguous failure we open one diagnostic connection with the same TLS
//! configuration and read the origin's verdict.

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long the diagnostic connection may take.
const DIAGNOSE_TIMEOUT: Duration = Duration::from_secs(3);

fn tls_error(e: &std::io::Error) -> Option<rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned()
}

/// Connect to `host:port` with `config`, complete the handshake, and return
/// the TLS error the origin answers with, if any.
pub async fn tls_verdict(
    config: Arc<ClientConfig>,
    host: &str,
    port: u16,
) -> Option<rustls::Error> {
    let name = ServerName::try_from(host.to_string()).ok()?;
    let attempt = async {
        let tcp = TcpStream::connect((host, port)).await.ok()?;
        let mut tls = match tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
        {
            Ok(tls) => tls,
            Err(e) => return tls_error(&e),
        };
        let mut buf = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(1500), tls.read(&mut buf)).await {
            Ok(Err(e)) => tls_error(&e),
            _ => None,
        }
    };
    tokio::time::timeout(DIAGNOSE_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
}
