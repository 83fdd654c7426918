//! The admin listener: `/metrics` (OpenMetrics text format), `/healthz`, and
//! `POST /reload`. Bind it to loopback or a private interface.

use crate::inbound::accept::Acceptor;
use crate::state::Runtime;
use crate::telemetry::metrics::{self, Listener, metrics};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

async fn handle(
    runtime: Arc<Runtime>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            reply(StatusCode::OK, metrics::CONTENT_TYPE, metrics().render())
        }
        (&Method::GET, "/healthz") => {
            let g = runtime.current();
            reply(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                format!(
                    "ok: {} workers, {} hostnames\n",
                    g.workers.len(),
                    g.hostnames.len()
                ),
            )
        }
        (&Method::POST, "/reload") => match runtime.reload("admin").await {
            Ok(()) => reply(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                "reloaded\n".into(),
            ),
            Err(e) => reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                "text/plain; charset=utf-8",
                format!("{e}\n"),
            ),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "admin endpoints: GET /metrics, GET /healthz, POST /reload\n".into(),
        ),
    })
}

/// Serve the admin endpoints until `stop` turns true.
pub async fn run(listener: TcpListener, runtime: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    let mut acceptor = Acceptor::new(listener, Listener::admin);
    loop {
        tokio::select! {
            stream = acceptor.accept() => {
                let runtime = runtime.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(runtime.clone(), req));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}
