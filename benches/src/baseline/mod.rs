//! Baselines measured in the same run as Sigil: what the same work costs
//! with bare hyper + rustls (+ reqwest) and nothing else.
//!
//! All servers bind in-process (normally `127.0.0.1:0`) and return a
//! [`ServerHandle`]; dropping the handle stops the server.

pub mod bare_proxy;
pub mod bare_server;
pub mod mtls_origin;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// A running in-process server. Dropping it (or calling
/// [`ServerHandle::shutdown`]) stops accepting and aborts open connections.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for its accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds `listen` and runs `on_conn` for every accepted TCP connection
/// (with `TCP_NODELAY` set) until the returned handle is shut down or dropped.
pub(crate) async fn spawn_server<F, Fut>(
    listen: SocketAddr,
    on_conn: F,
) -> anyhow::Result<ServerHandle>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        conns.spawn(on_conn(stream));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.abort_all();
    });
    Ok(ServerHandle { addr, stop, task })
}

/// The response body type of every baseline.
pub(crate) type Body = Full<Bytes>;

/// Serves HTTP on one (TLS) connection with hyper-util's auto builder:
/// HTTP/2 only when ALPN chose `h2`, HTTP/1.1 only when it chose
/// `http/1.1`, and protocol sniffing when there was no ALPN.
pub(crate) async fn serve_connection<I, H, Fut>(io: I, alpn: Option<Vec<u8>>, handler: H)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let builder = match alpn.as_deref() {
        Some(b"h2") => builder.http2_only(),
        Some(_) => builder.http1_only(),
        None => builder,
    };
    let svc = service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req).await) }
    });
    if let Err(e) = builder.serve_connection(TokioIo::new(io), svc).await {
        tracing::debug!(error = %e, "connection ended with error");
    }
}

/// A plain-text response with this status.
pub(crate) fn text(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
