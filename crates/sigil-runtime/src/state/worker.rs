//! A worker as the rest of the runtime sees it: a name, its limits, and a
//! [`WorkerHandler`] that turns one request into one response. The engine
//! implements the handler; the inbound service calls it.

use super::{ConnectionInfo, WorkerBody};
use crate::config::{LimitExceeded, Limits};
use crate::headers::Hop;
use crate::telemetry::metrics::WorkerErrorKind;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// A worker ready to serve.
pub struct Worker {
    /// Its name.
    pub name: Arc<str>,
    /// Its limits.
    pub limits: Limits,
    /// What runs its requests.
    pub handler: Arc<dyn WorkerHandler>,
    /// Its share of the instance slots (`server.worker_share` of
    /// `server.max_instances`): one permit per request running.
    pub slots: Arc<tokio::sync::Semaphore>,
}

/// One inbound request, as handed to a worker.
pub struct WorkerRequest {
    /// Method, URI, version and headers (the headers only Sigil may set are
    /// already removed).
    pub head: http::request::Parts,
    /// The authority the request was authenticated for.
    pub authority: String,
    /// The body: whole bytes (within the worker's `max_request_body`) for a
    /// handler that does not [stream](WorkerHandler::streams_bodies), else a
    /// stream that fails with a [`BodyFailure`](super::BodyFailure) past that limit.
    pub body: WorkerBody,
    /// What the connection established (client certificate, forwarding).
    pub connection: Arc<ConnectionInfo>,
    /// The request id used in logs and the `sigil-request-id` header.
    pub request_id: Arc<str>,
    /// When the request must be finished.
    pub deadline: Instant,
    /// How many times the request passed through Sigil before.
    pub hop: Hop,
}

impl WorkerRequest {
    /// The absolute URL the worker sees: `<scheme>://<authority><path>?<query>`.
    pub fn url(&self) -> String {
        let path = self
            .head
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        format!("{}://{}{path}", self.connection.scheme, self.authority)
    }
}

/// The future a [`WorkerHandler`] returns.
pub type WorkerFuture<'a> =
    Pin<Box<dyn Future<Output = Result<http::Response<WorkerBody>, WorkerError>> + Send + 'a>>;

/// Runs a worker's requests.
pub trait WorkerHandler: Send + Sync {
    /// Handle one request on a fresh instance.
    fn handle(&self, request: WorkerRequest) -> WorkerFuture<'_>;

    /// Whether the handler takes the request body as a stream (component
    /// workers). When false (the default; SDK workers), the inbound service
    /// reads the body whole first.
    fn streams_bodies(&self) -> bool {
        false
    }

    /// What kind of worker this is, for `sigil check` and logs.
    fn kind(&self) -> &'static str {
        "sigil-sdk module"
    }
}

/// Why a request did not produce the worker's response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// A limit was exceeded.
    #[error("worker \"{worker}\" {limit}")]
    Limit {
        /// The worker.
        worker: String,
        /// The limit.
        limit: LimitExceeded,
    },
    /// The guest panicked.
    #[error("worker \"{worker}\" panicked: {message}")]
    Panic {
        /// The worker.
        worker: String,
        /// The panic message.
        message: String,
    },
    /// The guest trapped or broke the ABI.
    #[error("worker \"{worker}\" failed: {message}")]
    Trap {
        /// The worker.
        worker: String,
        /// The trap or ABI error.
        message: String,
    },
    /// The handler returned an error.
    #[error("{message}")]
    Handler {
        /// The status the worker chose.
        status: u16,
        /// The worker's message.
        message: String,
    },
    /// No instance slot was free.
    #[error(
        "worker \"{worker}\" is at capacity: every instance slot is busy (server.max_instances)"
    )]
    Capacity {
        /// The worker.
        worker: String,
    },
}

impl WorkerError {
    /// The HTTP status the client receives.
    pub fn status(&self) -> u16 {
        match self {
            WorkerError::Limit {
                limit: LimitExceeded::Timeout { .. },
                ..
            } => 504,
            WorkerError::Limit {
                limit: LimitExceeded::ResponseBody { .. },
                ..
            } => 500,
            WorkerError::Limit { .. } | WorkerError::Capacity { .. } => 503,
            WorkerError::Panic { .. } | WorkerError::Trap { .. } => 500,
            WorkerError::Handler { status, .. } => *status,
        }
    }

    /// What kind of failure this is, for metrics and logs.
    pub fn kind(&self) -> WorkerErrorKind {
        match self {
            WorkerError::Limit { limit, .. } => match limit {
                LimitExceeded::Cpu { .. } => WorkerErrorKind::cpu_limit,
                LimitExceeded::Memory { .. } => WorkerErrorKind::memory_limit,
                LimitExceeded::Timeout { .. } => WorkerErrorKind::timeout,
                LimitExceeded::ResponseBody { .. } => WorkerErrorKind::response_too_large,
            },
            WorkerError::Panic { .. } => WorkerErrorKind::panic,
            WorkerError::Trap { .. } => WorkerErrorKind::trap,
            WorkerError::Handler { .. } => WorkerErrorKind::handler_error,
            WorkerError::Capacity { .. } => WorkerErrorKind::capacity,
        }
    }
}
