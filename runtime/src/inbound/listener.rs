//! Accept loops: HTTPS (SNI selects the hostname policy before the
//! handshake completes), plain HTTP, and graceful draining on shutdown.

use super::client_auth::client_auth;
use super::forward::ForwardedClientCert;
use super::service::{ConnectionInfo, serve};
use crate::metrics::metrics;
use crate::server::Runtime;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use sigil_sdk::wire::CertVerified;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::LazyConfigAcceptor;

/// Longest time a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
                            let conn = Arc::new(ConnectionInfo {
                                hostname: None,
                                sni_matched: false,
                                client_auth: None,
                                forward: None,
                                scheme: "http",
                            });
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

async fn serve_connection<IO>(
    io: TokioIo<IO>,
    runtime: Arc<Runtime>,
    conn: Arc<ConnectionInfo>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| serve(runtime.clone(), conn.clone(), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(io, service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!("connection ended: {e}");
    }
}

fn handshake_metric(hostname: &str, result: &str) {
    metrics().inc(
        "sigil_tls_handshakes_total",
        "Inbound TLS handshakes by hostname and result (ok, or the failure reason).",
        &[("hostname", hostname), ("result", result)],
    );
}

fn failure_label(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::NoCertificatesPresented) => "no_client_certificate".into(),
        Some(rustls::Error::InvalidCertificate(c)) => {
            format!("client_certificate_{c:?}").to_ascii_lowercase()
        }
        Some(rustls::Error::AlertReceived(a)) => format!("alert_{a:?}").to_ascii_lowercase(),
        Some(rustls::Error::General(_)) => "client_certificate_rejected".into(),
        Some(other) => format!("{other:?}")
            .chars()
            .take(40)
            .collect::<String>()
            .to_ascii_lowercase(),
        None => format!("{:?}", e.kind()).to_ascii_lowercase(),
    }
}

async fn serve_tls(
    stream: TcpStream,
    runtime: Arc<Runtime>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            tracing::debug!("TLS client hello failed: {e}");
            handshake_metric("-", "bad_client_hello");
            return;
        }
        Err(_) => {
            handshake_metric("-", "timeout");
            return;
        }
    };
    let sni = start
        .client_hello()
        .server_name()
        .map(str::to_ascii_lowercase);
    let generation = runtime.current();
    let Some(policy) = generation.hostnames.select(sni.as_deref()).cloned() else {
        let reason = if sni.is_some() {
            "unknown_sni"
        } else {
            "no_sni"
        };
        tracing::info!(
            sni = sni.as_deref().unwrap_or("-"),
            "refused TLS connection: {reason} and no server.default_hostname"
        );
        handshake_metric(sni.as_deref().unwrap_or("-"), reason);
        return;
    };
    drop(generation);
    let sni_matched = sni.as_deref() == Some(&*policy.name);
    let tls = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        start.into_stream(policy.server_config.clone()),
    )
    .await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = failure_label(&e);
            tracing::info!(hostname = %policy.name, "TLS handshake failed: {e}");
            handshake_metric(&policy.name, &reason);
            return;
        }
        Err(_) => {
            handshake_metric(&policy.name, "timeout");
            return;
        }
    };
    handshake_metric(&policy.name, "ok");
    let (_, session) = tls.get_ref();
    let chain = session.peer_certificates();
    let auth = client_auth(&policy, chain);
    let forward = match (policy.forward_client_cert, chain) {
        (true, Some(chain)) if auth.cert_verified == CertVerified::Success => {
            ForwardedClientCert::new(chain, &auth).map(Arc::new)
        }
        _ => None,
    };
    let conn = Arc::new(ConnectionInfo {
        hostname: Some(policy.name.clone()),
        sni_matched,
        client_auth: Some(Arc::new(auth)),
        forward,
        scheme: "https",
    });
    serve_connection(TokioIo::new(tls), runtime, conn, watcher).await;
}
