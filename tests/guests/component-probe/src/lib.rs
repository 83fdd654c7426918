//! A `wasi:http/proxy` component for Sigil's end-to-end tests, written with
//! the `wasi` crate and nothing of Sigil's: it chooses a binding per request
//! only with the `sigil-binding` request header.
//!
//! Routes (settings in request headers):
//! - `/fetch`: `x-fetch-url` (`x-fetch-count` times, one after another),
//!   with `sigil-binding: <x-fetch-binding>` when given and an extra
//!   `x-fetch-header: name: value`; answers one line per subrequest,
//!   `ok <status> <body>` or `err <error-code>`;
//! - `/proxy`: streams the request body to `x-fetch-url` (POST) and the
//!   origin's response back (host-side `splice`);
//! - `/echo`: streams the request body back;
//! - `/headers`: the request headers, one `name: value` line each;
//! - `/big?<n>`: a body of n bytes, streamed;
//! - `/count`: how many requests this instance served (module state);
//! - `/spin`, `/alloc?<mb>`, `/panic`, `/exit`, `/sleep?<ms>`, `/silent`:
//!   misbehaviours;
//! - `/status?<n>`: answers with status n; `/many-headers?<n>`: with n
//!   headers `x-h<i>`;
//! - `/trap-after?<n>`: sends the head and n body bytes, then panics;
//! - `/keep-outparam`: keeps its response-outparam in a global and returns;
//! - `/linger?<ms>`: sends the head and a line, sleeps, then finishes.

use std::io::Write as _;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

struct Probe;
wasi::http::proxy::export!(Probe);

const CHUNK: u64 = 64 * 1024;

thread_local! {
    /// Response-outparams `/keep-outparam` never sets.
    static KEPT: std::cell::RefCell<Vec<ResponseOutparam>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Requests this instance served: module state, which carries over only
/// when the worker reuses instances.
static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn header(req: &IncomingRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

impl wasi::exports::http::incoming_handler::Guest for Probe {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let served = SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let pq = req.path_with_query().unwrap_or_default();
        let (path, query) = pq.split_once('?').unwrap_or((pq.as_str(), ""));
        let path = path.trim_start_matches("/component");
        match path {
            "/fetch" => fetch(req, out),
            "/proxy" => proxy(req, out),
            "/echo" => echo(req, out),
            "/headers" => {
                let mut s = String::new();
                for (k, v) in req.headers().entries() {
                    s += &format!("{k}: {}\n", String::from_utf8_lossy(&v));
                }
                text(out, 200, &s)
            }
            "/big" => big(out, query.parse().unwrap_or(0)),
            "/count" => text(out, 200, &format!("served {served}\n")),
            "/spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "/alloc" => {
                let mb: usize = query.parse().unwrap_or(1);
                let v = vec![1u8; mb << 20];
                text(
                    out,
                    200,
                    &format!("allocated {}\n", std::hint::black_box(v).len()),
                )
            }
            "/panic" => panic!("the probe panics on purpose"),
            "/exit" => std::process::exit(3),
            "/sleep" => {
                let ms: u64 = query.parse().unwrap_or(1000);
                wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                text(out, 200, "slept\n")
            }
            "/silent" => {}
            "/status" => text(out, query.parse().unwrap_or(200), "status\n"),
            "/many-headers" => {
                let fields = Fields::new();
                for i in 0..query.parse::<u32>().unwrap_or(0) {
                    let _ = fields.append(&format!("x-h{i}"), b"v");
                }
                let body = respond(out, 200, fields);
                OutgoingBody::finish(body, None).expect("finish");
            }
            "/trap-after" => {
                let body = respond(out, 200, Fields::new());
                let s = body.write().expect("stream");
                let chunk = vec![b'x'; query.parse().unwrap_or(1000)];
                let _ = s.blocking_write_and_flush(&chunk[..chunk.len().min(4096)]);
                panic!("the probe fails after its response started");
            }
            "/keep-outparam" => KEPT.with(|k| k.borrow_mut().push(out)),
            "/linger" => {
                let ms: u64 = query.parse().unwrap_or(1000);
                let body = respond(out, 200, Fields::new());
                let s = body.write().expect("stream");
                let _ = s.blocking_write_and_flush(b"started\n");
                wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                let _ = s.blocking_write_and_flush(b"done\n");
                drop(s);
                let _ = OutgoingBody::finish(body, None);
            }
            _ => text(out, 200, &format!("hello from a component: {path}\n")),
        }
    }
}

fn respond(out: ResponseOutparam, status: u16, headers: Fields) -> OutgoingBody {
    let resp = OutgoingResponse::new(headers);
    resp.set_status_code(status).expect("status");
    let body = resp.body().expect("body");
    ResponseOutparam::set(out, Ok(resp));
    body
}

fn text(out: ResponseOutparam, status: u16, body_text: &str) {
    let body = respond(out, status, Fields::new());
    let mut s = body.write().expect("stream");
    s.write_all(body_text.as_bytes()).expect("write");
    s.flush().expect("flush");
    drop(s);
    OutgoingBody::finish(body, None).expect("finish");
}

fn big(out: ResponseOutparam, n: u64) {
    let body = respond(out, 200, Fields::new());
    let mut s = body.write().expect("stream");
    let chunk = vec![b'x'; CHUNK as usize];
    let mut left = n;
    while left > 0 {
        let k = left.min(CHUNK);
        if s.write_all(&chunk[..k as usize]).is_err() {
            return;
        }
        left -= k;
    }
    s.flush().expect("flush");
    drop(s);
    OutgoingBody::finish(body, None).expect("finish");
}

/// Copy `from` to `to` until the end on the host side (`splice`: the bytes
/// never enter the guest's memory); returns the bytes copied.
fn splice(from: &InputStream, to: &OutputStream) -> u64 {
    let mut n = 0u64;
    loop {
        match to.blocking_splice(from, CHUNK * 4) {
            Ok(k) => n += k,
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                panic!("copying the body failed: {}", e.to_debug_string())
            }
        }
    }
    let _ = to.blocking_flush();
    n
}

/// Copy `from` to `to` until the end; returns the bytes copied.
fn pump(from: &InputStream, to: &mut OutputStream) -> u64 {
    let mut n = 0u64;
    loop {
        match from.blocking_read(CHUNK) {
            Ok(chunk) => {
                if to.write_all(&chunk).is_err() {
                    return n;
                }
                n += chunk.len() as u64;
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                panic!("reading the body failed: {}", e.to_debug_string())
            }
        }
    }
    let _ = to.flush();
    n
}

fn echo(req: IncomingRequest, out: ResponseOutparam) {
    let resp_body = respond(out, 200, Fields::new());
    let req_body = req.consume().expect("consume");
    let input = req_body.stream().expect("stream");
    let mut output = resp_body.write().expect("write");
    pump(&input, &mut output);
    drop(input);
    drop(output);
    IncomingBody::finish(req_body);
    OutgoingBody::finish(resp_body, None).expect("finish");
}

fn describe(e: &ErrorCode) -> String {
    match e {
        ErrorCode::InternalError(Some(m)) => format!("InternalError({m})"),
        other => format!("{other:?}"),
    }
}

/// An outgoing request to `url` with `method`, choosing the binding.
fn outgoing(req: &IncomingRequest, url: &str, method: &Method) -> Result<OutgoingRequest, String> {
    let (scheme, rest) = url.split_once("://").ok_or("x-fetch-url is not absolute")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    if let Some(b) = header(req, "x-fetch-binding") {
        headers
            .append("sigil-binding", b.as_bytes())
            .map_err(|e| format!("{e:?}"))?;
    }
    if let Some(h) = header(req, "x-fetch-header") {
        let (k, v) = h
            .split_once(':')
            .ok_or("x-fetch-header is not name: value")?;
        headers
            .append(k.trim(), v.trim().as_bytes())
            .map_err(|e| format!("{e:?}"))?;
    }
    let o = OutgoingRequest::new(headers);
    o.set_method(method).map_err(|_| "method")?;
    let scheme = if scheme == "http" {
        Scheme::Http
    } else {
        Scheme::Https
    };
    o.set_scheme(Some(&scheme)).map_err(|_| "scheme")?;
    o.set_authority(Some(authority)).map_err(|_| "authority")?;
    o.set_path_with_query(Some(path)).map_err(|_| "path")?;
    Ok(o)
}

/// Send `o` (with an empty body) and read the whole answer as one line.
fn fetch_once(o: OutgoingRequest) -> String {
    let body = o.body().expect("body");
    let fut = match outgoing_handler::handle(o, None) {
        Ok(f) => f,
        Err(e) => return format!("err {}", describe(&e)),
    };
    OutgoingBody::finish(body, None).expect("finish");
    fut.subscribe().block();
    let resp = match fut.get().expect("ready").expect("first get") {
        Ok(r) => r,
        Err(e) => return format!("err {}", describe(&e)),
    };
    let status = resp.status();
    let rbody = resp.consume().expect("consume");
    let input = rbody.stream().expect("stream");
    let mut text = Vec::new();
    loop {
        match input.blocking_read(CHUNK) {
            Ok(chunk) => text.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return format!("err body {}", e.to_debug_string());
            }
        }
    }
    format!("ok {status} {}", String::from_utf8_lossy(&text))
}

fn fetch(req: IncomingRequest, out: ResponseOutparam) {
    let Some(url) = header(&req, "x-fetch-url") else {
        return text(out, 400, "missing x-fetch-url\n");
    };
    let count: usize = header(&req, "x-fetch-count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let mut lines = String::new();
    for _ in 0..count {
        let line = match outgoing(&req, &url, &Method::Get) {
            Ok(o) => fetch_once(o),
            Err(e) => format!("err {e}"),
        };
        lines.push_str(line.trim_end());
        lines.push('\n');
    }
    text(out, 200, &lines)
}

fn proxy(req: IncomingRequest, out: ResponseOutparam) {
    let Some(url) = header(&req, "x-fetch-url") else {
        return text(out, 400, "missing x-fetch-url\n");
    };
    let o = match outgoing(&req, &url, &Method::Post) {
        Ok(o) => o,
        Err(e) => return text(out, 400, &format!("{e}\n")),
    };
    let obody = o.body().expect("body");
    let fut = match outgoing_handler::handle(o, None) {
        Ok(f) => f,
        Err(e) => return text(out, 502, &format!("{}\n", describe(&e))),
    };
    // Upload the inbound body while the origin already answers.
    let ibody = req.consume().expect("consume");
    let input = ibody.stream().expect("stream");
    let output = obody.write().expect("write");
    splice(&input, &output);
    drop(input);
    drop(output);
    IncomingBody::finish(ibody);
    OutgoingBody::finish(obody, None).expect("finish");
    fut.subscribe().block();
    let resp = match fut.get().expect("ready").expect("first get") {
        Ok(r) => r,
        Err(e) => return text(out, 502, &format!("{}\n", describe(&e))),
    };
    let fwd = respond(out, resp.status(), Fields::new());
    let rbody = resp.consume().expect("consume");
    let input = rbody.stream().expect("stream");
    let output = fwd.write().expect("write");
    splice(&input, &output);
    drop(input);
    drop(output);
    drop(rbody);
    OutgoingBody::finish(fwd, None).expect("finish");
}
