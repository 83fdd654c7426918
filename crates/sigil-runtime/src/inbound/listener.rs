//! Accept loops: HTTPS (SNI selects the hostname policy before the
//! handshake completes) and plain HTTP, both under one `max_connections`
//! limit, backing off when `accept` fails, and draining gracefully on
//! shutdown.

use super::accept::Acceptor;
use super::connection::{ConnectionContext, HttpVersion, serve_connection};
use super::handshake::serve_tls;
use super::limit::{ConnectionLimit, ConnectionSlot};
use crate::config::ConnectionSettings;
use crate::state::{ConnectionInfo, Runtime};
use crate::telemetry::metrics::Listener;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Whether a listener speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTPS with per-hostname policies.
    Https,
    /// Plain HTTP.
    Http,
}

impl Protocol {
    /// The listener's label in metrics.
    pub fn label(self) -> Listener {
        match self {
            Protocol::Https => Listener::https,
            Protocol::Http => Listener::http,
        }
    }
}

/// What the inbound listeners share.
#[derive(Clone)]
pub struct Inbound {
    /// The live state.
    pub runtime: Arc<Runtime>,
    /// Timeouts and limits for every connection.
    pub settings: ConnectionSettings,
    /// The open connections across listeners.
    pub limit: Arc<ConnectionLimit>,
}

/// At most one log line per this interval about refusing connections at the limit.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accept connections on `listener` until `stop` turns true, then let open
/// connections finish their requests for up to `drain`.
pub async fn run(
    listener: TcpListener,
    protocol: Protocol,
    inbound: Inbound,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let label = protocol.label();
    let mut acceptor = Acceptor::new(listener, label);
    let (draining, _) = watch::channel(false);
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        tokio::select! {
            stream = acceptor.accept() => {
                let Some(slot) = inbound.limit.try_acquire(label) else {
                    drop(stream);
                    log_refusal(&inbound.limit, label, &mut last_refusal_log);
                    continue;
                };
                let context = ConnectionContext {
                    settings: inbound.settings,
                    listener: label,
                    drain: draining.subscribe(),
                };
                tokio::spawn(serve(stream, protocol, inbound.runtime.clone(), context, slot));
            }
            _ = stop.changed() => break,
        }
    }
    drop(acceptor);
    let _ = draining.send(true);
    if tokio::time::timeout(drain, draining.closed())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still open after {drain:?}; closing them");
    }
}

/// Serve one accepted connection; its slot is freed when it ends.
async fn serve(
    stream: TcpStream,
    protocol: Protocol,
    runtime: Arc<Runtime>,
    context: ConnectionContext,
    _slot: ConnectionSlot,
) {
    let _ = stream.set_nodelay(true);
    match protocol {
        Protocol::Https => serve_tls(stream, runtime, context).await,
        Protocol::Http => {
            let conn = Arc::new(ConnectionInfo::plain());
            serve_connection(stream, runtime, conn, context, HttpVersion::FromFirstBytes).await
        }
    }
}

fn log_refusal(limit: &ConnectionLimit, listener: Listener, last: &mut Option<Instant>) {
    if last.is_some_and(|t| t.elapsed() < REFUSAL_LOG_INTERVAL) {
        return;
    }
    *last = Some(Instant::now());
    tracing::warn!(
        ?listener,
        open = limit.open(),
        "server.max_connections ({}) reached: closing new connections at once (counted in sigil_inbound_connections_closed_total{{reason=\"connection_limit\"}})",
        limit.max()
    );
}
