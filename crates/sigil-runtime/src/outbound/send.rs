//! Sending one subrequest and naming its failure precisely.

use super::classify::{Timeouts, classify, classify_tls};
use super::pool::ClientPool;
use crate::engine::{CallContext, Claim, Fetched, FetchedResponse};
use crate::headers::{dashed, is_not_forwarded, is_runtime_owned};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sigil_sdk::wire::FetchError;
use std::sync::Arc;
use std::time::Duration;

/// One checked subrequest, ready to send.
pub(super) struct Job {
    pub host: String,
    pub port: u16,
    /// Whether an explicit entry allowed the destination (see `Target`).
    pub trusted: bool,
    pub url: reqwest::Url,
    pub origin: String,
    pub binding: Option<String>,
    pub method: Method,
    /// The headers as sent (see [`headers`]).
    pub headers: HeaderMap,
    pub body: Bytes,
    pub timeout: Duration,
    pub max_body: u64,
    /// The worker's memory limit, which bounds what the host holds for
    /// one request's subrequests (see `HeldBytes`).
    pub memory_limit: u64,
    /// The body sent, then the response read, counted in the request's
    /// held bytes.
    pub held: Claim,
}

impl Job {
    /// The timeouts that applied to this subrequest through `pool`.
    fn timeouts(&self, pool: &ClientPool) -> Timeouts {
        Timeouts {
            request: self.timeout,
            connect: pool.connect_timeout(),
        }
    }
}

/// Why the host will not hold `what` (`n` bytes) for a request that
/// already has `now` bytes held with a memory limit of `limit`.
pub(super) fn held_too_much(what: &str, n: u64, now: u64, limit: u64) -> String {
    format!(
        "{what} ({n} bytes so far) would take the bytes Sigil holds for this request's subrequests \
         (bodies being sent, responses not yet read by the worker: {now} bytes now) past the \
         worker's memory limit of {limit} bytes (limits.memory_mb); read earlier responses first"
    )
}

/// The subrequest's method, as the worker spelled it.
pub(super) fn method(method: &str) -> Result<Method, FetchError> {
    Method::from_bytes(method.as_bytes()).map_err(|_| FetchError::InvalidRequest {
        reason: format!("\"{method}\" is not an HTTP method"),
    })
}

/// The subrequest's headers: the worker's (`pairs`, read from its memory),
/// minus those that never cross a hop and those only Sigil sets, plus
/// `sigil-worker`, forwarding and the hop headers for `timeout`.
pub(super) fn headers(
    pairs: &[(&str, &str)],
    call: &CallContext,
    timeout: Duration,
) -> Result<HeaderMap, FetchError> {
    let mut headers = HeaderMap::with_capacity(pairs.len() + 4);
    for &(name, value) in pairs {
        // Checked in its lower-case form; `client_cert` is `client-cert`
        // to a CGI or WSGI origin, so underscores are read as dashes.
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| FetchError::InvalidRequest {
                reason: format!("\"{name}\" is not a valid header name"),
            })?;
        let dashed = dashed(name.as_str());
        if is_not_forwarded(&dashed) || is_runtime_owned(&dashed) {
            continue;
        }
        let value = HeaderValue::from_str(value).map_err(|_| FetchError::InvalidRequest {
            reason: format!("the value of header \"{name}\" is not valid"),
        })?;
        headers.append(name, value);
    }
    add_runtime_headers(&mut headers, call, timeout);
    Ok(headers)
}

/// The headers Sigil adds to every subrequest (SDK and component workers
/// alike): `sigil-worker`, the forwarded client certificate when the
/// hostname forwards it, and the hop count and deadline for `remaining`.
pub(super) fn add_runtime_headers(
    headers: &mut HeaderMap,
    call: &CallContext,
    remaining: Duration,
) {
    const SIGIL_WORKER: HeaderName = HeaderName::from_static("sigil-worker");
    if let Ok(v) = HeaderValue::from_str(&call.worker) {
        headers.insert(SIGIL_WORKER, v);
    }
    if let Some(fwd) = &call.forward {
        fwd.apply(headers);
    }
    call.hop.apply_next(remaining, headers);
}

pub(super) async fn send(pool: Arc<ClientPool>, mut job: Job) -> Fetched {
    let is_https = job.url.scheme() == "https";
    let sent = pool
        .http(job.trusted)
        .request(job.method.clone(), job.url.clone())
        .headers(std::mem::take(&mut job.headers))
        .body(std::mem::take(&mut job.body))
        .timeout(job.timeout)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            let mut error = classify(&e, &job.binding, &job.origin, job.timeouts(&pool));
            if is_https
                && matches!(error, FetchError::Other { .. })
                && let Some(tls) =
                    super::diagnose::tls_verdict(&pool, &job.host, job.port, job.trusted).await
            {
                error = classify_tls(&tls, job.binding.clone(), job.origin.clone());
            }
            return Err(error);
        }
    };

    // The body has been sent: its bytes count no longer; the response's
    // count as they arrive.
    let mut held = job.held.split_off();
    held.release();
    read_response(response, &job, job.timeouts(&pool), held).await
}

/// The origin's response, its body read within `job.max_body`: the header
/// map is taken as it is, and a body that arrives in one chunk is kept
/// without a copy.
async fn read_response(
    mut response: reqwest::Response,
    job: &Job,
    timeouts: Timeouts,
    mut held: Claim,
) -> Fetched {
    let too_large = || FetchError::ResponseTooLarge {
        host: job.origin.clone(),
        limit: job.max_body,
    };
    if response.content_length().is_some_and(|n| n > job.max_body) {
        return Err(too_large());
    }
    let too_much = |n: u64, now: u64| FetchError::Other {
        binding: job.binding.clone(),
        host: job.origin.clone(),
        cause: held_too_much("the response", n, now, job.memory_limit),
    };
    if let Some(n) = response.content_length() {
        held.grow(n, job.memory_limit)
            .map_err(|now| too_much(n, now))?;
        held.release();
    }
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    // The first chunk is kept as it is; only a second one starts a copy.
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let read = first.as_ref().map_or(0, Bytes::len) + joined.len();
                let total = (read + chunk.len()) as u64;
                if total > job.max_body {
                    return Err(too_large());
                }
                held.grow(chunk.len() as u64, job.memory_limit)
                    .map_err(|now| too_much(total, now))?;
                if first.is_none() && joined.is_empty() {
                    first = Some(chunk);
                    continue;
                }
                if let Some(earlier) = first.take() {
                    joined.extend_from_slice(&earlier);
                }
                joined.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(classify(&e, &job.binding, &job.origin, timeouts)),
        }
    }
    let body = first.unwrap_or_else(|| joined.freeze());
    Ok(FetchedResponse {
        status,
        headers,
        body,
        held: Some(held),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use crate::engine::{SubrequestFuture, Subrequests};
    use crate::headers::Hop;
    use sigil_sdk::wire_ref::FetchRequestView;
    use std::time::Instant;

    struct None_;

    impl Subrequests for None_ {
        fn start(
            &self,
            _: FetchRequestView<'_>,
            _: &CallContext,
            _: &crate::engine::HeldBytes,
        ) -> Result<SubrequestFuture, FetchError> {
            unreachable!()
        }
    }

    fn call() -> CallContext {
        CallContext {
            worker: "w1".into(),
            request_id: "r".into(),
            limits: Limits::default(),
            subrequests: Arc::new(None_),
            forward: None,
            deadline: Instant::now() + Duration::from_secs(5),
            hop: Hop::default(),
            vars: Arc::from([]),
        }
    }

    /// Names in any case are sent lower-cased; hop-by-hop and runtime-owned
    /// names are dropped in any spelling (`_` for `-`, upper case), and the
    /// worker cannot forge `sigil-worker`.
    #[test]
    fn the_workers_headers_are_filtered_in_any_spelling() {
        let pairs = [
            ("X-Custom", "1"),
            ("Client_Cert", "forged"),
            ("SIGIL-WORKER", "forged"),
            ("Connection", "close"),
            ("x_forwarded_client_cert", "forged"),
            ("accept", "a"),
            ("Accept", "b"),
        ];
        let map = headers(&pairs, &call(), Duration::from_secs(1)).unwrap();
        assert_eq!(map.get_all("x-custom").iter().count(), 1);
        assert_eq!(map.get_all("accept").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            map.get_all("sigil-worker").iter().collect::<Vec<_>>(),
            ["w1"]
        );
        for gone in [
            "client-cert",
            "client_cert",
            "connection",
            "x-forwarded-client-cert",
        ] {
            assert!(map.get(gone).is_none(), "{gone}");
        }
    }

    #[test]
    fn bad_names_values_and_methods_are_named_errors() {
        let bad_name = headers(&[("bad name", "v")], &call(), Duration::ZERO).unwrap_err();
        assert!(format!("{bad_name:?}").contains("\\\"bad name\\\" is not a valid header name"));
        let bad_value = headers(&[("x", "a\nb")], &call(), Duration::ZERO).unwrap_err();
        assert!(format!("{bad_value:?}").contains("the value of header \\\"x\\\" is not valid"));
        assert!(method("GET").is_ok());
        assert!(format!("{:?}", method("G T").unwrap_err()).contains("is not an HTTP method"));
    }
}
