//! Serving one inbound request: the Host/SNI check, routing, the body limit,
//! handing the request to its worker and writing the worker's response.

use super::host_rule::{self, Authenticated};
use super::timeouts::{BodyIdleTimeout, IdleTimeoutBody};
use crate::headers::{is_not_forwarded, strip_inbound};
use crate::state::{ConnectionInfo, Generation, Runtime, Worker, WorkerRequest};
use crate::telemetry::metrics::{RequestLabels, WorkerErrorLabels, WorkerLabel, metrics};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

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

/// The authority the worker sees in its URL.
fn request_authority<B>(req: &Request<B>, host: &str) -> String {
    req.uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| host.to_string())
}

/// A request's outcome: the worker that served it (`-` for none) and the response.
type Served = (Arc<str>, Response<Full<Bytes>>);

fn no_worker(status: u16, message: String) -> Served {
    ("-".into(), text(status, message))
}

/// Serve `req`, which arrived on a connection described by `conn`.
pub async fn serve(
    runtime: Arc<Runtime>,
    conn: Arc<ConnectionInfo>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let request_id: Arc<str> = runtime.next_request_id().into();
    let span = tracing::info_span!("request", id = %request_id);
    let (worker, mut resp) = tracing::Instrument::instrument(
        serve_inner(&runtime, conn, req, request_id.clone()),
        span.clone(),
    )
    .await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("sigil-request-id", v);
    }
    let status = resp.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(
            worker = %worker,
            status,
            micros = started.elapsed().as_micros() as u64,
            "request served"
        )
    });
    let m = metrics();
    m.requests
        .get_or_create(&RequestLabels {
            worker: worker.clone(),
            status,
        })
        .inc();
    m.request_duration
        .get_or_create(&WorkerLabel { worker })
        .observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

async fn serve_inner(
    runtime: &Runtime,
    conn: Arc<ConnectionInfo>,
    mut req: Request<Incoming>,
    request_id: Arc<str>,
) -> Served {
    let generation = runtime.current();
    let Some(host) = request_host(&req) else {
        return no_worker(400, "the request has no Host header\n".into());
    };
    if let Err(misdirected) = check_host(&generation, &conn, &host) {
        return no_worker(421, format!("{}\n", misdirected.0));
    }
    let path = req.uri().path().to_string();
    let Some(worker) = generation
        .router
        .find(&host, &path)
        .and_then(|name| generation.workers.get(name))
        .cloned()
    else {
        return no_worker(404, format!("no route for {host}{path}\n"));
    };
    drop(generation);
    let label = worker.name.clone();
    strip_inbound(req.headers_mut());
    let authority = request_authority(&req, &host);
    let (head, body) = req.into_parts();
    let body = match read_body(&worker, &head, body).await {
        Ok(body) => body,
        Err(resp) => return (label, resp),
    };
    let request = WorkerRequest {
        head,
        authority,
        body,
        connection: conn,
        request_id,
        deadline: Instant::now() + worker.limits.timeout,
    };
    (label, run(&worker, request).await)
}

/// The Host/SNI rule for this connection and `host`.
fn check_host(
    generation: &Generation,
    conn: &ConnectionInfo,
    host: &str,
) -> Result<(), host_rule::Misdirected> {
    let authenticated = match &conn.hostname {
        Some(name) if conn.sni_matched => Authenticated::Sni(name),
        Some(name) => Authenticated::Default(name),
        None => Authenticated::Plain,
    };
    host_rule::check(authenticated, host, |h| {
        generation.hostnames.get(h).map(|p| p.mode)
    })
}

/// The request body, read whole within the worker's `max_request_body`.
async fn read_body(
    worker: &Worker,
    head: &http::request::Parts,
    body: Incoming,
) -> Result<Bytes, Response<Full<Bytes>>> {
    let limit = worker.limits.max_request_body;
    let too_large = || {
        text(
            413,
            format!(
                "request body over the worker's limit of {limit} bytes (limits.max_request_body)\n"
            ),
        )
    };
    if head
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(too_large());
    }
    let body = IdleTimeoutBody::new(body, &head.extensions);
    match Limited::new(body, limit as usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) if e.downcast_ref::<BodyIdleTimeout>().is_some() => {
            let mut resp = text(408, format!("{e}\n"));
            if head.version < http::Version::HTTP_2 {
                let close = HeaderValue::from_static("close");
                resp.headers_mut().insert(http::header::CONNECTION, close);
            }
            Err(resp)
        }
        Err(e) => Err(text(400, format!("cannot read the request body: {e}\n"))),
    }
}

/// Run the worker and turn its outcome into the client's response.
async fn run(worker: &Worker, request: WorkerRequest) -> Response<Full<Bytes>> {
    let request_id = request.request_id.clone();
    match worker.handler.handle(request).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            let names: Vec<_> = parts
                .headers
                .keys()
                .filter(|n| is_not_forwarded(n.as_str()))
                .cloned()
                .collect();
            for name in names {
                parts.headers.remove(name);
            }
            Response::from_parts(parts, Full::new(body))
        }
        Err(e) => {
            let kind = e.kind();
            tracing::warn!(worker = %worker.name, request_id = %request_id, ?kind, "{e}");
            metrics()
                .worker_errors
                .get_or_create(&WorkerErrorLabels {
                    worker: worker.name.clone(),
                    kind,
                })
                .inc();
            text(e.status(), format!("{e}\n"))
        }
    }
}
