//! A worker as the rest of the runtime sees it: a name, its limits, and a
//! [`WorkerHandler`] that turns one request into one response. The engine
//! implements the handler; the inbound service calls it.

use super::{ConnectionInfo, WorkerBody};
use crate::config::{LimitExceeded, Limits};
use crate::headers::Hop;
use crate::telemetry::logging::escape_controls;
use crate::telemetry::metrics::{WorkerErrorKind, WorkerSeries};
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
    /// Its request counter and latency histogram.
    pub series: WorkerSeries,
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
    /// The worker's instance slot this request holds (`None` outside the
    /// inbound service). The response body holds it until the response
    /// ends; a handler whose work can outlive the response (a component's
    /// task) keeps a clone until that work ends, so a client that drops its
    /// response cannot free the slot of a guest that is still running.
    pub slot: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
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
        let scheme = self.connection.scheme;
        let mut url = String::with_capacity(scheme.len() + 3 + self.authority.len() + path.len());
        for part in [scheme, "://", &self.authority, path] {
            url.push_str(part);
        }
        url
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
///
/// It has two texts: [`Display`](std::fmt::Display) is the full account for
/// the server log (trap text and wasm backtrace included, guest-supplied
/// text escaped), and [`client_message`](WorkerError::client_message) is the
/// short line a client receives, which never carries a backtrace, a panic
/// message or other internals of the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerError {
    /// A limit was exceeded.
    Limit {
        /// The worker.
        worker: String,
        /// The limit.
        limit: LimitExceeded,
    },
    /// The guest panicked.
    Panic {
        /// The worker.
        worker: String,
        /// The panic message (escaped).
        message: String,
        /// The trap that ended it, with its wasm backtrace (escaped).
        detail: String,
    },
    /// The guest trapped or broke the ABI.
    Trap {
        /// The worker.
        worker: String,
        /// What failed, in one short line: the trap, or the message of the
        /// host call or ABI check that failed (escaped; no backtrace).
        reason: String,
        /// The full error with its wasm backtrace (escaped).
        detail: String,
    },
    /// The worker returned a response that cannot be sent (a status outside
    /// 200–599).
    InvalidResponse {
        /// The worker.
        worker: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The handler returned an error.
    Handler {
        /// The status the worker chose.
        status: u16,
        /// The worker's message.
        message: String,
    },
    /// No instance slot was free.
    Capacity {
        /// The worker.
        worker: String,
    },
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerError::Limit { worker, limit } => write!(f, "worker \"{worker}\" {limit}"),
            WorkerError::Panic {
                worker,
                message,
                detail,
            } => write!(f, "worker \"{worker}\" panicked: {message} ({detail})"),
            WorkerError::Trap { worker, detail, .. } => {
                write!(f, "worker \"{worker}\" failed: {detail}")
            }
            WorkerError::InvalidResponse { worker, problem } => {
                write!(
                    f,
                    "worker \"{worker}\" returned an invalid response: {problem}"
                )
            }
            WorkerError::Handler { message, .. } => f.write_str(&escape_controls(message)),
            WorkerError::Capacity { worker } => write!(
                f,
                "worker \"{worker}\" is at capacity: every instance slot is busy (server.max_instances)"
            ),
        }
    }
}

impl std::error::Error for WorkerError {}

impl WorkerError {
    /// The short message the client receives for the request `request_id`:
    /// what failed and which worker, and where the details are.
    pub fn client_message(&self, request_id: &str) -> String {
        let see_log = format!("see the server log for request {request_id}");
        match self {
            WorkerError::Panic { worker, .. } => {
                format!("worker \"{worker}\" panicked; {see_log}")
            }
            WorkerError::Trap { worker, reason, .. } => {
                format!("worker \"{worker}\" failed: {reason}; {see_log}")
            }
            WorkerError::InvalidResponse { .. } => format!("{self}; {see_log}"),
            WorkerError::Handler { message, .. } => message.clone(),
            WorkerError::Limit { .. } | WorkerError::Capacity { .. } => self.to_string(),
        }
    }

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
            WorkerError::Panic { .. }
            | WorkerError::Trap { .. }
            | WorkerError::InvalidResponse { .. } => 500,
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
            WorkerError::InvalidResponse { .. } => WorkerErrorKind::invalid_response,
            WorkerError::Handler { .. } => WorkerErrorKind::handler_error,
            WorkerError::Capacity { .. } => WorkerErrorKind::capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_get_the_short_message_and_the_log_the_detail() {
        let e = WorkerError::Trap {
            worker: "w".into(),
            reason: "wasm trap: wasm `unreachable` instruction executed".into(),
            detail: "error while executing at wasm backtrace:\\n    0: 0x1 - w!secret_fn".into(),
        };
        let client = e.client_message("r-1");
        assert_eq!(
            client,
            "worker \"w\" failed: wasm trap: wasm `unreachable` instruction executed; see the server log for request r-1"
        );
        assert!(e.to_string().contains("secret_fn"));
        let p = WorkerError::Panic {
            worker: "w".into(),
            message: "boom at src/lib.rs:3".into(),
            detail: "wasm backtrace".into(),
        };
        assert_eq!(
            p.client_message("r-2"),
            "worker \"w\" panicked; see the server log for request r-2"
        );
        assert!(p.to_string().contains("boom at src/lib.rs:3"));
    }

    #[test]
    fn a_handler_message_is_escaped_in_the_log_only() {
        let e = WorkerError::Handler {
            status: 400,
            message: "bad\r\nINFO forged".into(),
        };
        assert_eq!(e.to_string(), "bad\\r\\nINFO forged");
        assert_eq!(e.client_message("r"), "bad\r\nINFO forged");
    }
}
