//! Sending one subrequest and naming its failure precisely.

use super::classify::{Timeouts, classify, classify_tls};
use super::pool::ClientPool;
use crate::headers::{ForwardedClientCert, Hop, is_not_forwarded, is_runtime_owned};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sigil_sdk::wire::{FetchError, FetchResult, WireRequest, WireResponse};
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Job {
    pub host: String,
    pub port: u16,
    pub url: reqwest::Url,
    pub origin: String,
    pub binding: Option<String>,
    pub request: WireRequest,
    pub timeout: Duration,
    pub max_body: u64,
    pub worker: Arc<str>,
    pub forward: Option<Arc<ForwardedClientCert>>,
    pub hop: Hop,
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

/// The subrequest's headers: the worker's, minus those that never cross a
/// hop and those only Sigil sets, plus `sigil-worker` and forwarding.
fn headers(job: &Job) -> Result<HeaderMap, FetchError> {
    let mut headers = HeaderMap::with_capacity(job.request.headers.len() + 4);
    for (name, value) in &job.request.headers {
        let lower = name.to_ascii_lowercase();
        // `client_cert` is `client-cert` to a CGI or WSGI origin.
        let dashed = lower.replace('_', "-");
        if is_not_forwarded(&dashed) || is_runtime_owned(&dashed) {
            continue;
        }
        let name =
            HeaderName::from_bytes(lower.as_bytes()).map_err(|_| FetchError::InvalidRequest {
                reason: format!("\"{name}\" is not a valid header name"),
            })?;
        let value = HeaderValue::from_str(value).map_err(|_| FetchError::InvalidRequest {
            reason: format!("the value of header \"{name}\" is not valid"),
        })?;
        headers.append(name, value);
    }
    if let Ok(v) = HeaderValue::from_str(&job.worker) {
        headers.insert("sigil-worker", v);
    }
    if let Some(fwd) = &job.forward {
        fwd.apply(&mut headers);
    }
    job.hop.apply_next(job.timeout, &mut headers);
    Ok(headers)
}

pub(super) async fn send(pool: Arc<ClientPool>, mut job: Job) -> FetchResult {
    let method = Method::from_bytes(job.request.method.as_bytes()).map_err(|_| {
        FetchError::InvalidRequest {
            reason: format!("\"{}\" is not an HTTP method", job.request.method),
        }
    })?;
    let headers = headers(&job)?;
    let is_https = job.url.scheme() == "https";
    let sent = pool
        .http()
        .request(method, job.url.clone())
        .headers(headers)
        .body(std::mem::take(&mut job.request.body))
        .timeout(job.timeout)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            let mut error = classify(&e, &job.binding, &job.origin, job.timeouts(&pool));
            if is_https
                && matches!(error, FetchError::Other { .. })
                && let Some(tls) = super::diagnose::tls_verdict(&pool, &job.host, job.port).await
            {
                error = classify_tls(&tls, job.binding.clone(), job.origin.clone());
            }
            return Err(error);
        }
    };

    read_response(response, &job, job.timeouts(&pool)).await
}

/// The origin's response, its body read within `job.max_body`.
async fn read_response(
    mut response: reqwest::Response,
    job: &Job,
    timeouts: Timeouts,
) -> FetchResult {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if response.content_length().is_some_and(|n| n > job.max_body) {
        return Err(FetchError::ResponseTooLarge {
            host: job.origin.clone(),
            limit: job.max_body,
        });
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > job.max_body {
                    return Err(FetchError::ResponseTooLarge {
                        host: job.origin.clone(),
                        limit: job.max_body,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(classify(&e, &job.binding, &job.origin, timeouts)),
        }
    }
    Ok(WireResponse {
        status,
        headers,
        body,
    })
}
