//! Serving HTTP on one accepted connection.

use super::service::serve;
use crate::state::{ConnectionInfo, Runtime};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use std::sync::Arc;

/// Serve HTTP/1.1 or HTTP/2 requests on an accepted (and, for HTTPS,
/// authenticated) connection until it closes or shutdown drains it.
pub(super) async fn serve_connection<IO>(
    io: TokioIo<IO>,
    runtime: Arc<Runtime>,
    conn: Arc<ConnectionInfo>,
    watcher: Watcher,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| serve(runtime.clone(), conn.clone(), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(io, service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!("connection ended: {e}");
    }
}
