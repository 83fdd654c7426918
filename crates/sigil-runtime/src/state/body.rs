//! The body of a request or response as it passes between the inbound
//! service and a worker: either whole bytes (what SDK workers take and give)
//! or a stream that is never held whole in memory (what component workers
//! take and give).

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The error a streaming body fails with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body between the inbound service and a worker.
pub struct WorkerBody {
    inner: Inner,
}

enum Inner {
    /// Whole bytes, handed over as one frame (taken once polled).
    Full(Option<Bytes>),
    /// Frames as they come.
    Stream(UnsyncBoxBody<Bytes, BodyError>),
}

impl WorkerBody {
    /// A body of whole bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        WorkerBody {
            inner: Inner::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// No body.
    pub fn empty() -> Self {
        WorkerBody {
            inner: Inner::Full(None),
        }
    }

    /// A streaming body.
    pub fn stream<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BodyError>,
    {
        WorkerBody {
            inner: Inner::Stream(body.map_err(Into::into).boxed_unsync()),
        }
    }

    /// The whole bytes of a body that is not a stream (`None` for a stream).
    pub fn buffered(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Full(bytes) => Some(bytes.as_deref().unwrap_or_default()),
            Inner::Stream(_) => None,
        }
    }

    /// Whether the body is a stream.
    pub fn is_stream(&self) -> bool {
        matches!(self.inner, Inner::Stream(_))
    }

    /// This body, holding `guard` until it is dropped (e.g. an instance
    /// slot held while a worker still writes its response).
    pub fn hold<G: Send + 'static>(self, guard: G) -> Self {
        match self.inner {
            Inner::Full(_) => self,
            Inner::Stream(inner) => WorkerBody {
                inner: Inner::Stream(
                    Holding {
                        inner,
                        _guard: guard,
                    }
                    .boxed_unsync(),
                ),
            },
        }
    }
}

impl Default for WorkerBody {
    fn default() -> Self {
        WorkerBody::empty()
    }
}

impl From<Bytes> for WorkerBody {
    fn from(bytes: Bytes) -> Self {
        WorkerBody::full(bytes)
    }
}

impl std::fmt::Debug for WorkerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Full(b) => write!(
                f,
                "WorkerBody::Full({} bytes)",
                b.as_ref().map_or(0, |b| b.len())
            ),
            Inner::Stream(_) => f.write_str("WorkerBody::Stream"),
        }
    }
}

impl Body for WorkerBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.inner {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Stream(body) => body.size_hint(),
        }
    }
}

/// A body that holds a guard until it is dropped.
struct Holding<G> {
    inner: UnsyncBoxBody<Bytes, BodyError>,
    _guard: G,
}

impl<G> Unpin for Holding<G> {}

impl<G> Body for Holding<G> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a streamed request body did not arrive whole: the same failures,
/// statuses and messages as a request body read whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyFailure {
    /// More bytes than the worker's `max_request_body`.
    #[error("request body over the worker's limit of {limit} bytes (limits.max_request_body)")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The client sent nothing for `server.body_idle_timeout_ms`.
    #[error("{0}")]
    Idle(String),
    /// The client's body was malformed or the connection broke.
    #[error("cannot read the request body: {0}")]
    Read(String),
}

impl BodyFailure {
    /// The status the client receives when the failure is known before the
    /// response started.
    pub fn status(&self) -> u16 {
        match self {
            BodyFailure::TooLarge { .. } => 413,
            BodyFailure::Idle(_) => 408,
            BodyFailure::Read(_) => 400,
        }
    }

    /// The failure carried by a body error, if it is one.
    pub fn of<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyFailure> {
        let mut source = Some(error);
        while let Some(e) = source {
            if let Some(failure) = e.downcast_ref::<BodyFailure>() {
                return Some(failure);
            }
            // `io::Error::source` skips the error it wraps: look inside.
            source = match e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => e.source(),
            };
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_bodies_give_their_bytes_once_with_an_exact_size() {
        let body = WorkerBody::full(Bytes::from_static(b"abc"));
        assert_eq!(body.buffered(), Some(&b"abc"[..]));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert!(!body.is_end_stream());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"abc");
        assert!(WorkerBody::empty().is_end_stream());
        assert_eq!(WorkerBody::empty().buffered(), Some(&b""[..]));
    }

    #[tokio::test]
    async fn streams_pass_frames_and_hold_their_guard_until_dropped() {
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        struct Guard(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let body = WorkerBody::stream(http_body_util::Full::new(Bytes::from_static(b"xyz")))
            .hold(Guard(dropped.clone()));
        assert!(body.is_stream() && body.buffered().is_none());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"xyz");
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn failures_are_found_through_wrapping_errors() {
        let failure = BodyFailure::TooLarge { limit: 10 };
        let boxed: BodyError = Box::new(failure.clone());
        assert_eq!(BodyFailure::of(&*boxed), Some(&failure));
        assert_eq!(failure.status(), 413);
        let io = std::io::Error::other(failure.clone());
        assert_eq!(BodyFailure::of(&io), Some(&failure));
    }
}
