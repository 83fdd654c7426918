//! Bodies between Sigil and a component: the inbound request body as
//! `wasi:http` reads it (its failure remembered, so the client gets the
//! same 413/408/400 as with a body read whole), and the component's
//! response body, counted against `limits.max_response_body` as it passes.

use crate::config::LimitExceeded;
use crate::state::{BodyError, BodyFailure, WorkerBody};
use crate::telemetry::metrics::{WorkerErrorKind, WorkerErrorLabels, metrics};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi_http::Error as HttpError;

/// Where the first failure of a request body is recorded.
#[derive(Clone, Default)]
pub struct FailureSlot(Arc<Mutex<Option<BodyFailure>>>);

impl FailureSlot {
    /// The failure recorded, if any.
    pub fn get(&self) -> Option<BodyFailure> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, failure: BodyFailure) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(failure);
    }
}

/// The inbound request body as the component reads it.
pub struct RequestBody {
    inner: WorkerBody,
    failure: FailureSlot,
}

impl RequestBody {
    /// `inner`, recording its failure in `failure`.
    pub fn new(inner: WorkerBody, failure: FailureSlot) -> Self {
        RequestBody { inner, failure }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                let failure = BodyFailure::of(&*e)
                    .cloned()
                    .unwrap_or_else(|| BodyFailure::Read(e.to_string()));
                let code = match &failure {
                    BodyFailure::TooLarge { limit } => HttpError::HttpRequestBodySize(Some(*limit)),
                    other => HttpError::InternalError(Some(other.to_string())),
                };
                this.failure.set(failure);
                Poll::Ready(Some(Err(code)))
            }
            other => other.map(|f| f.map(|f| f.map_err(|_| unreachable_error()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Never built: the error arm is handled above.
fn unreachable_error() -> HttpError {
    HttpError::InternalError(None)
}

/// A component's response body, failing once it passes `limit` bytes.
pub struct ResponseBody<B> {
    inner: B,
    limit: u64,
    passed: u64,
    worker: Arc<str>,
    over: bool,
}

impl<B> ResponseBody<B> {
    /// `inner`, the response of `worker`, limited to `limit` bytes.
    pub fn new(inner: B, limit: u64, worker: Arc<str>) -> Self {
        ResponseBody {
            inner,
            limit,
            passed: 0,
            worker,
            over: false,
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BodyError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.over {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            this.passed += data.len() as u64;
            if this.passed > this.limit {
                this.over = true;
                let limit = LimitExceeded::ResponseBody {
                    size: this.passed,
                    limit: this.limit,
                };
                tracing::warn!(
                    worker = &*this.worker,
                    "worker \"{}\" {limit}; response cut off",
                    this.worker
                );
                metrics()
                    .worker_errors
                    .get_or_create(&WorkerErrorLabels {
                        worker: this.worker.clone(),
                        kind: WorkerErrorKind::response_too_large,
                    })
                    .inc();
                return Poll::Ready(Some(Err(Box::new(limit))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.over || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
