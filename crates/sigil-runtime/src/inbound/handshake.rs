//! The server side of an inbound TLS handshake: SNI selects the hostname's
//! policy before the handshake completes; the verified client certificate
//! becomes the connection's [`ConnectionInfo`].

use super::client_auth::client_auth;
use super::connection::{ConnectionContext, serve_connection};
use super::timeouts::count_closed;
use crate::headers::ForwardedClientCert;
use crate::state::{ConnectionInfo, HostnamePolicy, Runtime};
use crate::telemetry::metrics::{CloseReason, HandshakeLabels, Listener, metrics};
use rustls_pki_types::CertificateDer;
use sigil_sdk::wire::CertVerified;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{LazyConfigAcceptor, StartHandshake};

fn handshake_metric(hostname: &str, result: &str) {
    metrics()
        .tls_handshakes
        .get_or_create(&HandshakeLabels {
            hostname: hostname.into(),
            result: result.into(),
        })
        .inc();
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

/// Complete a TLS handshake under the policy SNI selects (within
/// `tls_handshake_timeout`), then serve the connection.
pub(super) async fn serve_tls(
    stream: TcpStream,
    runtime: Arc<Runtime>,
    context: ConnectionContext,
) {
    let deadline = Instant::now() + context.settings.tls_handshake_timeout;
    let Some((tls, conn)) = handshake(stream, &runtime, deadline, context.listener).await else {
        return;
    };
    serve_connection(tls, runtime, conn, context).await;
}

/// A handshake that did not finish by its deadline.
fn timed_out(hostname: &str, listener: Listener) {
    handshake_metric(hostname, "timeout");
    count_closed(listener, CloseReason::tls_handshake_timeout);
}

/// The handshake, counted in `sigil_tls_handshakes_total`; `None` when it failed.
async fn handshake(
    stream: TcpStream,
    runtime: &Runtime,
    deadline: Instant,
    listener: Listener,
) -> Option<(TlsStream<TcpStream>, Arc<ConnectionInfo>)> {
    let start = client_hello(stream, deadline, listener).await?;
    let sni = start
        .client_hello()
        .server_name()
        .map(str::to_ascii_lowercase);
    let policy = select_policy(runtime, sni.as_deref())?;
    let sni_matched = sni.as_deref() == Some(&*policy.name);
    let completed =
        tokio::time::timeout_at(deadline, start.into_stream(policy.server_config.clone())).await;
    let tls = match completed {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = failure_label(&e);
            tracing::info!(hostname = %policy.name, "TLS handshake failed: {e}");
            handshake_metric(&policy.name, &reason);
            return None;
        }
        Err(_) => {
            timed_out(&policy.name, listener);
            return None;
        }
    };
    handshake_metric(&policy.name, "ok");
    let conn = connection_info(&policy, sni_matched, tls.get_ref().1.peer_certificates());
    Some((tls, Arc::new(conn)))
}

/// Read the client hello (by the handshake's deadline).
async fn client_hello(
    stream: TcpStream,
    deadline: Instant,
    listener: Listener,
) -> Option<StartHandshake<TcpStream>> {
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    match tokio::time::timeout_at(deadline, acceptor).await {
        Ok(Ok(start)) => Some(start),
        Ok(Err(e)) => {
            tracing::debug!("TLS client hello failed: {e}");
            handshake_metric("-", "bad_client_hello");
            None
        }
        Err(_) => {
            timed_out("-", listener);
            None
        }
    }
}

/// The policy for `sni`: the hostname's, else the default hostname's.
fn select_policy(runtime: &Runtime, sni: Option<&str>) -> Option<Arc<HostnamePolicy>> {
    let generation = runtime.current();
    let policy = generation.hostnames.select(sni).cloned();
    if policy.is_none() {
        let reason = if sni.is_some() {
            "unknown_sni"
        } else {
            "no_sni"
        };
        tracing::info!(
            sni = sni.unwrap_or("-"),
            "refused TLS connection: {reason} and no server.default_hostname"
        );
        handshake_metric(sni.unwrap_or("-"), reason);
    }
    policy
}

/// What an authenticated connection established.
fn connection_info(
    policy: &HostnamePolicy,
    sni_matched: bool,
    chain: Option<&[CertificateDer<'static>]>,
) -> ConnectionInfo {
    let auth = client_auth(policy, chain);
    let forward = match (policy.forward_client_cert, chain) {
        (true, Some(chain)) if auth.cert_verified == CertVerified::Success => {
            ForwardedClientCert::new(chain, &auth).map(Arc::new)
        }
        _ => None,
    };
    ConnectionInfo {
        hostname: Some(policy.name.clone()),
        sni_matched,
        client_auth: Some(Arc::new(auth)),
        forward,
        scheme: "https",
    }
}
