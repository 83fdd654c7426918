//! Serving HTTP on one accepted connection, under its timeouts: the socket
//! and the responses report to the connection's [`Activity`], the
//! [`Watchdog`] says when a deadline passes, and this drives hyper until the
//! connection ends, is dropped, or closes gracefully (idle, a request-body
//! timeout, shutdown).

use super::service::serve;
use super::timeouts::{
    Activity, BodyTimeout, ResponseBody, TimedIo, Verdict, Watchdog, count_closed,
};
use crate::config::ConnectionSettings;
use crate::state::{ConnectionInfo, Runtime};
use crate::telemetry::metrics::{CloseReason, Listener};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// What an accepted connection is served under.
pub(super) struct ConnectionContext {
    /// Its timeouts.
    pub settings: ConnectionSettings,
    /// The listener that accepted it.
    pub listener: Listener,
    /// Turns true when the server drains; held until the connection ends.
    pub drain: watch::Receiver<bool>,
}

/// Serve HTTP/1.1 or HTTP/2 requests on an accepted (and, for HTTPS,
/// authenticated) connection until it closes, a timeout drops it, or
/// shutdown drains it, speaking the HTTP `version` the connection chose.
pub(super) async fn serve_connection<IO>(
    io: IO,
    runtime: Arc<Runtime>,
    conn: Arc<ConnectionInfo>,
    context: ConnectionContext,
    version: HttpVersion,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new(context.listener);
    let body_idle = context.settings.body_idle_timeout;
    let on_request = activity.clone();
    let service = service_fn(move |mut req: http::Request<Incoming>| {
        let request = on_request.request_started(req.version());
        req.extensions_mut()
            .insert(BodyTimeout::new(body_idle, on_request.clone()));
        let activity = on_request.clone();
        let response = serve(runtime.clone(), conn.clone(), req);
        async move {
            let response = response.await?;
            Ok::<_, Infallible>(response.map(|body| ResponseBody::new(body, activity, request)))
        }
    });
    let io = TokioIo::new(TimedIo::new(io, activity.clone()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's default (about 400 KiB) let each unfinished HTTP/1 request head
    // hold that much memory for up to header_read_timeout.
    builder.http1().max_buf_size(MAX_REQUEST_HEAD);
    let builder = match version {
        HttpVersion::Http2 => builder.http2_only(),
        HttpVersion::Http1 => builder.http1_only(),
        HttpVersion::FromFirstBytes => builder,
    };
    let connection = builder.serve_connection(io, service);
    let watchdog = Watchdog::new(activity, context.settings);
    drive(connection, watchdog, context.drain, context.listener).await;
}

/// The largest HTTP/1 request head (request line and headers) read; a longer
/// one gets `431`. Like Envoy's 60 KiB and nginx's 4 × 8 KiB, and far more
/// than clients send; HTTP/2 header lists are capped by hyper's 16 KiB.
pub const MAX_REQUEST_HEAD: usize = 64 << 10;

/// The HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HttpVersion {
    /// HTTP/1.1, as ALPN chose.
    Http1,
    /// HTTP/2, as ALPN chose.
    Http2,
    /// Read from the first bytes: plain HTTP, or a client that offered no ALPN.
    FromFirstBytes,
}

impl HttpVersion {
    /// The version the ALPN protocol `alpn` chose (RFC 7301).
    pub fn from_alpn(alpn: Option<&[u8]>) -> HttpVersion {
        match alpn {
            Some(b"h2") => HttpVersion::Http2,
            Some(_) => HttpVersion::Http1,
            None => HttpVersion::FromFirstBytes,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Poll `connection` until it ends, or until the watchdog drops it.
async fn drive<I, S, B>(
    connection: auto::Connection<'_, I, S, TokioExecutor>,
    mut watchdog: Watchdog,
    mut drain: watch::Receiver<bool>,
    listener: Listener,
) where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>,
    S::Future: 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    TokioExecutor: auto::HttpServerConnExec<S::Future, B>,
{
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let verdict = tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            verdict = watchdog.expired() => verdict,
            _ = drain.changed(), if !closing => Verdict::CloseRequested,
        };
        match verdict {
            Verdict::Drop(reason) => {
                dropped(listener, reason);
                return;
            }
            Verdict::GraceOver => return,
            Verdict::Idle => count_closed(listener, CloseReason::idle_timeout),
            Verdict::CloseRequested => {}
        }
        if !closing {
            connection.as_mut().graceful_shutdown();
            watchdog.closing();
            closing = true;
        }
    }
}

fn dropped(listener: Listener, reason: CloseReason) {
    tracing::debug!(?listener, ?reason, "dropping the connection");
    count_closed(listener, reason);
}
