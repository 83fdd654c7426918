//! Component workers' outgoing requests ([`HttpSubrequests`]): the same
//! bindings, default binding or identity, allowed hosts, blocked networks,
//! identity-keyed pools, origin verification, `sigil-worker` header,
//! forwarding and hop headers as SDK subrequests, with bodies that stream
//! both ways (the response body counted against `max_response_body` as it
//! passes).

use super::classify::{Timeouts, classify, classify_tls};
use super::send::add_runtime_headers;
use super::worker::{Target, WorkerOutbound, count};
use crate::engine::CallContext;
use crate::engine::component::{HttpSubrequest, HttpSubrequestFuture, HttpSubrequests};
use crate::headers::{dashed, is_not_forwarded, is_runtime_owned};
use crate::state::{BodyError, WorkerBody};
use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};
use sigil_sdk::wire::FetchError;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

impl HttpSubrequests for WorkerOutbound {
    fn start_http(
        &self,
        sub: HttpSubrequest,
        call: &CallContext,
    ) -> Result<HttpSubrequestFuture, FetchError> {
        let label = self.binding_label(&sub.client_cert);
        let worker = call.worker.clone();
        let target = match self.target(&sub.request.uri().to_string(), &sub.client_cert) {
            Ok(t) => t,
            Err(e) => {
                count(&worker, label, Err(&e));
                return Err(e);
            }
        };
        let permit = match self.in_flight.try_start(&worker) {
            Ok(p) => p,
            Err(cause) => {
                let e = FetchError::ConnectFailed {
                    binding: target.binding.clone(),
                    host: target.origin.clone(),
                    cause,
                };
                count(&worker, label, Err(&e));
                return Err(e);
            }
        };
        let remaining = call.deadline.saturating_duration_since(Instant::now());
        let job = Job {
            headers: headers(sub.request.headers(), call, remaining),
            target,
            request: sub.request,
            timeout: remaining,
            first_byte: sub.first_byte_timeout.map(|t| t.min(remaining)),
            max_body: call.limits.max_response_body,
        };
        Ok(Box::pin(async move {
            // The place in flight is held while the response body streams.
            let result = job
                .send()
                .await
                .map(|response| response.map(|body| body.hold(permit)));
            count(&worker, label, result.as_ref().map(|_| ()));
            result
        }))
    }
}

/// The request's headers: the worker's, minus those that never cross a hop
/// (except `content-length`, which frames a streamed body) and those only
/// Sigil sets, plus `sigil-worker`, forwarding and hop headers.
fn headers(from: &HeaderMap, call: &CallContext, remaining: Duration) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(from.len() + 4);
    for (name, value) in from {
        let dashed = dashed(name.as_str());
        let framing = name == http::header::CONTENT_LENGTH;
        if (is_not_forwarded(&dashed) && !framing) || is_runtime_owned(&dashed) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    add_runtime_headers(&mut headers, call, remaining);
    headers
}

struct Job {
    target: Target,
    request: http::Request<WorkerBody>,
    headers: HeaderMap,
    timeout: Duration,
    first_byte: Option<Duration>,
    max_body: u64,
}

impl Job {
    fn timeouts(&self) -> Timeouts {
        Timeouts {
            request: self.first_byte.unwrap_or(self.timeout),
            connect: self.target.pool.connect_timeout(),
        }
    }

    async fn send(self) -> Result<http::Response<WorkerBody>, FetchError> {
        let timeouts = self.timeouts();
        let t = &self.target;
        let (parts, body) = self.request.into_parts();
        let mut builder = t
            .pool
            .http(t.trusted)
            .request(parts.method, t.url.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout);
        if !body.is_end_stream() {
            builder = builder.body(reqwest::Body::wrap(SyncBody(Mutex::new(body))));
        }
        let sent = builder.send();
        let sent = match self.first_byte {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(sent) => sent,
                Err(_) => {
                    return Err(FetchError::Timeout {
                        binding: t.binding.clone(),
                        host: t.origin.clone(),
                        after_ms: limit.as_millis() as u64,
                    });
                }
            },
            None => sent.await,
        };
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Err(failure(t, timeouts, &e).await),
        };
        if response.content_length().is_some_and(|n| n > self.max_body) {
            return Err(FetchError::ResponseTooLarge {
                host: t.origin.clone(),
                limit: self.max_body,
            });
        }
        let response = http::Response::<reqwest::Body>::from(response);
        let (limit, origin) = (self.max_body, t.origin.clone());
        Ok(response.map(|body| {
            WorkerBody::stream(Counted {
                inner: body,
                passed: 0,
                limit,
                origin,
            })
        }))
    }
}

/// The named failure of a send, looking at the TLS verdict when the client
/// saw only a closed connection.
async fn failure(t: &Target, timeouts: Timeouts, e: &reqwest::Error) -> FetchError {
    let error = classify(e, &t.binding, &t.origin, timeouts);
    if t.url.scheme() == "https"
        && matches!(error, FetchError::Other { .. })
        && let Some(tls) = super::diagnose::tls_verdict(&t.pool, &t.host, t.port, t.trusted).await
    {
        return classify_tls(&tls, t.binding.clone(), t.origin.clone());
    }
    error
}

/// A request body for the HTTP client, which needs `Sync`: exclusive access
/// through `Pin<&mut Self>` means the lock is never contended.
struct SyncBody(Mutex<WorkerBody>);

impl Body for SyncBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        // Trailers pass the same filter as headers: a guest cannot send a
        // runtime-owned field (`sigil-worker`, `client-cert`, ...) that way.
        let mut polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &mut polled {
            crate::headers::strip_frame_trailers(frame);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().map(|b| b.is_end_stream()).unwrap_or(true)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().map(|b| b.size_hint()).unwrap_or_default()
    }
}

/// An origin's response body, failing with `ResponseTooLarge` past `limit`.
struct Counted {
    inner: reqwest::Body,
    passed: u64,
    limit: u64,
    origin: String,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.passed += data.len() as u64;
                    if this.passed > this.limit {
                        return Poll::Ready(Some(Err(Box::new(FetchError::ResponseTooLarge {
                            host: this.origin.clone(),
                            limit: this.limit,
                        }))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
