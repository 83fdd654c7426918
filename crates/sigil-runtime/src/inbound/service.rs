//! Serving one inbound request: the Host/SNI check, routing, the body limit,
//! handing the request to its worker and writing the worker's response.

use super::client_auth;
use super::host_rule::{self, Authenticated};
use super::timeouts::{BodyIdleTimeout, IdleTimeoutBody};
use crate::authority::Authority;
use crate::headers::{Hop, is_not_forwarded, strip_inbound};
use crate::state::{ConnectionInfo, Generation, Runtime, Worker, WorkerBody, WorkerRequest};
use crate::telemetry::metrics::{WorkerErrorKind, WorkerErrorLabels, WorkerSeries, metrics};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use sigil_sdk::wire::CertVerified;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The response header naming the request (as in the server log).
const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("sigil-request-id");

fn text(status: u16, body: String) -> Response<WorkerBody> {
    let mut resp = Response::new(WorkerBody::full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The authority the request is for, read strictly (see [`host_rule::authority_of`]).
fn request_authority<B>(
    req: &Request<B>,
    scheme: &str,
) -> Result<Authority, host_rule::BadAuthority> {
    let hosts: Vec<&HeaderValue> = req.headers().get_all(http::header::HOST).iter().collect();
    let target = req.uri().authority().map(|a| a.as_str());
    host_rule::authority_of(req.version(), target, &hosts, scheme)
}

/// Framing a proxy must not guess at (request smuggling): a
/// `Transfer-Encoding` other than exactly `chunked` (RFC 9112 §6.1). (With
/// both `Transfer-Encoding: chunked` and `Content-Length`, hyper reads the
/// body as chunked and drops `Content-Length`, as RFC 9112 §6.3 allows.)
/// About how many bytes `req`'s head took on the wire (request line and
/// header lines).
fn head_len<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3);
    let line = req.method().as_str().len() + target + 12;
    req.headers().iter().fold(line, |n, (name, value)| {
        n + name.as_str().len() + value.len() + 4
    })
}

fn framing_problem(headers: &http::HeaderMap) -> Option<String> {
    let codings: Vec<&HeaderValue> = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .collect();
    if codings.is_empty() {
        return None;
    }
    let chunked_only = codings.len() == 1
        && codings[0]
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
    (!chunked_only).then(|| "Transfer-Encoding must be exactly \"chunked\"".into())
}

/// A request's outcome: the worker that served it (if one was chosen) and
/// the response.
type Served = (Option<Arc<Worker>>, Response<WorkerBody>);

fn no_worker(status: u16, message: String) -> Served {
    (None, text(status, message))
}

/// The refusal for a request on a connection whose verified client
/// certificate, or an intermediate it was sent with, has expired since the
/// handshake: a keep-alive or HTTP/2 connection would otherwise outlive the
/// chain that opened it.
fn client_cert_expired(conn: &ConnectionInfo) -> Option<String> {
    let auth = conn.client_auth.as_deref()?;
    let until = conn.chain_not_after;
    if auth.cert_verified != CertVerified::Success || sigil_pki::unix_now() <= until {
        return None;
    }
    let which = if until < auth.cert_not_after {
        " (an intermediate CA certificate of its chain)"
    } else {
        ""
    };
    Some(format!(
        "the client certificate of this connection expired at {}{which}; open a new connection with a valid certificate\n",
        sigil_pki::format_rfc3339(until)
    ))
}

/// A 421 after which the connection is closed: a client retries on a new
/// connection, whose handshake the current configuration decides.
fn misdirected_close(message: String) -> Served {
    let (worker, mut resp) = no_worker(421, message);
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    (worker, resp)
}

/// A 400 after which the connection is closed: the request's framing or
/// authority cannot be trusted, so neither can whatever follows it.
fn bad_request(message: String) -> Served {
    let (worker, mut resp) = no_worker(400, format!("bad request: {message}\n"));
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    (worker, resp)
}

/// Serve `req`, which arrived on a connection described by `conn`.
///
/// Nothing here logs or opens a span for a request that goes well: at the
/// default level a request costs no log line unless `server.access_log` asks
/// for one. Failures are logged where they happen, with the request id.
pub async fn serve(
    runtime: Arc<Runtime>,
    conn: Arc<ConnectionInfo>,
    req: Request<Incoming>,
) -> Result<Response<WorkerBody>, Infallible> {
    let started = Instant::now();
    let request_id = runtime.next_request_id();
    let generation = runtime.current();
    let access = generation
        .access_log
        .then(|| AccessRecord::of(&req, conn.scheme));
    let (worker, mut resp) = serve_inner(generation, conn, req, request_id.clone()).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(access) = access {
        let name = worker.as_ref().map_or("-", |w| &*w.name);
        access.log(&request_id, name, status, elapsed);
    }
    let series = match &worker {
        Some(worker) => &worker.series,
        None => WorkerSeries::unrouted(),
    };
    series.record(status, elapsed.as_secs_f64());
    Ok(resp)
}

/// What an access-log line says about the request itself.
struct AccessRecord {
    method: http::Method,
    target: String,
}

impl AccessRecord {
    fn of<B>(req: &Request<B>, scheme: &str) -> AccessRecord {
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .unwrap_or("-");
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        AccessRecord {
            method: req.method().clone(),
            target: url_token(&format!("{scheme}://{host}{path}")),
        }
    }

    fn log(self, request_id: &str, worker: &str, status: u16, elapsed: Duration) {
        tracing::info!(
            target: "sigil::access",
            request_id,
            worker,
            method = %self.method,
            url = %self.target,
            status,
            micros = elapsed.as_micros() as u64,
        );
    }
}

/// `url` as one token of a log line: anything but visible ASCII, and `"`
/// and `\`, percent-encoded. The `Host` of a request refused as bad can
/// hold spaces and quotes, which would otherwise add forged `key=value`
/// fields to the line.
fn url_token(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        if c.is_ascii_graphic() && c != '"' && c != '\\' {
            out.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// A `431` (and close) for an HTTP/1 head over
/// [`MAX_REQUEST_HEAD`](super::connection::MAX_REQUEST_HEAD): hyper bounds an
/// unfinished head by its read buffer, but a whole head that arrived in one
/// read can be larger.
fn head_too_large<B>(req: &Request<B>) -> Option<Served> {
    let limit = super::connection::MAX_REQUEST_HEAD;
    if req.version() >= http::Version::HTTP_2 || head_len(req) <= limit {
        return None;
    }
    let (worker, mut resp) = no_worker(
        431,
        format!("the request head is over {} KiB\n", limit >> 10),
    );
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    Some((worker, resp))
}

/// Why the connection must not serve another request: a reload changed its
/// hostname's policy and the policy no longer accepts its client
/// certificate, or that certificate (or its chain) has expired since.
fn connection_refused(generation: &Generation, conn: &ConnectionInfo) -> Option<String> {
    if !conn.accepted_by(generation.id) {
        let name = conn.hostname.as_deref().unwrap_or_default();
        if conn.hostname.is_some()
            && !client_auth::still_accepted(generation.hostnames.get(name).map(|p| &**p), conn)
        {
            return Some(format!(
                "the configuration of {name} changed and no longer accepts this connection's client certificate; open a new connection\n"
            ));
        }
        conn.accept(generation.id);
    }
    client_cert_expired(conn)
}

async fn serve_inner(
    generation: Arc<Generation>,
    conn: Arc<ConnectionInfo>,
    mut req: Request<Incoming>,
    request_id: Arc<str>,
) -> Served {
    if let Some(problem) = framing_problem(req.headers()) {
        return bad_request(problem);
    }
    if let Some(too_large) = head_too_large(&req) {
        return too_large;
    }
    let authority = match request_authority(&req, conn.scheme) {
        Ok(a) => a,
        Err(bad) => return bad_request(bad.0),
    };
    let host = authority.host.as_str().into_owned();
    if let Err(misdirected) = check_host(&generation, &conn, &host) {
        return no_worker(421, format!("{}\n", misdirected.0));
    }
    if let Some(refused) = connection_refused(&generation, &conn) {
        return misdirected_close(refused);
    }
    // Routed as origins read it (`/x/../secret` is `/secret`); the worker
    // sees the path as sent.
    let path = crate::route_path::route_path(req.uri().path()).into_owned();
    let Some(worker) = generation
        .router
        .find(&host, &path)
        .and_then(|name| generation.workers.get(name))
        .cloned()
    else {
        return no_worker(404, format!("no route for {host}{path}\n"));
    };
    let hop = Hop::of(req.headers());
    let received = Instant::now();
    if let Err(refused) = check_hops(&worker, &generation, hop, &request_id) {
        return *refused;
    }
    drop(generation);
    let label = Some(worker.clone());
    strip_inbound(req.headers_mut());
    // The worker sees the authority as checked, in its one spelling.
    let authority = authority.to_string();
    if let Ok(v) = HeaderValue::from_str(&authority) {
        req.headers_mut().insert(http::header::HOST, v);
    }
    let (head, body) = req.into_parts();
    let body = if worker.handler.streams_bodies() {
        // Component workers: streamed, counted as it passes.
        match super::streaming::streaming_body(worker.limits.max_request_body, &head, body) {
            Ok(body) => body,
            Err(failure) => return (label, text(failure.status(), format!("{failure}\n"))),
        }
    } else {
        // SDK workers get the whole body, read before an instance slot is
        // taken: a slow upload holds its connection, never a slot.
        match read_body(&worker, &head, body).await {
            Ok(body) => WorkerBody::full(body),
            Err(resp) => return (label, resp),
        }
    };
    let (slot, deadline) = match take_slot(&worker, hop, received, &request_id) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    let request = WorkerRequest {
        head,
        authority,
        body,
        connection: conn,
        request_id,
        deadline,
        hop,
        slot: Some(Arc::new(slot)),
    };
    (label, run(&worker, request).await)
}

/// Log, count and answer a request `worker` refuses before running it.
fn refused(
    worker: &Arc<Worker>,
    request_id: &str,
    status: u16,
    kind: WorkerErrorKind,
    message: String,
) -> Box<Served> {
    tracing::warn!(worker = %worker.name, request_id, ?kind, "{}", message.trim_end());
    count_error(worker, kind);
    Box::new((Some(worker.clone()), text(status, message)))
}

/// Count one failed request of `worker` in `sigil_worker_errors_total`.
fn count_error(worker: &Worker, kind: WorkerErrorKind) {
    metrics()
        .worker_errors
        .get_or_create(&WorkerErrorLabels {
            worker: worker.name.clone(),
            kind,
        })
        .inc();
}

/// Whether a request that arrived as `hop` may still pass through Sigil:
/// not past `server.max_hops` (508 otherwise).
fn check_hops(
    worker: &Arc<Worker>,
    generation: &Generation,
    hop: Hop,
    request_id: &str,
) -> Result<(), Box<Served>> {
    if hop.hops < generation.max_hops {
        return Ok(());
    }
    Err(refused(
        worker,
        request_id,
        508,
        WorkerErrorKind::loop_detected,
        format!(
            "loop detected: this request already passed through Sigil {} times (server.max_hops = {}); is worker \"{}\" calling itself?\n",
            hop.hops, generation.max_hops, worker.name
        ),
    ))
}

/// One of `worker`'s share of the instance slots (503 when it holds them
/// all), held until the request ends, and the request's deadline: its own
/// timeout from now, or what is left of a calling request's deadline
/// (`hop`, counted from when the request arrived at `received`).
fn take_slot(
    worker: &Arc<Worker>,
    hop: Hop,
    received: Instant,
    request_id: &str,
) -> Result<(tokio::sync::OwnedSemaphorePermit, Instant), Box<Served>> {
    let Ok(slot) = worker.slots.clone().try_acquire_owned() else {
        return Err(refused(
            worker,
            request_id,
            503,
            WorkerErrorKind::capacity,
            format!(
                "worker \"{}\" is using all of its share of instance slots (server.worker_share of server.max_instances); try again shortly\n",
                worker.name
            ),
        ));
    };
    let own = Instant::now() + worker.limits.timeout;
    let deadline = hop
        .deadline_ms
        .map_or(own, |ms| own.min(received + Duration::from_millis(ms)));
    Ok((slot, deadline))
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
) -> Result<Bytes, Response<WorkerBody>> {
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

/// Run the worker and turn its outcome into the client's response. A
/// streaming response holds the request's instance slot until it ends.
async fn run(worker: &Worker, request: WorkerRequest) -> Response<WorkerBody> {
    let request_id = request.request_id.clone();
    let slot = request.slot.clone();
    match worker.handler.handle(request).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            let dropped = |n: &&http::HeaderName| is_not_forwarded(n.as_str());
            if parts.headers.keys().any(|n| dropped(&n)) {
                let names: Vec<_> = parts.headers.keys().filter(dropped).cloned().collect();
                for name in names {
                    parts.headers.remove(name);
                }
            }
            Response::from_parts(parts, body.hold(slot))
        }
        Err(e) => {
            let kind = e.kind();
            tracing::warn!(worker = %worker.name, request_id = %request_id, ?kind, "{e}");
            count_error(worker, kind);
            text(e.status(), format!("{}\n", e.client_message(&request_id)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The access log's `url` is one token: a refused request's `Host`
    /// cannot add fields to the line. Before, this logged
    /// `url=http://evil status=200 worker="admin"/x`.
    #[test]
    fn the_access_logs_url_is_one_token() {
        let req = Request::builder()
            .uri("/x?a=1")
            .header("host", "evil status=200 worker=\"admin\"\\")
            .body(())
            .unwrap();
        let record = AccessRecord::of(&req, "http");
        assert_eq!(
            record.target,
            "http://evil%20status=200%20worker=%22admin%22%5C/x?a=1"
        );
        let plain = Request::builder()
            .uri("https://pay.alpha.example:8443/p?q=%20")
            .body(())
            .unwrap();
        assert_eq!(
            AccessRecord::of(&plain, "https").target,
            "https://pay.alpha.example:8443/p?q=%20"
        );
        assert_eq!(url_token("a\tb\u{e9}"), "a%09b%C3%A9");
    }
}
