//! The admin listener: `/metrics` (OpenMetrics text format), `/healthz`, and
//! `POST /reload`. Bind it to loopback or a private interface: it has no
//! authentication. It refuses what web pages send (CSRF), and on loopback
//! any `Host` but a loopback name (DNS rebinding).

use crate::authority::{Host, parse_authority};
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

/// Why a request must not reach the admin endpoints, if it must not: one a
/// browser sent on behalf of a web page (`Origin`, or `Sec-Fetch-Site` other
/// than `none`), which could trigger a reload (CSRF); and, on a loopback
/// listener, one whose `Host` is not a loopback name, which is what a page
/// reaching it through DNS rebinding sends.
fn refusal(req: &Request<Incoming>, loopback: bool) -> Option<String> {
    let headers = req.headers();
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        return Some(format!(
            "the admin endpoints do not answer requests made by web pages (Origin: {}); use curl or your metrics scraper\n",
            String::from_utf8_lossy(origin.as_bytes())
        ));
    }
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"none"
    {
        return Some(
            "the admin endpoints do not answer requests made by web pages (Sec-Fetch-Site); use curl or your metrics scraper\n".into(),
        );
    }
    if !loopback {
        return None;
    }
    let host = match headers.get(http::header::HOST) {
        Some(host) => host.as_bytes(),
        None => req.uri().authority()?.as_str().as_bytes(),
    };
    if is_loopback_host(host) {
        return None;
    }
    Some(format!(
        "Host {:?} is not a loopback name: this admin listener answers requests for 127.0.0.1, [::1] or localhost only\n",
        String::from_utf8_lossy(host)
    ))
}

/// `localhost`, a 127/8 address or `[::1]`, with or without a port, read by
/// the edge's own authority parser (case and a trailing dot normalised).
fn is_loopback_host(host: &[u8]) -> bool {
    match parse_authority(host).map(|a| a.host) {
        Ok(Host::Name(name)) => name == "localhost",
        Ok(Host::Ip(ip)) => ip.to_canonical().is_loopback(),
        Err(_) => false,
    }
}

async fn handle(
    runtime: Arc<Runtime>,
    req: Request<Incoming>,
    loopback: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(why) = refusal(&req, loopback) {
        return Ok(reply(
            StatusCode::FORBIDDEN,
            "text/plain; charset=utf-8",
            why,
        ));
    }
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
    let loopback = listener
        .local_addr()
        .is_ok_and(|addr| addr.ip().to_canonical().is_loopback());
    let mut acceptor = Acceptor::new(listener, Listener::admin);
    loop {
        tokio::select! {
            stream = acceptor.accept() => {
                let runtime = runtime.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(runtime.clone(), req, loopback));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:9090",
            "127.1.2.3:1",
            "localhost",
            "LOCALHOST:9090",
            "localhost.:9090",
            "[::1]",
            "[::1]:9090",
            "[::ffff:127.0.0.1]:9090",
        ] {
            assert!(is_loopback_host(host.as_bytes()), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9090",
            "localhost.evil.example",
            "10.0.0.1:9090",
            "[::2]:9090",
            "",
            "[::1]evil.example",
            "[::1].evil.example:80",
            "localhost:evil.example",
            "localhost:",
        ] {
            assert!(!is_loopback_host(host.as_bytes()), "{host}");
        }
    }
}
