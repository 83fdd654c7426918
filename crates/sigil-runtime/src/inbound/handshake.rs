//! The server side of an inbound TLS handshake: SNI selects the hostname's
//! policy before the handshake completes; the verified client certificate
//! becomes the connection's [`ConnectionInfo`].

use super::client_auth::client_auth;
use super::connection::{ConnectionContext, HttpVersion, serve_connection};
use super::timeouts::count_closed;
use crate::authority::parse_sni;
use crate::config::ClientCertMode;
use crate::headers::ForwardedClientCert;
use crate::state::{ConnectionInfo, HostnamePolicy, Runtime};
use crate::telemetry::log_rate::{LogRate, left_out};
use crate::telemetry::metrics::{CloseReason, HandshakeLabels, HandshakeResult, Listener, metrics};
use rustls_pki_types::CertificateDer;
use sigil_pki::client_verifier::{self, FailureLabel, Verdict};
use sigil_sdk::wire::{CertVerified, ClientAuth};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{LazyConfigAcceptor, StartHandshake};

/// The hostname label for metrics: a configured hostname, never what a
/// client sent.
const UNKNOWN_HOSTNAME: &str = "unknown";

fn handshake_metric(hostname: &str, result: HandshakeResult) {
    metrics()
        .tls_handshakes
        .get_or_create(&HandshakeLabels {
            hostname: hostname.into(),
            result,
        })
        .inc();
}

/// Why a handshake failed, from the closed set of metric results.
fn failure_result(e: &std::io::Error) -> HandshakeResult {
    use HandshakeResult as R;
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => R::connection_closed,
            _ => R::other,
        };
    };
    if let Some(failure) = client_verifier::handshake_failure(tls) {
        return verify_failure_result(failure.label());
    }
    match tls {
        rustls::Error::AlertReceived(_) => R::client_alert,
        rustls::Error::PeerIncompatible(_) | rustls::Error::PeerMisbehaved(_) => R::protocol,
        _ => R::other,
    }
}

/// The handshake metric's result for a client chain that failed verification.
fn verify_failure_result(label: FailureLabel) -> HandshakeResult {
    use HandshakeResult as R;
    match label {
        FailureLabel::NoCertificate => R::no_certificate,
        FailureLabel::Expired => R::expired,
        FailureLabel::NotYetValid => R::not_yet_valid,
        FailureLabel::UnknownIssuer => R::unknown_issuer,
        FailureLabel::SelfSigned => R::self_signed,
        FailureLabel::Revoked => R::revoked,
        FailureLabel::BadSignature => R::bad_signature,
        FailureLabel::BadPurpose => R::bad_purpose,
        FailureLabel::ChainTooLong => R::chain_too_long,
        FailureLabel::Other => R::other,
    }
}

/// Why a resumed TLS session must not be served under `policy`: rustls does
/// not run the client verifier again when a client resumes, so a `require`
/// hostname checks the chain it authenticated with against today (an
/// expired certificate would otherwise keep working through its session).
fn resumed_refusal(
    policy: &HostnamePolicy,
    chain: Option<&[CertificateDer<'static>]>,
) -> Option<(HandshakeResult, String)> {
    if policy.mode != ClientCertMode::Require {
        // `optional` and `off` verify the chain for every connection anyway.
        return None;
    }
    let Some(verifier) = &policy.verifier else {
        return None;
    };
    match verifier.check(chain.unwrap_or_default()).0 {
        Verdict::Success => None,
        Verdict::None => Some((
            HandshakeResult::no_certificate,
            "no client certificate".into(),
        )),
        Verdict::Failed(f) => Some((verify_failure_result(f.label()), f.reason().to_string())),
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
    let version = HttpVersion::from_alpn(tls.get_ref().1.alpn_protocol());
    serve_connection(tls, runtime, conn, context, version).await;
}

/// Failed handshakes logged: any client can fail one, so at most ten lines
/// a second (every failure is counted in `sigil_tls_handshakes_total`).
static FAILURE_LOG: LogRate = LogRate::new(10);

/// A handshake that did not finish by its deadline.
fn timed_out(hostname: &str, listener: Listener) {
    handshake_metric(hostname, HandshakeResult::timeout);
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
    // The SNI in the one spelling Host headers are compared in (lower case,
    // no trailing dot); a name the strict parser refuses counts as no SNI.
    let sni = start
        .client_hello()
        .server_name()
        .and_then(|name| parse_sni(name).ok())
        .map(|host| host.as_str().into_owned());
    let (policy, generation) = select_policy(runtime, sni.as_deref())?;
    let sni_matched = sni.as_deref() == Some(&*policy.name);
    let completed =
        tokio::time::timeout_at(deadline, start.into_stream(policy.server_config.clone())).await;
    let tls = match completed {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            if let Some(n) = FAILURE_LOG.admit() {
                tracing::info!(hostname = %policy.name, "TLS handshake failed: {e}{}", left_out(n));
            }
            handshake_metric(&policy.name, failure_result(&e));
            return None;
        }
        Err(_) => {
            timed_out(&policy.name, listener);
            return None;
        }
    };
    let session = tls.get_ref().1;
    if session.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
        && let Some((result, reason)) = resumed_refusal(&policy, session.peer_certificates())
    {
        if let Some(n) = FAILURE_LOG.admit() {
            tracing::info!(
                hostname = %policy.name,
                "refused a resumed TLS session: its client certificate fails now ({reason}){}",
                left_out(n)
            );
        }
        handshake_metric(&policy.name, result);
        return None;
    }
    handshake_metric(&policy.name, HandshakeResult::ok);
    let conn = connection_info(&policy, sni_matched, tls.get_ref().1.peer_certificates());
    conn.accept(generation);
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
            handshake_metric(UNKNOWN_HOSTNAME, HandshakeResult::bad_client_hello);
            None
        }
        Err(_) => {
            timed_out(UNKNOWN_HOSTNAME, listener);
            None
        }
    }
}

/// The policy for `sni` (the hostname's, else the default hostname's) and
/// the id of the generation it belongs to.
fn select_policy(runtime: &Runtime, sni: Option<&str>) -> Option<(Arc<HostnamePolicy>, u64)> {
    let generation = runtime.current();
    let policy = generation.hostnames.select(sni).cloned();
    if policy.is_none() {
        let reason = if sni.is_some() {
            HandshakeResult::unknown_sni
        } else {
            HandshakeResult::no_sni
        };
        tracing::info!(
            sni = sni.unwrap_or("-"),
            "refused TLS connection: {reason:?} and no server.default_hostname"
        );
        handshake_metric(UNKNOWN_HOSTNAME, reason);
    }
    policy.map(|p| (p, generation.id))
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
            // The verified path, not the chain as sent: a device under one
            // tenant's intermediate must not pass another tenant's along.
            let path = policy
                .verifier
                .as_ref()
                .and_then(|v| v.verified_intermediates(chain));
            match (chain.first(), path) {
                (Some(leaf), Some(path)) => {
                    ForwardedClientCert::new(leaf, &path, &auth).map(Arc::new)
                }
                _ => None,
            }
        }
        _ => None,
    };
    let chain_not_after = chain_not_after(chain.unwrap_or_default(), &auth);
    ConnectionInfo {
        hostname: Some(policy.name.clone()),
        sni_matched,
        client_auth: Some(Arc::new(auth)),
        forward,
        scheme: "https",
        chain: chain.filter(|c| !c.is_empty()).map(Arc::from),
        chain_not_after,
        accepted_by: Default::default(),
    }
}

/// The earliest notAfter of `chain` (the client's certificate, already
/// parsed into `auth`, and the intermediates it sent); `i64::MAX` for none.
/// An intermediate that cannot be parsed did not verify, so it is skipped.
fn chain_not_after(chain: &[CertificateDer<'static>], auth: &ClientAuth) -> i64 {
    let Some((_, intermediates)) = chain.split_first() else {
        return i64::MAX;
    };
    intermediates
        .iter()
        .filter_map(|der| sigil_pki::Validity::from_der(der).ok())
        .map(|validity| validity.not_after)
        .fold(auth.cert_not_after, i64::min)
}
