//! Subrequests: `fetch`, per-request client certificates, bindings, and
//! running several subrequests at once.

use crate::abi;
use crate::codec;
use crate::http::{Request, Response};
use crate::wire::{ClientCertChoice, FetchError, FetchRequest, FetchResult};
use std::time::Duration;

/// Send `request` with the worker's default binding (its default client
/// certificate, or none if the worker declares no default) and wait for the
/// response.
///
/// ```no_run
/// let resp = sigil_sdk::fetch("https://api.example/records")?;
/// # Ok::<(), sigil_sdk::FetchError>(())
/// ```
pub fn fetch(request: impl Into<Request>) -> Result<Response, FetchError> {
    Fetch::new(request).send()
}

/// A subrequest being prepared: choose the client certificate and timeout,
/// then [`send`](Fetch::send) it or [`start`](Fetch::start) it.
#[derive(Debug, Clone)]
pub struct Fetch {
    request: Request,
    client_cert: ClientCertChoice,
    timeout: Option<Duration>,
}

impl Fetch {
    /// A subrequest that presents the worker's default binding.
    pub fn new(request: impl Into<Request>) -> Self {
        Fetch {
            request: request.into(),
            client_cert: ClientCertChoice::WorkerDefault,
            timeout: None,
        }
    }

    /// Present the certificate of this worker's binding `name` instead.
    pub fn binding(mut self, name: impl Into<String>) -> Self {
        self.client_cert = ClientCertChoice::Binding(name.into());
        self
    }

    /// Present no client certificate at all.
    pub fn no_client_cert(mut self) -> Self {
        self.client_cert = ClientCertChoice::None;
        self
    }

    /// Fail the subrequest after `timeout` (capped by the worker's limit).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Send and wait for the response.
    pub fn send(self) -> Result<Response, FetchError> {
        self.start().wait()
    }

    /// Start the subrequest and return at once; the host runs it while the
    /// worker goes on. Call [`PendingFetch::wait`] for the response.
    pub fn start(self) -> PendingFetch {
        let wire = FetchRequest {
            request: self.request.into_wire(),
            client_cert: self.client_cert,
            timeout_ms: self
                .timeout
                .map(|t| t.as_millis().min(u32::MAX as u128) as u32),
        };
        match codec::encode_sized(&wire, 16 + wire.request.encoded_size()) {
            Ok(bytes) => PendingFetch(Ok(abi::fetch_start(&bytes))),
            Err(e) => PendingFetch(Err(FetchError::InvalidRequest { reason: e.0 })),
        }
    }
}

/// A subrequest in flight.
#[derive(Debug)]
#[must_use = "a pending fetch does nothing useful unless waited for"]
pub struct PendingFetch(Result<u32, FetchError>);

impl PendingFetch {
    /// Wait for the response.
    pub fn wait(self) -> Result<Response, FetchError> {
        let handle = self.0?;
        let bytes = abi::fetch_wait(handle).ok_or_else(|| FetchError::InvalidRequest {
            reason: format!("the host does not know subrequest handle {handle}"),
        })?;
        let result: FetchResult =
            codec::decode(&bytes, codec::MAX_DECODE).map_err(|e| FetchError::InvalidRequest {
                reason: format!("cannot decode the host's answer: {e}"),
            })?;
        result.map(Response::from_wire)
    }
}

/// Run several subrequests concurrently and wait for all of them (like
/// `Promise.all`, but every outcome is returned, in order).
pub fn fetch_all(fetches: impl IntoIterator<Item = Fetch>) -> Vec<Result<Response, FetchError>> {
    let pending: Vec<PendingFetch> = fetches.into_iter().map(Fetch::start).collect();
    pending.into_iter().map(PendingFetch::wait).collect()
}

/// A worker's binding: a name for one of the certificates the manifest lets
/// this worker use, like Workers' `env.MY_CERT`.
///
/// ```no_run
/// use sigil_sdk::Binding;
/// let tenant = Binding::new("TENANT_X");
/// let resp = tenant.fetch("https://x.backend.example/orders")?;
/// # Ok::<(), sigil_sdk::FetchError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding(String);

impl Binding {
    /// The binding called `name` (resolved by the host per worker when used).
    pub fn new(name: impl Into<String>) -> Self {
        Binding(name.into())
    }

    /// The binding's name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Send `request` presenting this binding's certificate.
    pub fn fetch(&self, request: impl Into<Request>) -> Result<Response, FetchError> {
        self.prepare(request).send()
    }

    /// A [`Fetch`] presenting this binding's certificate, to adjust or start.
    pub fn prepare(&self, request: impl Into<Request>) -> Fetch {
        Fetch::new(request).binding(self.0.clone())
    }
}
