//! {{name}}: a wasi:http/proxy component (the `wasi` crate). Outgoing
//! requests present the worker's default binding or identity; add a
//! `sigil-binding: <name>` header to choose one of its bindings.

use std::io::Write as _;
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Worker;
wasi::http::proxy::export!(Worker);

impl wasi::exports::http::incoming_handler::Guest for Worker {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().unwrap();
        ResponseOutparam::set(out, Ok(response));
        let mut stream = body.write().unwrap();
        stream.write_all(format!("hello from {{name}}: {path}\n").as_bytes()).unwrap();
        stream.flush().unwrap();
        drop(stream);
        OutgoingBody::finish(body, None).unwrap();
    }
}
