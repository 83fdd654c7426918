//! One worker's view of the outbound world: its bindings, its default, the
//! origins it may call; implements the engine's [`Subrequests`].

use super::blocking;
use super::in_flight::InFlight;
use super::pool::ClientPool;
use super::send;
use crate::config::AllowedOrigin;
use crate::engine::{CallContext, Fetched, HeldBytes, SubrequestFuture, Subrequests};
use crate::telemetry::metrics::{SubrequestLabels, SubrequestOutcome, metrics};
use sigil_sdk::wire::{ClientCertChoice, FetchError};
use sigil_sdk::wire_ref::FetchRequestView;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// One worker's view of the outbound world.
#[derive(Debug)]
pub struct WorkerOutbound {
    /// Binding name → pool presenting that binding's certificate. (The
    /// names are shared: they label every subrequest's metric.)
    pub bindings: HashMap<Arc<str>, Arc<ClientPool>>,
    /// What a fetch that names no binding presents: the default binding's
    /// name (for error messages and the metric) and its pool.
    pub default: Option<(Arc<str>, Arc<ClientPool>)>,
    /// The pool used without a client certificate.
    pub anonymous: Arc<ClientPool>,
    /// Where the worker may send subrequests.
    pub allowed: Vec<AllowedOrigin>,
    /// Its bound on subrequests in flight.
    pub in_flight: InFlight,
}

impl Subrequests for WorkerOutbound {
    /// Check `request` against the worker's bindings and allowed hosts and
    /// return the future that sends it.
    /// Failures found here, and the outcome of the send, are counted in
    /// `sigil_subrequests_total{worker, binding, outcome}`.
    fn start(
        &self,
        request: FetchRequestView<'_>,
        call: &CallContext,
        held: &HeldBytes,
    ) -> Result<SubrequestFuture, FetchError> {
        let binding_label = self.binding_label(&request.client_cert);
        let worker = call.worker.clone();
        match self.prepare_send(request, call, held) {
            Ok(send) => Ok(Box::pin(async move {
                let result = send.await;
                count(&worker, binding_label, result.as_ref().map(|_| ()));
                result
            })),
            Err(e) => {
                count(&worker, binding_label, Err(&e));
                Err(e)
            }
        }
    }
}

impl WorkerOutbound {
    /// Whether the worker may send to `scheme://host:port`: an allowed
    /// origin, never the admin listener, and an internal address only when
    /// an entry names it explicitly. (Names that resolve to internal
    /// addresses are refused by the pool's resolver.)
    fn check_destination(&self, scheme: &str, host: &str, port: u16) -> Result<bool, FetchError> {
        let not_allowed = || FetchError::HostNotAllowed {
            origin: format!("{scheme}://{host}:{port}"),
        };
        let (mut allowed, mut explicit) = (false, false);
        for origin in self.allowed.iter().filter(|a| a.allows(scheme, host, port)) {
            allowed = true;
            explicit |= origin.is_explicit();
        }
        if !allowed {
            return Err(not_allowed());
        }
        let ip = host.parse::<std::net::IpAddr>().ok();
        let admin = match ip {
            Some(ip) => blocking::is_admin(ip, port),
            None => blocking::name_may_be_admin(port, explicit),
        };
        if admin {
            return Err(FetchError::ConnectFailed {
                binding: None,
                host: format!("{host}:{port}"),
                cause: "that is Sigil's admin listener, which workers never reach".into(),
            });
        }
        match ip.and_then(blocking::internal_kind) {
            Some(_) if !explicit => Err(not_allowed()),
            _ => Ok(explicit),
        }
    }

    fn prepare_send(
        &self,
        request: FetchRequestView<'_>,
        call: &CallContext,
        held: &HeldBytes,
    ) -> Result<impl Future<Output = Fetched> + Send + 'static, FetchError> {
        let Target {
            url,
            host,
            port,
            origin,
            binding,
            pool,
            trusted,
        } = self.target(request.request.url, &request.client_cert)?;
        let permit =
            self.in_flight
                .try_start(&call.worker)
                .map_err(|cause| FetchError::ConnectFailed {
                    binding: binding.clone(),
                    host: origin.clone(),
                    cause,
                })?;
        let remaining = call.deadline.saturating_duration_since(Instant::now());
        let timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(ms as u64).min(remaining))
            .unwrap_or(remaining);
        let method = send::method(request.request.method)?;
        let headers = send::headers(&request.request.headers, call, timeout)?;
        let memory_limit = call.limits.memory_bytes;
        let mut claim = held.claim();
        let body = request.request.body;
        claim
            .grow(body.len() as u64, memory_limit)
            .map_err(|now| FetchError::InvalidRequest {
                reason: send::held_too_much("its body", body.len() as u64, now, memory_limit),
            })?;
        let job = send::Job {
            host,
            port,
            trusted,
            url,
            origin,
            binding,
            method,
            headers,
            body: bytes::Bytes::copy_from_slice(body),
            timeout,
            max_body: call.limits.max_response_body,
            memory_limit,
            held: claim,
        };
        Ok(async move {
            let fetched = send::send(pool, job).await;
            drop(permit);
            fetched
        })
    }

    /// The `binding` label of a subrequest's metric: one of the worker's
    /// own binding names (from the manifest), `none`, or `unknown` for a
    /// name the guest made up.
    pub(super) fn binding_label(&self, choice: &ClientCertChoice) -> Arc<str> {
        static NONE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("none"));
        static UNKNOWN: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("unknown"));
        match choice {
            ClientCertChoice::None => NONE.clone(),
            ClientCertChoice::Binding(name) => match self.bindings.get_key_value(name.as_str()) {
                Some((name, _)) => name.clone(),
                None => UNKNOWN.clone(),
            },
            ClientCertChoice::WorkerDefault => match &self.default {
                Some((name, _)) => name.clone(),
                None => NONE.clone(),
            },
        }
    }
}

/// Where one subrequest goes, checked: its URL, destination and the pool
/// presenting the chosen binding.
pub(super) struct Target {
    pub(super) url: reqwest::Url,
    pub(super) host: String,
    pub(super) port: u16,
    /// `host:port`, for messages.
    pub(super) origin: String,
    pub(super) binding: Option<String>,
    pub(super) pool: Arc<ClientPool>,
    /// Whether an explicit `allowed_outbound_hosts` entry let it through:
    /// only then may its host name resolve to an internal address (decided
    /// per request, not by the names any worker of the pool allows).
    pub(super) trusted: bool,
}

impl WorkerOutbound {
    /// The binding `choice` names, and the pool presenting it.
    fn resolve(
        &self,
        choice: &ClientCertChoice,
    ) -> Result<(Option<String>, Arc<ClientPool>), FetchError> {
        Ok(match choice {
            ClientCertChoice::None => (None, self.anonymous.clone()),
            ClientCertChoice::Binding(name) => match self.bindings.get(name.as_str()) {
                Some(pool) => (Some(name.clone()), pool.clone()),
                None => {
                    return Err(FetchError::UnknownBinding {
                        binding: name.clone(),
                    });
                }
            },
            ClientCertChoice::WorkerDefault => match &self.default {
                Some((name, pool)) => (Some(name.to_string()), pool.clone()),
                None => (None, self.anonymous.clone()),
            },
        })
    }

    /// Check a subrequest to `url` (SDK workers and components alike): an
    /// absolute http(s) URL, a destination this worker may reach, and the
    /// binding `choice` names.
    pub(super) fn target(
        &self,
        url: &str,
        choice: &ClientCertChoice,
    ) -> Result<Target, FetchError> {
        let url = reqwest::Url::parse(url).map_err(|e| FetchError::InvalidRequest {
            reason: format!("\"{url}\" is not an absolute URL: {e}"),
        })?;
        let scheme = match url.scheme() {
            "http" => "http",
            "https" => "https",
            other => {
                return Err(FetchError::InvalidRequest {
                    reason: format!("scheme \"{other}\" is not http or https"),
                });
            }
        };
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(443);
        let trusted = self.check_destination(scheme, &host, port)?;
        let (binding, pool) = self.resolve(choice)?;
        Ok(Target {
            origin: format!("{host}:{port}"),
            url,
            host,
            port,
            binding,
            pool,
            trusted,
        })
    }
}

/// The metric outcome of a subrequest.
pub fn outcome(result: Result<(), &FetchError>) -> SubrequestOutcome {
    use SubrequestOutcome as O;
    match result {
        Ok(()) => O::ok,
        Err(e) => match e {
            FetchError::UnknownBinding { .. } => O::unknown_binding,
            FetchError::HostNotAllowed { .. } => O::host_not_allowed,
            FetchError::SubrequestLimit { .. } => O::subrequest_limit,
            FetchError::InvalidRequest { .. } => O::invalid_request,
            FetchError::ConnectFailed { .. } => O::connect_failed,
            FetchError::UntrustedOrigin { .. } => O::untrusted_origin,
            FetchError::ClientCertRefused { .. } => O::client_cert_refused,
            FetchError::Timeout { .. } => O::timeout,
            FetchError::ResponseTooLarge { .. } => O::response_too_large,
            FetchError::Other { .. } => O::other,
        },
    }
}

/// Count one subrequest in `sigil_subrequests_total{worker, binding, outcome}`.
pub(super) fn count(worker: &Arc<str>, binding: Arc<str>, result: Result<(), &FetchError>) {
    metrics()
        .subrequests
        .get_or_create(&SubrequestLabels {
            worker: worker.clone(),
            binding,
            outcome: outcome(result),
        })
        .inc();
}
