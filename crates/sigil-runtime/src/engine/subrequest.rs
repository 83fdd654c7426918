//! The engine's door to the outside world: the [`Subrequests`] a worker's
//! host calls use, and the [`CallContext`] they run in. The engine defines
//! the trait; the outbound layer implements it, so the engine never depends
//! on how subrequests are sent.

use crate::config::Limits;
use crate::headers::{ForwardedClientCert, Hop};
use bytes::Bytes;
use sigil_sdk::wire::FetchError;
use sigil_sdk::wire_ref::FetchRequestView;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// The origin's response to a subrequest, as the outbound layer read it:
/// its header map and body are handed to the guest's encoding as they are,
/// without copies into owned strings.
#[derive(Debug)]
pub struct FetchedResponse {
    /// Status code.
    pub status: u16,
    /// The origin's header fields.
    pub headers: http::HeaderMap,
    /// The whole body (within the worker's `max_response_body`).
    pub body: Bytes,
}

/// How a subrequest ended: the origin's response or a named error.
pub type Fetched = Result<FetchedResponse, FetchError>;

/// A subrequest on its way: resolves to the origin's response or a named error.
pub type SubrequestFuture = Pin<Box<dyn Future<Output = Fetched> + Send + 'static>>;

/// What a worker's subrequests go through.
pub trait Subrequests: Send + Sync {
    /// Check `request` (binding, allowed hosts, method and headers), read
    /// from the guest's encoded bytes in place, and return the future that
    /// sends it, or the error that stops it before anything is sent.
    fn start(
        &self,
        request: FetchRequestView<'_>,
        call: &CallContext,
    ) -> Result<SubrequestFuture, FetchError>;
}

/// Everything about the inbound request that host calls need.
#[derive(Clone)]
pub struct CallContext {
    /// The worker's name.
    pub worker: Arc<str>,
    /// The request id used in logs.
    pub request_id: Arc<str>,
    /// The worker's limits.
    pub limits: Limits,
    /// Where the worker's subrequests go.
    pub subrequests: Arc<dyn Subrequests>,
    /// The inbound client certificate to forward to origins, when the
    /// hostname forwards it.
    pub forward: Option<Arc<ForwardedClientCert>>,
    /// When the request must be finished.
    pub deadline: Instant,
    /// How the request reached Sigil (hops so far), carried to its subrequests.
    pub hop: Hop,
    /// The worker's variables, exposed as environment variables.
    pub vars: Arc<[(String, String)]>,
}
