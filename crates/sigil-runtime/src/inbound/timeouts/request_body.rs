//! The request body with `body_idle_timeout`: when the client sends nothing
//! for that long, reading fails with [`BodyIdleTimeout`] (the service answers
//! 408) and the connection is asked to close.

use super::activity::Activity;
use crate::telemetry::metrics::CloseReason;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The error of a request body that sent nothing for `body_idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body sent nothing for {} ms (server.body_idle_timeout_ms)",
    .0.as_millis()
)]
pub(crate) struct BodyIdleTimeout(pub Duration);

/// The idle timeout for a request's body; the connection puts it in the
/// request's extensions.
#[derive(Clone)]
pub(crate) struct BodyTimeout {
    idle: Duration,
    activity: Arc<Activity>,
}

impl BodyTimeout {
    pub(crate) fn new(idle: Duration, activity: Arc<Activity>) -> Self {
        BodyTimeout { idle, activity }
    }
}

/// A request body that fails with [`BodyIdleTimeout`] when no frame arrives
/// for the timeout in its request's [`BodyTimeout`] (none: never).
pub(crate) struct IdleTimeoutBody<B> {
    inner: B,
    timeout: Option<BodyTimeout>,
    /// Armed while the inner body is pending.
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<B> IdleTimeoutBody<B> {
    /// `inner`, timed by the [`BodyTimeout`] in the request's `extensions`.
    pub(crate) fn new(inner: B, extensions: &http::Extensions) -> Self {
        IdleTimeoutBody {
            inner,
            timeout: extensions.get::<BodyTimeout>().cloned(),
            sleep: None,
            armed: false,
        }
    }

    /// Whether the body has been idle for its timeout; arms the timer when
    /// the inner body just went pending.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<&BodyTimeout> {
        let timeout = self.timeout.as_ref()?;
        let deadline = Instant::now() + timeout.idle;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            sleep.as_mut().reset(deadline);
            self.armed = true;
        }
        sleep.as_mut().poll(cx).is_ready().then_some(timeout)
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.expired(cx) {
                Some(timeout) => {
                    let error = BodyIdleTimeout(timeout.idle);
                    timeout.activity.request_close();
                    super::count_closed(timeout.activity.listener(), CloseReason::body_timeout);
                    this.timeout = None;
                    Poll::Ready(Some(Err(error.into())))
                }
                None => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Listener;
    use http_body_util::BodyExt;

    /// A body that sends one chunk, then nothing.
    struct Stalls(bool);

    impl Body for Stalls {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_idle_timeout_and_asks_to_close() {
        let activity = Activity::new(Listener::http);
        let mut extensions = http::Extensions::new();
        extensions.insert(BodyTimeout::new(
            Duration::from_millis(300),
            activity.clone(),
        ));
        let started = Instant::now();
        let err = IdleTimeoutBody::new(Stalls(false), &extensions)
            .collect()
            .await
            .expect_err("the stalled body fails");
        assert!(err.downcast_ref::<BodyIdleTimeout>().is_some(), "{err}");
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert!(activity.close_requested());
    }
}
