//! The TLS listener (HTTP/1.1 and HTTP/2) and the records API handlers.
//!
//! | Request         | Who                  | Response                                  |
//! |-----------------|----------------------|-------------------------------------------|
//! | `GET /records`  | any verified caller  | one record per line: `N<TAB>author<TAB>body` |
//! | `POST /records` | writers only         | `201`, or `403` naming the caller         |
//! | `GET /whoami`   | any verified caller  | `key=value` lines about the caller        |
//! | `GET /stats`    | any verified caller  | `handshakes=N requests=M`                 |

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use sigil_origin::IdentityVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::authz::{Caller, Policy};
use crate::config::OriginConfig;

/// The largest record body accepted by `POST /records`.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for open connections to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The header every Sigil subrequest carries: a hint only, the certificate is
/// the proof.
pub const SIGIL_WORKER_HEADER: &str = "sigil-worker";

/// Counters exposed by `GET /stats`.
#[derive(Debug, Default)]
pub struct Stats {
    /// TLS handshakes completed (connections accepted with a verified client
    /// certificate).
    pub handshakes: AtomicU64,
    /// HTTP requests received on those connections.
    pub requests: AtomicU64,
}

#[derive(Debug)]
struct Record {
    author: String,
    body: String,
}

/// State shared by all connections.
#[derive(Debug)]
struct State {
    verifier: IdentityVerifier,
    policy: Policy,
    records: Mutex<Vec<Record>>,
    stats: Arc<Stats>,
}

/// What we know about one TLS connection.
#[derive(Debug)]
struct ConnInfo {
    peer: SocketAddr,
    caller: Caller,
    sni: Option<String>,
    alpn: Option<String>,
}

/// A bound, not yet running, origin server.
pub struct Origin {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
}

impl Origin {
    /// Bind the listening socket (use port 0 for an ephemeral port).
    pub async fn bind(config: OriginConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Origin {
            listener,
            acceptor: TlsAcceptor::from(config.tls),
            state: Arc::new(State {
                verifier: config.verifier,
                policy: config.policy,
                records: Mutex::new(Vec::new()),
                stats: Arc::new(Stats::default()),
            }),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The live counters (the same ones `GET /stats` reports).
    pub fn stats(&self) -> Arc<Stats> {
        self.state.stats.clone()
    }

    /// Serve until `shutdown` resolves, then stop accepting, let open
    /// connections finish their requests (up to [`SHUTDOWN_GRACE`]) and
    /// return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(
            %addr,
            trust_domain = self.state.verifier.trust_domain(),
            writers = ?self.state.policy.writers().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "origin listening (client certificates required)"
        );
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let conn = serve_connection(
                            self.state.clone(),
                            self.acceptor.clone(),
                            builder.clone(),
                            graceful.watcher(),
                            tcp,
                            peer,
                        );
                        tokio::spawn(conn);
                    }
                    Err(e) => {
                        // E.g. out of file descriptors: back off briefly.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(self.listener);
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(SHUTDOWN_GRACE) => {
                tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
            }
        }
        Ok(())
    }
}

async fn serve_connection(
    state: Arc<State>,
    acceptor: TlsAcceptor,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(%peer, "TLS handshake refused: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };
    state.stats.handshakes.fetch_add(1, Ordering::Relaxed);

    let (_, session) = tls.get_ref();
    let info = Arc::new(ConnInfo {
        peer,
        caller: Caller::from_peer_certificates(session.peer_certificates(), &state.verifier),
        sni: session.server_name().map(str::to_owned),
        alpn: session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    });
    tracing::debug!(%peer, caller = %info.caller, sni = ?info.sni, alpn = ?info.alpn, "TLS connection accepted");

    let service = service_fn(move |req| {
        let state = state.clone();
        let info = info.clone();
        async move { Ok::<_, Infallible>(state.handle(req, &info).await) }
    });
    let conn = builder
        .serve_connection(TokioIo::new(tls), service)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, "connection closed with error: {e}");
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; allowed: {allow}\n"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

impl State {
    async fn handle(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Full<Bytes>> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let version = req.version();
        let hint = req
            .headers()
            .get(SIGIL_WORKER_HEADER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());

        let response = match (path.as_str(), &method) {
            ("/records", &Method::GET) => self.list_records(),
            ("/records", &Method::POST) => self.append_record(req, conn).await,
            ("/records", _) => method_not_allowed("GET, POST"),
            ("/whoami", &Method::GET) => whoami(conn, hint.as_deref()),
            ("/stats", &Method::GET) => self.stats(),
            ("/whoami" | "/stats", _) => method_not_allowed("GET"),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        };

        tracing::info!(
            peer = %conn.peer,
            %method,
            path,
            ?version,
            status = response.status().as_u16(),
            caller = %conn.caller,
            sigil_worker = hint.as_deref().unwrap_or("-"),
            "request"
        );
        if let (Some(hint), Some(worker)) = (hint.as_deref(), conn.caller.worker())
            && hint != worker
        {
            tracing::warn!(
                peer = %conn.peer,
                certificate_worker = worker,
                header_worker = hint,
                "sigil-worker header does not match the client certificate; trusting the certificate"
            );
        }
        response
    }

    fn list_records(&self) -> Response<Full<Bytes>> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let body: String = records
            .iter()
            .enumerate()
            .map(|(i, r)| format!("{}\t{}\t{}\n", i + 1, r.author, r.body.escape_default()))
            .collect();
        text(StatusCode::OK, body)
    }

    async fn append_record(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Response<Full<Bytes>> {
        let Some(rule) = self.policy.writer_rule(&conn.caller) else {
            return text(
                StatusCode::FORBIDDEN,
                format!(
                    "forbidden: you are {}; you may read records but not write them\n",
                    conn.caller
                ),
            );
        };
        tracing::debug!(caller = %conn.caller, %rule, "write allowed");
        let body = match Limited::new(req.into_body(), MAX_RECORD_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("record larger than {MAX_RECORD_BYTES} bytes\n"),
                );
            }
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("cannot read body: {e}\n")),
        };
        let Ok(body) = String::from_utf8(body.to_vec()) else {
            return text(StatusCode::BAD_REQUEST, "record must be UTF-8 text\n");
        };
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.push(Record {
            author: conn.caller.to_string(),
            body: body.trim_end_matches(['\r', '\n']).to_owned(),
        });
        text(
            StatusCode::CREATED,
            format!("appended record {} as {}\n", records.len(), conn.caller),
        )
    }

    fn stats(&self) -> Response<Full<Bytes>> {
        text(
            StatusCode::OK,
            format!(
                "handshakes={} requests={}\n",
                self.stats.handshakes.load(Ordering::Relaxed),
                self.stats.requests.load(Ordering::Relaxed)
            ),
        )
    }
}

fn whoami(conn: &ConnInfo, hint: Option<&str>) -> Response<Full<Bytes>> {
    let cert = conn.caller.certificate.as_ref();
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let body = format!(
        "spiffe_id={}\nsubject={}\nissuer={}\nserial={}\nsni={}\nalpn={}\nsigil-worker={}\n",
        or_dash(conn.caller.spiffe_id()),
        or_dash(cert.map(|c| c.subject_dn.as_str())),
        or_dash(cert.map(|c| c.issuer_dn.as_str())),
        or_dash(cert.map(|c| c.serial_hex.as_str())),
        or_dash(conn.sni.as_deref()),
        or_dash(conn.alpn.as_deref()),
        or_dash(hint),
    );
    text(StatusCode::OK, body)
}
