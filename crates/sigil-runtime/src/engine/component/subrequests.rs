//! The door components' outgoing requests go through: the engine defines
//! it, the outbound layer implements it (as it does [`Subrequests`] for SDK
//! workers), so the engine never depends on how requests are sent.
//!
//! [`Subrequests`]: crate::engine::Subrequests

use crate::engine::CallContext;
use crate::state::WorkerBody;
use sigil_sdk::wire::{ClientCertChoice, FetchError};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// An outgoing request of a component, its binding already chosen.
pub struct HttpSubrequest {
    /// The request, with an absolute URI; its body streams as the
    /// component writes it.
    pub request: http::Request<WorkerBody>,
    /// The client certificate to present.
    pub client_cert: ClientCertChoice,
    /// The component's own limit on waiting for the response head
    /// (`request-options.first-byte-timeout`), if any.
    pub first_byte_timeout: Option<Duration>,
}

/// A sent request: resolves to the origin's response head, whose body then
/// streams (and fails past the worker's `max_response_body`).
pub type HttpSubrequestFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<WorkerBody>, FetchError>> + Send + 'static>>;

/// What components' outgoing requests go through.
pub trait HttpSubrequests: Send + Sync {
    /// Check `request` (binding, allowed hosts, blocked networks) and return
    /// the future that sends it, or the error that stops it before anything
    /// is sent.
    fn start_http(
        &self,
        request: HttpSubrequest,
        call: &CallContext,
    ) -> Result<HttpSubrequestFuture, FetchError>;
}
