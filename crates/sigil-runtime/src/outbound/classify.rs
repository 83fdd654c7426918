//! Naming a failed subrequest's cause: connection refused, untrusted origin,
//! client certificate refused, timeout.

use sigil_sdk::wire::FetchError;
use std::time::Duration;

/// Turn a client error into the variant that names its cause.
/// Which timeouts applied to a subrequest, so a failure can name the one
/// that fired.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// The whole subrequest (the fetch's own timeout, or what was left of
    /// the request's deadline).
    pub request: Duration,
    /// Establishing a connection: TCP connect and TLS handshake
    /// (`outbound.connect_timeout_ms`).
    pub connect: Duration,
}

/// The timeout that fired: establishing the connection, or the subrequest.
fn timed_out(
    err: &reqwest::Error,
    binding: Option<String>,
    host: String,
    timeouts: Timeouts,
) -> FetchError {
    if err.is_connect() && timeouts.connect < timeouts.request {
        return FetchError::ConnectFailed {
            binding,
            host,
            cause: format!(
                "no connection within {} ms (TCP connect and TLS handshake; outbound.connect_timeout_ms)",
                timeouts.connect.as_millis()
            ),
        };
    }
    FetchError::Timeout {
        binding,
        host,
        after_ms: timeouts.request.as_millis() as u64,
    }
}

pub(super) fn classify(
    err: &reqwest::Error,
    binding: &Option<String>,
    host: &str,
    timeouts: Timeouts,
) -> FetchError {
    let binding = binding.clone();
    let host = host.to_string();
    if err.is_timeout() {
        return timed_out(err, binding, host, timeouts);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return classify_tls(tls, binding, host);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
            ) {
                return FetchError::ConnectFailed {
                    binding,
                    host,
                    cause: io.to_string(),
                };
            }
        }
        source = e.source();
    }
    // Some layers wrap the TLS error in ways a downcast cannot see through;
    // rustls' own wording is stable, so fall back to it.
    let cause = chain_text(err);
    if cause.contains("invalid peer certificate") {
        return FetchError::UntrustedOrigin {
            binding,
            host,
            cause,
        };
    }
    if cause.contains("received fatal alert") || cause.contains("peer sent no certificates") {
        return FetchError::ClientCertRefused {
            binding,
            host,
            cause,
        };
    }
    if err.is_connect() {
        FetchError::ConnectFailed {
            binding,
            host,
            cause,
        }
    } else {
        FetchError::Other {
            binding,
            host,
            cause,
        }
    }
}

pub(super) fn classify_tls(
    tls: &rustls::Error,
    binding: Option<String>,
    host: String,
) -> FetchError {
    let cause = tls.to_string();
    match tls {
        rustls::Error::InvalidCertificate(_) => FetchError::UntrustedOrigin {
            binding,
            host,
            cause,
        },
        rustls::Error::AlertReceived(_) | rustls::Error::NoCertificatesPresented => {
            FetchError::ClientCertRefused {
                binding,
                host,
                cause,
            }
        }
        _ => FetchError::Other {
            binding,
            host,
            cause: format!("TLS error: {cause}"),
        },
    }
}

fn chain_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}
