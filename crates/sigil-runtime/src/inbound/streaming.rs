//! Request bodies handed to workers as streams (component workers): never
//! held whole, the worker's `max_request_body` counted as bytes pass, under
//! the same idle timeout as bodies read whole, failing with a
//! [`BodyFailure`] that names the limit, the timeout or the cause.

use super::timeouts::{BodyIdleTimeout, IdleTimeoutBody};
use crate::state::{BodyError, BodyFailure, WorkerBody};
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// `body` as a stream limited to `limit` bytes; refused at once when its
/// `Content-Length` is already over the limit.
pub(super) fn streaming_body(
    limit: u64,
    head: &http::request::Parts,
    body: Incoming,
) -> Result<WorkerBody, BodyFailure> {
    let declared = head
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyFailure::TooLarge { limit });
    }
    Ok(WorkerBody::stream(Counted {
        inner: IdleTimeoutBody::new(body, &head.extensions),
        limit,
        passed: 0,
        failed: false,
    }))
}

/// A body that fails once more than `limit` bytes passed.
struct Counted<B> {
    inner: B,
    limit: u64,
    passed: u64,
    failed: bool,
}

fn failure(error: BodyError) -> BodyFailure {
    if error.downcast_ref::<BodyIdleTimeout>().is_some() {
        BodyFailure::Idle(error.to_string())
    } else {
        BodyFailure::Read(error.to_string())
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    type Data = Bytes;
    type Error = BodyFailure;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyFailure>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.passed += data.len() as u64;
                    if this.passed > this.limit {
                        this.failed = true;
                        return Poll::Ready(Some(Err(BodyFailure::TooLarge { limit: this.limit })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.failed = true;
                Poll::Ready(Some(Err(failure(e))))
            }
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// `n` chunks of `size` bytes.
    struct Chunks(usize, usize);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BodyError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
            if self.0 == 0 {
                return Poll::Ready(None);
            }
            self.0 -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![1u8; self.1])))))
        }
    }

    fn counted(n: usize, limit: u64) -> Counted<Chunks> {
        Counted {
            inner: Chunks(n, 10),
            limit,
            passed: 0,
            failed: false,
        }
    }

    #[tokio::test]
    async fn counts_bytes_as_they_pass_and_fails_past_the_limit() {
        let ok = counted(4, 40).collect().await.unwrap().to_bytes();
        assert_eq!(ok.len(), 40);
        let err = counted(5, 40).collect().await.expect_err("over the limit");
        assert_eq!(err, BodyFailure::TooLarge { limit: 40 });
        assert_eq!(err.status(), 413);
    }
}
