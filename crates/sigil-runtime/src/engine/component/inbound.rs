//! The inbound request as a component receives it: an absolute URI, the
//! headers the client sent (those only Sigil sets already stripped) plus
//! the client-certificate headers Sigil sets, and the body as a stream.

use super::body::{Coalesced, FailureSlot, RequestBody};
use crate::headers::client_cert;
use crate::state::{WorkerBody, WorkerRequest};

/// `request` as the hyper request `wasi:http` wraps, and its scheme.
pub fn incoming(
    request: WorkerRequest,
    failure: FailureSlot,
) -> (
    hyper::Request<RequestBody>,
    wasmtime_wasi_http::p2::bindings::http::types::Scheme,
) {
    use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
    let url = request.url();
    let scheme = if request.connection.scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let mut head = request.head;
    if let Ok(uri) = http::Uri::try_from(url) {
        head.uri = uri;
    }
    client_cert::apply(request.connection.client_auth.as_deref(), &mut head.headers);
    let body = RequestBody::new(WorkerBody::stream(Coalesced::new(request.body)), failure);
    (hyper::Request::from_parts(head, body), scheme)
}
