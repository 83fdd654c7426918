//! Sigil's send-request hook: every `wasi:http/outgoing-handler.handle` of a
//! component lands here, takes its binding from the `sigil-binding` header
//! (removed before the request leaves), counts against the worker's
//! subrequest limit, and goes to the outbound layer, which applies the
//! worker's bindings, identity, allowed hosts and blocked networks exactly
//! as for SDK workers. Failures reach the guest as `error-code`s and are
//! logged with their full cause (some language runtimes drop the message).

use super::body::Coalesced;
use super::subrequests::{HttpSubrequest, HttpSubrequests};
use crate::engine::CallContext;
use crate::headers::BINDING;
use crate::state::{BodyError, WorkerBody};
use http_body_util::BodyExt;
use sigil_sdk::wire::{ClientCertChoice, FetchError};
use std::future::Future;
use std::sync::Arc;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Outgoing body writes buffered per body (each at most 1 MiB).
const OUTGOING_BODY_CHUNKS: usize = 4;

/// The `sigil-binding` value that asks for no client certificate.
pub const NO_CLIENT_CERT: &str = "none";

/// The send-request hook of one component instance.
pub struct ComponentHooks {
    /// The request being served now.
    pub call: CallContext,
    /// Where outgoing requests go.
    pub outbound: Arc<dyn HttpSubrequests>,
    /// Outgoing requests started for the current request.
    pub started: u32,
    /// Failed outgoing requests logged for the current request (at most
    /// its subrequest limit: a guest retrying a refused request in a loop
    /// must not flood the log).
    pub logged: u32,
}

/// How much of a failure's message a log line keeps: a refused request can
/// carry guest text (a 60 KB `sigil-binding` value), which the guest sees
/// whole in its error but the server log does not.
const LOGGED_CAUSE: usize = 1024;

/// Log a failed outgoing request of `worker`, its cause cut to
/// [`LOGGED_CAUSE`] bytes and escaped.
fn log_failure(worker: &str, request_id: &str, e: &FetchError) {
    let cause = crate::engine::output::clean_line_within(&e.to_string(), LOGGED_CAUSE);
    tracing::warn!(worker, request_id, "subrequest failed: {cause}");
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// The client certificate a request's `sigil-binding` header asks for.
fn choice(headers: &mut http::HeaderMap) -> Result<ClientCertChoice, FetchError> {
    let values: Vec<http::HeaderValue> = match headers.entry(BINDING) {
        http::header::Entry::Occupied(e) => e.remove_entry_mult().1.collect(),
        http::header::Entry::Vacant(_) => return Ok(ClientCertChoice::WorkerDefault),
    };
    let [value] = values.as_slice() else {
        return Err(FetchError::InvalidRequest {
            reason: format!("{BINDING} appears {} times; name one binding", values.len()),
        });
    };
    let name = value
        .to_str()
        .map(str::trim)
        .map_err(|_| FetchError::InvalidRequest {
            reason: format!("the {BINDING} header is not text"),
        })?;
    Ok(match name {
        NO_CLIENT_CERT => ClientCertChoice::None,
        name => ClientCertChoice::Binding(name.to_string()),
    })
}

/// The `error-code` a failed outgoing request reaches the guest with.
/// Sigil's own refusals carry their message (`internal-error`), so a guest
/// can show which binding or origin was refused.
pub fn error_code(worker: &str, e: &FetchError) -> HttpError {
    match e {
        FetchError::UnknownBinding { binding } => HttpError::InternalError(Some(format!(
            "sigil: unknown binding \"{binding}\" for worker \"{worker}\""
        ))),
        FetchError::UntrustedOrigin { .. } => HttpError::TlsCertificateError,
        FetchError::ClientCertRefused { cause, .. } => HttpError::TlsAlertReceived {
            alert_id: None,
            alert_message: Some(cause.clone()),
        },
        FetchError::ConnectFailed { cause, .. } if cause.contains("refused") => {
            HttpError::ConnectionRefused
        }
        FetchError::ConnectFailed { cause, .. } if cause.contains("no connection within") => {
            HttpError::ConnectionTimeout
        }
        FetchError::Timeout { .. } => HttpError::HttpResponseTimeout,
        FetchError::ResponseTooLarge { limit, .. } => HttpError::HttpResponseBodySize(Some(*limit)),
        other => HttpError::InternalError(Some(format!("sigil: {other}"))),
    }
}

/// A body error as the guest's stream sees it.
fn body_error(worker: &str, e: BodyError) -> HttpError {
    match e.downcast::<FetchError>() {
        Ok(fetch) => error_code(worker, &fetch),
        Err(other) => HttpError::InternalError(Some(other.to_string())),
    }
}

impl ComponentHooks {
    /// A failure found before anything is sent: logged (within the
    /// request's share) and turned into the guest's error code.
    fn refuse(&mut self, e: &FetchError) -> HttpError {
        if self.logged < self.call.limits.subrequests.max(1) {
            self.logged += 1;
            log_failure(&self.call.worker, &self.call.request_id, e);
        }
        error_code(&self.call.worker, e)
    }

    /// Check and start one outgoing request.
    fn start(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<super::subrequests::HttpSubrequestFuture, FetchError> {
        let client_cert = choice(request.headers_mut())?;
        self.started += 1;
        let limit = self.call.limits.subrequests;
        if self.started > limit {
            return Err(FetchError::SubrequestLimit { limit });
        }
        let sub = HttpSubrequest {
            request: request.map(WorkerBody::stream),
            client_cert,
            first_byte_timeout: options.and_then(|o| o.first_byte_timeout),
        };
        self.outbound.start_http(sub, &self.call)
    }
}

impl WasiHttpHooks for ComponentHooks {
    /// The outbound client sets `Host` (HTTP/1.1) or `:authority` (HTTP/2).
    fn set_host_header(&mut self) -> bool {
        false
    }

    /// Writes of an outgoing body (request or response) buffered while the
    /// other side catches up: with wasmtime's default of one, a streaming
    /// guest waits for every chunk to be taken before writing the next.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        OUTGOING_BODY_CHUNKS
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_io: IoFuture,
    ) -> SendFuture {
        let started = match self.start(request, options) {
            Ok(started) => Ok(started),
            Err(e) => Err(self.refuse(&e)),
        };
        // One line per started request at most: they are within the limit.
        let worker = self.call.worker.clone();
        let request_id = self.call.request_id.clone();
        Box::new(async move {
            let response = match started?.await {
                Ok(response) => response,
                Err(e) => {
                    log_failure(&worker, &request_id, &e);
                    return Err(error_code(&worker, &e));
                }
            };
            let response = response.map(move |body| {
                Coalesced::new(body)
                    .map_err(move |e| body_error(&worker, e))
                    .boxed_unsync()
            });
            // The pooled client drives its connections itself.
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binding_header_chooses_and_is_removed() {
        let mut h = http::HeaderMap::new();
        assert_eq!(choice(&mut h).unwrap(), ClientCertChoice::WorkerDefault);
        h.insert(BINDING, http::HeaderValue::from_static("TENANT_X"));
        h.insert("accept", http::HeaderValue::from_static("*/*"));
        assert_eq!(
            choice(&mut h).unwrap(),
            ClientCertChoice::Binding("TENANT_X".into())
        );
        assert!(!h.contains_key(BINDING) && h.contains_key("accept"));
        h.insert(BINDING, http::HeaderValue::from_static("none"));
        assert_eq!(choice(&mut h).unwrap(), ClientCertChoice::None);
        h.append(BINDING, http::HeaderValue::from_static("A"));
        h.append(BINDING, http::HeaderValue::from_static("B"));
        assert!(choice(&mut h).is_err());
        assert!(!h.contains_key(BINDING));
    }

    #[test]
    fn an_unknown_binding_is_named_in_the_error_code() {
        let e = error_code(
            "tenants",
            &FetchError::UnknownBinding {
                binding: "zzz".into(),
            },
        );
        let HttpError::InternalError(Some(message)) = e else {
            panic!("{e:?}")
        };
        assert_eq!(
            message,
            "sigil: unknown binding \"zzz\" for worker \"tenants\""
        );
    }
}
