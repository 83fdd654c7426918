//! Serving one inbound request: the Host/SNI check, routing, the body limit,
//! invoking the worker and writing its response.

use super::forward::{ForwardedClientCert, strip_inbound};
use crate::engine::CallContext;
use crate::metrics::metrics;
use crate::server::Runtime;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use sigil_sdk::wire::{ClientAuth, Invocation, WireRequest};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

/// What the connection a request arrived on established.
pub struct ConnectionInfo {
    /// The hostname whose policy authenticated the connection (TLS only).
    pub hostname: Option<Arc<str>>,
    /// Whether the client sent SNI naming `hostname` (false: default hostname).
    pub sni_matched: bool,
    /// Client-certificate details (TLS only).
    pub client_auth: Option<Arc<ClientAuth>>,
    /// Headers forwarding the client certificate, when the hostname forwards it.
    pub forward: Option<Arc<ForwardedClientCert>>,
    /// `https` or `http`.
    pub scheme: &'static str,
}

fn text(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The request's host (from `:authority` or `Host`), lower case, without port.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.host().to_string())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| match h.rsplit_once(':') {
                    Some((host, port))
                        if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':') =>
                    {
                        host.to_string()
                    }
                    _ => h.to_string(),
                })
        })?;
    Some(
        raw.trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
    )
}

/// Serve `req`, which arrived on a connection described by `conn`.
pub async fn serve(
    runtime: Arc<Runtime>,
    conn: Arc<ConnectionInfo>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let request_id = runtime.next_request_id();
    let span = tracing::info_span!("request", id = %request_id);
    let served = tracing::Instrument::instrument(
        serve_inner(&runtime, &conn, req, &request_id),
        span.clone(),
    )
    .await;
    let (worker_label, resp) = match served {
        Ok((worker, resp)) => (worker, resp),
        Err((worker, resp)) => (worker, resp),
    };
    let mut resp = resp;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("sigil-request-id", v);
    }
    let status = resp.status().as_u16().to_string();
    span.in_scope(|| {
        tracing::debug!(
            worker = %worker_label,
            status = %status,
            micros = started.elapsed().as_micros() as u64,
            "request served"
        )
    });
    let m = metrics();
    m.inc(
        "sigil_requests_total",
        "Inbound requests by worker and status.",
        &[("worker", &worker_label), ("status", &status)],
    );
    m.observe(
        "sigil_request_duration_seconds",
        "Inbound request latency by worker.",
        &[("worker", &worker_label)],
        started.elapsed().as_secs_f64(),
    );
    Ok(resp)
}

type Outcome = Result<(String, Response<Full<Bytes>>), (String, Response<Full<Bytes>>)>;

async fn serve_inner(
    runtime: &Runtime,
    conn: &ConnectionInfo,
    mut req: Request<Incoming>,
    request_id: &str,
) -> Outcome {
    let none = || "-".to_string();
    let generation = runtime.current();
    let Some(host) = request_host(&req) else {
        return Err((none(), text(400, "the request has no Host header\n".into())));
    };

    // A request must be for the hostname its connection was authenticated for.
    match &conn.hostname {
        Some(authenticated) if conn.sni_matched => {
            if host != **authenticated {
                return Err((
                    none(),
                    text(
                        421,
                        format!(
                            "misdirected request: this connection was established for {authenticated}, not {host}; open a new connection for {host}\n"
                        ),
                    ),
                ));
            }
        }
        Some(authenticated) => {
            if host != **authenticated && generation.hostnames.get(&host).is_some() {
                return Err((
                    none(),
                    text(
                        421,
                        format!(
                            "misdirected request: {host} requires its own TLS connection with SNI {host}\n"
                        ),
                    ),
                ));
            }
        }
        None => {
            if let Some(policy) = generation.hostnames.get(&host)
                && policy.mode != crate::manifest::ClientCertMode::Off
            {
                return Err((
                    none(),
                    text(
                        421,
                        format!("{host} requires HTTPS with a client certificate\n"),
                    ),
                ));
            }
        }
    }

    let path = req.uri().path().to_string();
    let Some(worker_name) = generation.router.find(&host, &path) else {
        return Err((none(), text(404, format!("no route for {host}{path}\n"))));
    };
    let Some(worker) = generation.workers.get(worker_name).cloned() else {
        return Err((none(), text(404, format!("no worker for {host}{path}\n"))));
    };
    let label = worker.name.to_string();

    strip_inbound(req.headers_mut());
    let (parts, body) = req.into_parts();
    let limit = worker.limits.max_request_body;
    if parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err((
            label,
            text(
                413,
                format!(
                    "request body over the worker's limit of {limit} bytes (limits.max_request_body)\n"
                ),
            ),
        ));
    }
    let body = match Limited::new(body, limit as usize).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return Err(if too_large {
                (
                    label,
                    text(
                        413,
                        format!(
                            "request body over the worker's limit of {limit} bytes (limits.max_request_body)\n"
                        ),
                    ),
                )
            } else {
                (
                    label,
                    text(400, format!("cannot read the request body: {e}\n")),
                )
            });
        }
    };

    let authority = parts
        .uri
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| host.clone());
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let invocation = Invocation {
        request: WireRequest {
            method: parts.method.as_str().to_string(),
            url: format!("{}://{authority}{path_and_query}", conn.scheme),
            headers,
            body: body.to_vec(),
        },
        client_auth: conn.client_auth.as_deref().cloned(),
        worker: label.clone(),
        request_id: request_id.to_string(),
    };
    let call = CallContext {
        worker: worker.name.clone(),
        request_id: request_id.into(),
        limits: worker.limits,
        outbound: worker.outbound.clone(),
        forward: conn.forward.clone(),
        deadline: Instant::now() + worker.limits.timeout,
        vars: worker.vars.clone(),
    };
    match runtime
        .engine()
        .invoke(&worker.module, call, &invocation)
        .await
    {
        Ok(wire) => {
            let mut resp = Response::new(Full::new(Bytes::from(wire.body)));
            *resp.status_mut() =
                StatusCode::from_u16(wire.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for (name, value) in wire.headers {
                let lower = name.to_ascii_lowercase();
                if matches!(
                    lower.as_str(),
                    "connection"
                        | "transfer-encoding"
                        | "keep-alive"
                        | "upgrade"
                        | "content-length"
                ) {
                    continue;
                }
                if let (Ok(n), Ok(v)) = (
                    http::HeaderName::from_bytes(lower.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    resp.headers_mut().append(n, v);
                }
            }
            Ok((label, resp))
        }
        Err(e) => {
            tracing::warn!(worker = %label, request_id, kind = e.kind(), "{e}");
            metrics().inc(
                "sigil_worker_errors_total",
                "Requests that failed inside a worker, by worker and kind.",
                &[("worker", &label), ("kind", e.kind())],
            );
            Err((label, text(e.status(), format!("{e}\n"))))
        }
    }
}
