//! Workers written against `sigil-sdk` (core wasm modules speaking Sigil's
//! ABI), served through [`WorkerHandler`].

use super::{CallContext, Engine, Subrequests, WorkerModule};
use crate::config::Limits;
use crate::state::{WorkerBody, WorkerError, WorkerFuture, WorkerHandler, WorkerRequest};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Serialize;
use sigil_sdk::codec;
use sigil_sdk::wire_ref::{InvocationRef, RequestRef, ResponseView};
use std::borrow::Cow;
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

/// A header map as the wire's header list: `(name, value)` pairs in the
/// map's order, values that are not visible ASCII read as UTF-8 (lossy).
pub(super) struct HeaderPairs<'a>(pub(super) &'a http::HeaderMap);

impl Serialize for HeaderPairs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        // `len` counts every value, as `iter` yields them (the wire format
        // needs the length first; the iterator's size hint is not exact).
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (name, value) in self.0 {
            let value = match value.to_str() {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(value.as_bytes()),
            };
            seq.serialize_element(&(name.as_str(), value))?;
        }
        seq.end()
    }
}

impl HeaderPairs<'_> {
    /// About the bytes the pairs take encoded (for [`codec::encode_sized`]).
    pub(super) fn encoded_size(&self) -> usize {
        self.0
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 2)
            .sum()
    }
}

/// The encoded invocation the guest decodes, written straight from the
/// request's own header map and body (the bytes of a
/// [`sigil_sdk::wire::Invocation`]).
fn encode_invocation(worker: &str, request: &WorkerRequest) -> Result<Vec<u8>, WorkerError> {
    let url = request.url();
    let invocation = InvocationRef {
        request: RequestRef {
            method: request.head.method.as_str(),
            url: &url,
            headers: HeaderPairs(&request.head.headers),
            // The service reads the body whole for SDK workers.
            body: request.body.buffered().unwrap_or_default(),
        },
        client_auth: request.connection.client_auth.as_deref(),
        worker,
        request_id: &request.request_id,
    };
    let size =
        256 + url.len() + invocation.request.body.len() + invocation.request.headers.encoded_size();
    codec::encode_sized(&invocation, size).map_err(|e| WorkerError::Trap {
        worker: worker.to_string(),
        reason: format!("cannot encode the request for the worker: {e}"),
        detail: e.0,
    })
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
        if self.invalid + self.too_long + self.excess == 0 {
            return None;
        }
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

/// `status` when a worker may answer with it (200–599), else why not: 1xx
/// would hand the connection over or confuse the client, and 600+ is no
/// HTTP status. The rule of both worker kinds.
pub(crate) fn allowed_status(status: u16) -> Result<StatusCode, String> {
    match StatusCode::from_u16(status) {
        Ok(s) if (200..=599).contains(&status) => Ok(s),
        parsed => {
            let name = parsed
                .ok()
                .and_then(|s| s.canonical_reason())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            Err(format!(
                "status {status}{name} is not allowed; a worker may answer with a status from 200 to 599"
            ))
        }
    }
}

/// The guest's response as HTTP. A status outside 200–599 is refused (1xx
/// would hand the connection over or confuse the client, and 600+ is no
/// HTTP status): the error says so. Headers that are not valid HTTP, longer
/// than [`MAX_HEADER_VALUE`] or past [`MAX_RESPONSE_HEADERS`] are dropped;
/// the second value describes them, to be logged once for the request.
pub fn response_from_view(
    wire: ResponseView<'_>,
) -> Result<(http::Response<Bytes>, Option<String>), String> {
    let status = allowed_status(wire.status)?;
    let mut resp = http::Response::new(Bytes::copy_from_slice(wire.body));
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
        // `from_bytes` lower-cases the name.
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                resp.headers_mut().append(n, v);
            }
            _ => dropped.invalid += 1,
        }
    }
    Ok((resp, dropped.describe()))
}

/// [`response_from_view`] for a request of `call`: dropped headers logged,
/// a refused status as the worker's error.
pub(super) fn into_http(
    wire: ResponseView<'_>,
    call: &CallContext,
) -> Result<http::Response<Bytes>, WorkerError> {
    let (resp, dropped) =
        response_from_view(wire).map_err(|problem| WorkerError::InvalidResponse {
            worker: call.worker.to_string(),
            problem,
        })?;
    if let Some(what) = dropped {
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
            let input = encode_invocation(&self.name, &request)?;
            drop(request);
            let resp = self.engine.invoke(&self.module, call, &input).await?;
            Ok(resp.map(WorkerBody::full))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_encode_as_the_wire_list_with_repeats_and_non_ascii() {
        let mut map = http::HeaderMap::new();
        map.append("a", HeaderValue::from_static("1"));
        map.append("b", HeaderValue::from_static("2"));
        map.append("a", HeaderValue::from_static("3"));
        map.append("c", HeaderValue::from_bytes(b"caf\xc3\xa9 \xff").unwrap());
        let owned: Vec<(String, String)> = vec![
            ("a".into(), "1".into()),
            ("a".into(), "3".into()),
            ("b".into(), "2".into()),
            ("c".into(), "café \u{fffd}".into()),
        ];
        assert_eq!(
            codec::encode(&HeaderPairs(&map)).unwrap(),
            codec::encode(&owned).unwrap()
        );
    }
}
