//! The response body as the connection sends it: handed over in chunks of at
//! most [`CHUNK`] bytes, each recorded in the [`Activity`] as waiting until
//! the connection asks for the next, so a client that stops taking a
//! response (a full socket, or an HTTP/2 stream window it never opens) is
//! seen by the watchdog. It also ends its request when it is dropped.

use super::activity::{Activity, RequestGuard};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The largest chunk handed to the connection at once: how much of a
/// response the client must take within `write_timeout`.
pub(crate) const CHUNK: usize = 64 * 1024;

/// A response body that reports how the client takes it.
pub(crate) struct ResponseBody<B> {
    inner: B,
    rest: Bytes,
    id: u64,
    activity: Arc<Activity>,
    _request: RequestGuard,
}

impl<B> ResponseBody<B> {
    /// `inner`, the response to the request `request`, on the connection of `activity`.
    pub(crate) fn new(inner: B, activity: Arc<Activity>, request: RequestGuard) -> Self {
        ResponseBody {
            inner,
            rest: Bytes::new(),
            id: activity.body_id(),
            activity,
            _request: request,
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.rest.is_empty() {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.rest = data,
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                Poll::Ready(end_or_error) => return Poll::Ready(end_or_error),
                Poll::Pending => {
                    this.activity.response_not_waiting(this.id);
                    return Poll::Pending;
                }
            }
        }
        let chunk = this.rest.split_to(this.rest.len().min(CHUNK));
        this.activity.response_waiting(this.id);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(rest));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

impl<B> Drop for ResponseBody<B> {
    fn drop(&mut self) {
        self.activity.response_not_waiting(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Listener;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn hands_over_chunks_keeps_the_exact_size_and_ends_the_request() {
        let activity = Activity::new(Listener::http);
        let guard = activity.request_started(http::Version::HTTP_11);
        let data = Bytes::from(vec![7u8; CHUNK * 2 + 10]);
        let mut body = ResponseBody::new(Full::new(data.clone()), activity.clone(), guard);
        assert_eq!(body.size_hint().exact(), Some(data.len() as u64));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), CHUNK);
        assert_eq!(body.size_hint().exact(), Some((CHUNK + 10) as u64));
        assert!(activity.snapshot().oldest_waiting.is_some());
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest.len(), CHUNK + 10);
        let s = activity.snapshot();
        assert_eq!((s.in_flight, s.oldest_waiting), (0, None));
    }
}
