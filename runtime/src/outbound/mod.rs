//! Outbound subrequests: resolving a worker's bindings to client
//! certificates, checking allowed hosts, and sending through a connection
//! pool keyed by identity.
//!
//! Every certificate has its own [`IdentityClient`] (its own pool), and
//! connections without a client certificate have another, so a connection
//! authenticated as one identity is never reused for a request that asked for
//! another identity, or for none.

pub mod client_cert;
mod diagnose;
mod send;
pub mod tls;

pub use client_cert::SwappableClientCert;

use crate::engine::CallContext;
use crate::manifest::AllowedOrigin;
use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use sigil_sdk::wire::{ClientCertChoice, FetchError, FetchRequest, FetchResult};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings shared by every outbound client.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle: Duration,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        OutboundSettings {
            connect_timeout: Duration::from_secs(5),
            pool_idle: Duration::from_secs(90),
        }
    }
}

/// A connection pool whose connections all present one client certificate
/// (or none).
///
/// When the certificate is rotated, new handshakes present the new one at
/// once and the pool is replaced, so connections authenticated with the old
/// certificate are retired (requests in flight on them finish first).
#[derive(Debug)]
pub struct IdentityClient {
    /// What this pool presents: a certificate name, `identity:<worker>`, or `none`.
    pub label: Arc<str>,
    /// The certificate presented at each handshake, if any.
    pub client_cert: Option<Arc<SwappableClientCert>>,
    client: ArcSwap<reqwest::Client>,
    tls: Arc<rustls::ClientConfig>,
    settings: OutboundSettings,
}

fn http_client(
    tls: &rustls::ClientConfig,
    settings: &OutboundSettings,
) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(settings.pool_idle)
        .no_proxy()
        .build()?)
}

impl IdentityClient {
    /// A pool verifying origins against `roots` and presenting `client_cert`.
    pub fn new(
        label: &str,
        roots: Arc<RootCertStore>,
        client_cert: Option<Arc<SwappableClientCert>>,
        settings: &OutboundSettings,
    ) -> anyhow::Result<Self> {
        let config = tls::client_config(roots, client_cert.clone())?;
        let client = http_client(&config, settings)?;
        Ok(IdentityClient {
            label: label.into(),
            client_cert,
            client: ArcSwap::from_pointee(client),
            tls: Arc::new(config),
            settings: settings.clone(),
        })
    }

    /// Present `key` from now on and retire connections made with the old one.
    ///
    /// The new pool also gets a fresh TLS session cache: a resumed TLS 1.3
    /// session carries the identity of its original handshake, so resuming
    /// one would keep presenting the old certificate to the origin.
    pub fn rotate(&self, key: Arc<CertifiedKey>) -> anyhow::Result<()> {
        let mut tls = (*self.tls).clone();
        tls.resumption = rustls::client::Resumption::in_memory_sessions(256);
        let fresh = http_client(&tls, &self.settings)?;
        if let Some(cert) = &self.client_cert {
            cert.replace(key);
        }
        self.client.store(Arc::new(fresh));
        Ok(())
    }

    /// The current connection pool.
    pub(crate) fn http(&self) -> Arc<reqwest::Client> {
        self.client.load_full()
    }
}

/// One worker's view of the outbound world.
#[derive(Debug)]
pub struct WorkerOutbound {
    /// Binding name → pool presenting that binding's certificate.
    pub bindings: HashMap<String, Arc<IdentityClient>>,
    /// What a fetch that names no binding presents: the default binding's
    /// name (for error messages) and its pool.
    pub default: Option<(String, Arc<IdentityClient>)>,
    /// The pool used without a client certificate.
    pub anonymous: Arc<IdentityClient>,
    /// Where the worker may send subrequests.
    pub allowed: Vec<AllowedOrigin>,
}

/// Headers the runtime owns on subrequests: a guest's copies are dropped.
pub const RUNTIME_HEADERS: [&str; 4] = [
    "sigil-worker",
    "client-cert",
    "client-cert-chain",
    "x-forwarded-client-cert",
];

impl WorkerOutbound {
    /// Check `request` against the worker's bindings and allowed hosts and
    /// return the future that sends it.
    /// Failures found here, and the outcome of the send, are counted in
    /// `sigil_subrequests_total{worker, binding, outcome}`.
    pub fn prepare(
        &self,
        request: FetchRequest,
        call: &CallContext,
    ) -> Result<impl Future<Output = FetchResult> + Send + 'static, FetchError> {
        let binding_label = match &request.client_cert {
            ClientCertChoice::None => "none".to_string(),
            ClientCertChoice::Binding(name) => name.clone(),
            ClientCertChoice::WorkerDefault => match &self.default {
                Some((name, _)) => name.clone(),
                None => "none".to_string(),
            },
        };
        let worker = call.worker.clone();
        match self.prepare_send(request, call) {
            Ok(send) => Ok(async move {
                let result = send.await;
                count_subrequest(&worker, &binding_label, &result);
                result
            }),
            Err(e) => {
                count_subrequest(&worker, &binding_label, &Err(e.clone()));
                Err(e)
            }
        }
    }

    fn prepare_send(
        &self,
        request: FetchRequest,
        call: &CallContext,
    ) -> Result<impl Future<Output = FetchResult> + Send + 'static, FetchError> {
        let url =
            reqwest::Url::parse(&request.request.url).map_err(|e| FetchError::InvalidRequest {
                reason: format!("\"{}\" is not an absolute URL: {e}", request.request.url),
            })?;
        let scheme = url.scheme().to_string();
        if scheme != "http" && scheme != "https" {
            return Err(FetchError::InvalidRequest {
                reason: format!("scheme \"{scheme}\" is not http or https"),
            });
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        if !self.allowed.iter().any(|a| a.allows(&scheme, &host, port)) {
            return Err(FetchError::HostNotAllowed {
                origin: format!("{scheme}://{host}:{port}"),
            });
        }
        let (binding, pool) = match &request.client_cert {
            ClientCertChoice::None => (None, self.anonymous.clone()),
            ClientCertChoice::Binding(name) => match self.bindings.get(name) {
                Some(pool) => (Some(name.clone()), pool.clone()),
                None => {
                    return Err(FetchError::UnknownBinding {
                        binding: name.clone(),
                    });
                }
            },
            ClientCertChoice::WorkerDefault => match &self.default {
                Some((name, pool)) => (Some(name.clone()), pool.clone()),
                None => (None, self.anonymous.clone()),
            },
        };
        let remaining = call.deadline.saturating_duration_since(Instant::now());
        let timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(ms as u64).min(remaining))
            .unwrap_or(remaining);
        let job = send::Job {
            host: host.clone(),
            port,
            url,
            origin: format!("{host}:{port}"),
            binding,
            request: request.request,
            timeout,
            max_body: call.limits.max_response_body,
            worker: call.worker.clone(),
            forward: call.forward.clone(),
        };
        Ok(send::send(pool, job))
    }
}

/// A short label for a subrequest outcome, for metrics.
pub fn outcome_label(result: &FetchResult) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => match e {
            FetchError::UnknownBinding { .. } => "unknown_binding",
            FetchError::HostNotAllowed { .. } => "host_not_allowed",
            FetchError::SubrequestLimit { .. } => "subrequest_limit",
            FetchError::InvalidRequest { .. } => "invalid_request",
            FetchError::ConnectFailed { .. } => "connect_failed",
            FetchError::UntrustedOrigin { .. } => "untrusted_origin",
            FetchError::ClientCertRefused { .. } => "client_cert_refused",
            FetchError::Timeout { .. } => "timeout",
            FetchError::ResponseTooLarge { .. } => "response_too_large",
            FetchError::Other { .. } => "other",
        },
    }
}

fn count_subrequest(worker: &str, binding: &str, result: &FetchResult) {
    crate::metrics::metrics().inc(
        "sigil_subrequests_total",
        "Subrequests by worker, binding and outcome.",
        &[
            ("worker", worker),
            ("binding", binding),
            ("outcome", outcome_label(result)),
        ],
    );
}
