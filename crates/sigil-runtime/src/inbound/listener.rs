//! Accept loops: HTTPS (SNI selects the hostname policy before the
//! handshake completes), plain HTTP, and graceful draining on shutdown.

use super::connection::serve_connection;
use super::handshake::serve_tls;
use crate::state::{ConnectionInfo, Runtime};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Whether a listener speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTPS with per-hostname policies.
    Https,
    /// Plain HTTP.
    Http,
}

/// Accept connections on `listener` until `stop` turns true, then let open
/// connections finish their requests for up to `drain`.
pub async fn run(
    listener: TcpListener,
    protocol: Protocol,
    runtime: Arc<Runtime>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let runtime = runtime.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    match protocol {
                        Protocol::Https => serve_tls(stream, runtime, watcher).await,
                        Protocol::Http => {
                            let conn = Arc::new(ConnectionInfo::plain());
                            serve_connection(TokioIo::new(stream), runtime, conn, watcher).await
                        }
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still open after {drain:?}; closing them");
    }
}
