//! A plain `wasi:http/proxy` component, as one writes it for `wasmtime
//! serve` or Spin: nothing in it knows Sigil. `GET /` says hello;
//! `GET /upstream` fetches the URL in the `UPSTREAM` environment variable
//! (a worker `vars` entry in Sigil, `--env` for `wasmtime serve`) and
//! returns what it answered. Under Sigil that call presents the worker's
//! default binding or identity.
//!
//! Build: `cargo build --target wasm32-wasip2 --release` (or `sigil build`
//! with `build = { lang = "rust-component", dir = "hello-component" }`).

use std::io::Write as _;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam,
    Scheme,
};

struct Hello;
wasi::http::proxy::export!(Hello);

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (status, text) = if path.ends_with("/upstream") {
            match std::env::var("UPSTREAM") {
                Ok(url) => upstream(&url),
                Err(_) => (500, "set UPSTREAM to the URL to call\n".to_string()),
            }
        } else {
            (200, "Hello, wasi:http!\n".to_string())
        };
        let response = OutgoingResponse::new(Fields::new());
        response.set_status_code(status).unwrap();
        let body = response.body().unwrap();
        ResponseOutparam::set(out, Ok(response));
        let mut stream = body.write().unwrap();
        stream.write_all(text.as_bytes()).unwrap();
        stream.flush().unwrap();
        drop(stream);
        OutgoingBody::finish(body, None).unwrap();
    }
}

/// GET `url` and return its status and body.
fn upstream(url: &str) -> (u16, String) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (500, format!("UPSTREAM is not an absolute URL: {url}\n"));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "http" {
        Scheme::Http
    } else {
        Scheme::Https
    };
    request.set_scheme(Some(&scheme)).unwrap();
    request.set_authority(Some(authority)).unwrap();
    request
        .set_path_with_query(Some(if path.is_empty() { "/" } else { path }))
        .unwrap();
    let response = match outgoing_handler::handle(request, None) {
        Ok(future) => {
            future.subscribe().block();
            future.get().unwrap().unwrap()
        }
        Err(e) => return (502, format!("upstream refused: {e:?}\n")),
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => return (502, format!("upstream failed: {e:?}\n")),
    };
    let status = response.status();
    let body = response.consume().unwrap();
    let stream = body.stream().unwrap();
    let mut text = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        text.extend_from_slice(&chunk);
    }
    (status, String::from_utf8_lossy(&text).into_owned())
}
