//! Sending one subrequest and naming its failure precisely.

use super::{IdentityClient, RUNTIME_HEADERS};
use crate::inbound::forward::ForwardedClientCert;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sigil_sdk::wire::{FetchError, FetchResult, WireRequest, WireResponse};
use std::sync::Arc;
use std::time::Duration;

/// Headers that belong to one connection and are never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
];

pub(super) struct Job {
    pub host: String,
    pub port: u16,
    pub url: reqwest::Url,
    pub origin: String,
    pub binding: Option<String>,
    pub request: WireRequest,
    pub timeout: Duration,
    pub max_body: u64,
    pub worker: Arc<str>,
    pub forward: Option<Arc<ForwardedClientCert>>,
}

pub(super) async fn send(pool: Arc<IdentityClient>, job: Job) -> FetchResult {
    let method = Method::from_bytes(job.request.method.as_bytes()).map_err(|_| {
        FetchError::InvalidRequest {
            reason: format!("\"{}\" is not an HTTP method", job.request.method),
        }
    })?;
    let mut headers = HeaderMap::with_capacity(job.request.headers.len() + 4);
    for (name, value) in &job.request.headers {
        let lower = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) || RUNTIME_HEADERS.contains(&lower.as_str()) {
            continue;
        }
        let name =
            HeaderName::from_bytes(lower.as_bytes()).map_err(|_| FetchError::InvalidRequest {
                reason: format!("\"{name}\" is not a valid header name"),
            })?;
        let value = HeaderValue::from_str(value).map_err(|_| FetchError::InvalidRequest {
            reason: format!("the value of header \"{name}\" is not valid"),
        })?;
        headers.append(name, value);
    }
    if let Ok(v) = HeaderValue::from_str(&job.worker) {
        headers.insert("sigil-worker", v);
    }
    if let Some(fwd) = &job.forward {
        fwd.apply(&mut headers);
    }
    let is_https = job.url.scheme() == "https";
    let sent = pool
        .http()
        .request(method, job.url)
        .headers(headers)
        .body(job.request.body)
        .timeout(job.timeout)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            let mut error = classify(&e, &job.binding, &job.origin, job.timeout);
            if is_https
                && matches!(error, FetchError::Other { .. })
                && let Some(tls) =
                    super::diagnose::tls_verdict(pool.tls.clone(), &job.host, job.port).await
            {
                error = classify_tls(&tls, job.binding.clone(), job.origin.clone());
            }
            return Err(error);
        }
    };

    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if response.content_length().is_some_and(|n| n > job.max_body) {
        return Err(FetchError::ResponseTooLarge {
            host: job.origin,
            limit: job.max_body,
        });
    }
    let mut response = response;
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > job.max_body {
                    return Err(FetchError::ResponseTooLarge {
                        host: job.origin,
                        limit: job.max_body,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(classify(&e, &job.binding, &job.origin, job.timeout)),
        }
    }
    Ok(WireResponse {
        status,
        headers,
        body,
    })
}

/// Turn a client error into the variant that names its cause.
fn classify(
    err: &reqwest::Error,
    binding: &Option<String>,
    host: &str,
    timeout: Duration,
) -> FetchError {
    let binding = binding.clone();
    let host = host.to_string();
    if err.is_timeout() {
        return FetchError::Timeout {
            binding,
            host,
            after_ms: timeout.as_millis() as u64,
        };
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

fn classify_tls(tls: &rustls::Error, binding: Option<String>, host: String) -> FetchError {
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
