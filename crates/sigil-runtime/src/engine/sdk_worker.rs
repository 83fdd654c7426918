//! Workers written against `sigil-sdk` (core wasm modules speaking Sigil's
//! ABI), served through [`WorkerHandler`].

use super::{CallContext, Engine, Subrequests, WorkerModule};
use crate::config::Limits;
use crate::state::{WorkerBody, WorkerError, WorkerFuture, WorkerHandler, WorkerRequest};
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
            // The service reads the body whole for SDK workers.
            body: request.body.buffered().unwrap_or_default().to_vec(),
        },
        client_auth: request.connection.client_auth.as_deref().cloned(),
        worker: worker.to_string(),
        request_id: request.request_id.to_string(),
    }
}

/// The guest's response as HTTP; headers that are not valid HTTP are dropped.
fn into_http(wire: WireResponse) -> http::Response<WorkerBody> {
    let mut resp = http::Response::new(WorkerBody::full(wire.body));
    *resp.status_mut() =
        StatusCode::from_u16(wire.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in wire.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}

impl WorkerHandler for SdkWorker {
    fn handle(&self, request: WorkerRequest) -> WorkerFuture<'_> {
        Box::pin(async move {
            let call = self.call_context(&request);
            let invocation = invocation(&self.name, &request);
            drop(request);
            let wire: Result<WireResponse, WorkerError> =
                self.engine.invoke(&self.module, call, &invocation).await;
            wire.map(into_http)
        })
    }
}
