//! Workers written against `sigil-sdk` (core wasm modules speaking Sigil's
//! ABI), served through [`WorkerHandler`].

use super::{CallContext, Engine, Subrequests, WorkerModule};
use crate::config::Limits;
use crate::state::{WorkerError, WorkerFuture, WorkerHandler, WorkerRequest};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use sigil_sdk::wire::{Invocation, WireRequest, WireResponse};
use std::sync::Arc;

/// A `sigil-sdk` worker: its compiled module and what its requests run with.
pub struct SdkWorker {
    /// The engine that runs it.
    pub engine: Arc<Engine>,
    /// Its compiled module.
    pub module: WorkerModule,
    /// Its name.
    pub name: Arc<str>,
    /// Its limits.
    pub limits: Limits,
    /// Its variables (WASI environment).
    pub vars: Arc<[(String, String)]>,
    /// Where its subrequests go.
    pub subrequests: Arc<dyn Subrequests>,
}

impl SdkWorker {
    /// The context host calls of one request run in.
    pub fn call_context(&self, request: &WorkerRequest) -> CallContext {
        CallContext {
            worker: self.name.clone(),
            request_id: request.request_id.clone(),
            limits: self.limits,
            subrequests: self.subrequests.clone(),
            forward: request.connection.forward.clone(),
            deadline: request.deadline,
            hop: request.hop,
            vars: self.vars.clone(),
        }
    }
}

/// The invocation the guest decodes: the request as wire types.
fn invocation(worker: &str, request: &WorkerRequest) -> Invocation {
    let headers = request
        .head
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Invocation {
        request: WireRequest {
            method: request.head.method.as_str().to_string(),
            url: request.url(),
            headers,
            body: request.body.to_vec(),
        },
        client_auth: request.connection.client_auth.as_deref().cloned(),
        worker: worker.to_string(),
        request_id: request.request_id.to_string(),
    }
}

/// Most headers a worker's response may carry; the rest are dropped. With
/// the few Sigil adds (`sigil-request-id`, `date`, `content-length`) the
/// response stays within the 100 headers common clients accept (hyper's
/// default limit).
pub const MAX_RESPONSE_HEADERS: usize = 90;
/// Longest header value (bytes) a worker's response may carry; longer
/// headers are dropped.
pub const MAX_HEADER_VALUE: usize = 8 << 10;

/// Headers of one response that were not sent, counted by reason.
#[derive(Default)]
struct Dropped {
    invalid: usize,
    too_long: usize,
    excess: usize,
}

impl Dropped {
    fn describe(&self) -> Option<String> {
        let parts: Vec<String> = [
            (self.invalid, "not valid HTTP (name or value)".to_string()),
            (
                self.too_long,
                format!("with a value over {MAX_HEADER_VALUE} bytes"),
            ),
            (
                self.excess,
                format!("past the first {MAX_RESPONSE_HEADERS} headers"),
            ),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, why)| format!("{n} {why}"))
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// The guest's response as HTTP. A status outside 200–599 is refused (1xx
/// would hand the connection over or confuse the client, and 600+ is no
/// HTTP status); headers that are not valid HTTP, longer than
/// [`MAX_HEADER_VALUE`] or past [`MAX_RESPONSE_HEADERS`] are dropped and
/// logged once for the request.
fn into_http(wire: WireResponse, call: &CallContext) -> Result<http::Response<Bytes>, WorkerError> {
    let status = match StatusCode::from_u16(wire.status) {
        Ok(s) if (200..=599).contains(&wire.status) => s,
        _ => {
            let name = StatusCode::from_u16(wire.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            return Err(WorkerError::InvalidResponse {
                worker: call.worker.to_string(),
                problem: format!(
                    "status {}{name} is not allowed; a worker may answer with a status from 200 to 599",
                    wire.status
                ),
            });
        }
    };
    let mut resp = http::Response::new(Bytes::from(wire.body));
    *resp.status_mut() = status;
    let mut dropped = Dropped::default();
    for (name, value) in wire.headers {
        if resp.headers().len() >= MAX_RESPONSE_HEADERS {
            dropped.excess += 1;
            continue;
        }
        if value.len() > MAX_HEADER_VALUE {
            dropped.too_long += 1;
            continue;
        }
        match (
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(n), Ok(v)) => {
                resp.headers_mut().append(n, v);
            }
            _ => dropped.invalid += 1,
        }
    }
    if let Some(what) = dropped.describe() {
        tracing::warn!(
            worker = &*call.worker,
            request_id = &*call.request_id,
            "dropped response headers from the worker: {what}"
        );
    }
    Ok(resp)
}

impl WorkerHandler for SdkWorker {
    fn handle(&self, request: WorkerRequest) -> WorkerFuture<'_> {
        Box::pin(async move {
            let call = self.call_context(&request);
            let invocation = invocation(&self.name, &request);
            drop(request);
            let wire: WireResponse = self
                .engine
                .invoke(&self.module, call.clone(), &invocation)
                .await?;
            into_http(wire, &call)
        })
    }
}
