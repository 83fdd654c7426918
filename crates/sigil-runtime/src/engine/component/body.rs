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
use std::sync::atomic::{AtomicBool, Ordering};
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
            Poll::Ready(Some(Ok(mut frame))) => {
                crate::headers::strip_frame_trailers(&mut frame);
                Poll::Ready(Some(Ok(frame)))
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

/// A component's response body, failing once it passes `limit` bytes, and
/// failing instead of ending when the guest failed after handing over its
/// response (`cut`): the client must not take a cut-off body for a whole
/// one.
pub struct ResponseBody<B> {
    inner: B,
    limit: u64,
    passed: u64,
    worker: Arc<str>,
    over: bool,
    cut: Arc<AtomicBool>,
    /// An error held back for one poll (see [`ResponseBody::fail`]).
    held: Option<BodyError>,
}

impl<B> ResponseBody<B> {
    /// End the body with `error` at the next poll, not this one: the server
    /// writes out what it already has (the head and the data passed) when a
    /// body is pending, but drops it unsent when the body fails in the same
    /// pass; the client must see the response start and then fail.
    fn fail(
        &mut self,
        error: BodyError,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.over = true;
        self.held = Some(error);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// `inner`, the response of `worker`, limited to `limit` bytes; `cut`
    /// is set (before `inner` ends) when the guest failed mid-response.
    pub fn new(inner: B, limit: u64, worker: Arc<str>, cut: Arc<AtomicBool>) -> Self {
        ResponseBody {
            inner,
            limit,
            passed: 0,
            worker,
            over: false,
            cut,
            held: None,
        }
    }
}

/// The error that ends a body the guest did not finish.
#[derive(Debug, thiserror::Error)]
#[error("the worker failed after its response started; the response is cut off")]
pub struct CutOff;

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
        if let Some(error) = this.held.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if this.over {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return this.fail(e.into(), cx),
            Poll::Ready(None) if this.cut.load(Ordering::Acquire) => {
                return this.fail(Box::new(CutOff), cx);
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let mut frame = frame;
        crate::headers::strip_frame_trailers(&mut frame);
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
                return this.fail(Box::new(limit), cx);
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        (self.over && self.held.is_none())
            || (self.inner.is_end_stream() && !self.cut.load(Ordering::Acquire))
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Frames are handed to the guest in pieces of up to this many bytes.
const COALESCE: usize = 256 << 10;

/// A body that hands over, at once, every data frame already available (up
/// to [`COALESCE`] bytes), so a guest streaming a body wakes once per piece
/// rather than once per 16 KiB HTTP/2 or TLS frame.
pub struct Coalesced<B> {
    inner: B,
    /// A frame that did not fit (a trailer, an error, or the end).
    pending: Option<Option<Result<Frame<Bytes>, BodyError>>>,
}

impl<B> Coalesced<B> {
    /// `inner`, coalesced.
    pub fn new(inner: B) -> Self {
        Coalesced {
            inner,
            pending: None,
        }
    }
}

impl<B> Body for Coalesced<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Some(pending) = this.pending.take() {
            return Poll::Ready(pending);
        }
        let first = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let first = match first.into_data() {
            Ok(data) => data,
            // Trailers pass as they are.
            Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
        };
        if first.len() >= COALESCE {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let mut buf = bytes::BytesMut::from(&first[..]);
        while buf.len() < COALESCE {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => buf.extend_from_slice(&data),
                    Err(trailers) => {
                        this.pending = Some(Some(Ok(trailers)));
                        break;
                    }
                },
                Poll::Ready(other) => {
                    this.pending = Some(other);
                    break;
                }
                Poll::Pending => break,
            }
        }
        Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.pending, Some(None)) || (self.pending.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Data frames, then trailers, all available at once.
    struct Frames(Vec<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = BodyError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
            Poll::Ready((!self.0.is_empty()).then(|| Ok(self.0.remove(0))))
        }
    }

    #[tokio::test]
    async fn available_frames_are_handed_over_together_and_trailers_kept() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", http::HeaderValue::from_static("30"));
        let frames = vec![
            Frame::data(Bytes::from_static(&[1; 10])),
            Frame::data(Bytes::from_static(&[2; 10])),
            Frame::data(Bytes::from_static(&[3; 10])),
            Frame::trailers(trailers),
        ];
        let mut body = Coalesced::new(Frames(frames));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), 30);
        let last = body.frame().await.unwrap().unwrap();
        assert_eq!(last.trailers_ref().unwrap()["x-sum"], "30");
        assert!(body.frame().await.is_none());
    }
}
