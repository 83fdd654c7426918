//! Header rules in one place: which headers never cross a hop, which
//! headers only Sigil may set, and how the inbound client certificate is
//! forwarded to origins (RFC 9440 `Client-Cert` / `Client-Cert-Chain` and
//! Envoy's `x-forwarded-client-cert`).

pub mod client_cert;
pub mod xfcc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue};
use rustls_pki_types::CertificateDer;
use sigil_sdk::wire::ClientAuth;

/// Headers that describe one connection or one message's framing, never
/// copied between the inbound request, the worker and a subrequest
/// (RFC 9110 §7.6.1, plus `content-length` and `host`, which the sender of
/// each hop computes itself).
pub const NOT_FORWARDED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
];

/// How many times a request has passed through Sigil: set on every
/// subrequest, read (then removed) on every inbound request.
pub const HOPS: &str = "sigil-hops";

/// Milliseconds left of the calling request's deadline: set on every
/// subrequest, read (then removed) on every inbound request, so a request
/// that comes back to Sigil does not start a fresh deadline.
pub const DEADLINE_MS: &str = "sigil-deadline-ms";

/// [`HOPS`] as a header name (parsed once, not per request).
const HOPS_NAME: HeaderName = HeaderName::from_static(HOPS);
/// [`DEADLINE_MS`] as a header name.
const DEADLINE_MS_NAME: HeaderName = HeaderName::from_static(DEADLINE_MS);

/// The request header a component worker sets on an outgoing request to
/// choose one of its bindings (or `none`); Sigil removes it before the
/// request leaves, and strips it from inbound requests so a client can never
/// choose for a worker that copies headers through.
pub const BINDING: &str = "sigil-binding";

/// Headers only Sigil sets: removed from every inbound request, and a
/// worker's copies are dropped from its subrequests. (`sigil-request-id` is
/// the id Sigil gives a request in its log and response; a client's own
/// must not reach a worker that logs or forwards it.)
pub const RUNTIME_OWNED: [&str; 20] = [
    "sigil-worker",
    "sigil-request-id",
    "client-cert",
    "client-cert-chain",
    "x-forwarded-client-cert",
    HOPS,
    DEADLINE_MS,
    BINDING,
    client_cert::PRESENTED,
    client_cert::VERIFIED,
    client_cert::REVOKED,
    client_cert::SUBJECT,
    client_cert::ISSUER,
    client_cert::SERIAL,
    client_cert::SHA256,
    client_cert::NOT_BEFORE,
    client_cert::NOT_AFTER,
    client_cert::DNS_SANS,
    client_cert::URI_SANS,
    client_cert::SPIFFE_ID,
];

/// What an inbound request says about the requests it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hop {
    /// Times it passed through Sigil before (0 from an outside client).
    pub hops: u32,
    /// Milliseconds left of the caller's deadline, if it came from Sigil.
    pub deadline_ms: Option<u64>,
}

impl Hop {
    /// Read [`HOPS`] and [`DEADLINE_MS`]; a value that is not a number counts
    /// as absent.
    pub fn of(headers: &HeaderMap) -> Hop {
        let number = |name: &HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Hop {
            hops: number(&HOPS_NAME).map_or(0, |n| n.min(u64::from(u32::MAX)) as u32),
            deadline_ms: number(&DEADLINE_MS_NAME),
        }
    }

    /// Set the headers of a subrequest made by a request that arrived as
    /// `self`, with `remaining` left of its deadline.
    pub fn apply_next(&self, remaining: std::time::Duration, headers: &mut HeaderMap) {
        headers.insert(HOPS_NAME, HeaderValue::from(self.hops.saturating_add(1)));
        headers.insert(
            DEADLINE_MS_NAME,
            HeaderValue::from(remaining.as_millis() as u64),
        );
    }
}

/// Whether `name` (lower case) is in [`NOT_FORWARDED`].
pub fn is_not_forwarded(name: &str) -> bool {
    NOT_FORWARDED.contains(&name)
}

/// Whether `name` (lower case) is in [`RUNTIME_OWNED`].
pub fn is_runtime_owned(name: &str) -> bool {
    RUNTIME_OWNED.contains(&name)
}

/// `name` with underscores read as dashes, as CGI and WSGI origins read them
/// (`client_cert` is `client-cert`); borrowed when it has none.
pub fn dashed(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains('_') {
        std::borrow::Cow::Owned(name.replace('_', "-"))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Remove from trailers (request or response, either direction) every field
/// that is runtime-owned or hop-by-hop, in any spelling (`-` or `_`): a
/// trailer must not smuggle in what the header filters keep out.
pub fn strip_trailers(trailers: &mut HeaderMap) {
    let unwanted: Vec<http::HeaderName> = trailers
        .keys()
        .filter(|n| {
            let dashed = dashed(n.as_str());
            is_runtime_owned(&dashed) || is_not_forwarded(&dashed)
        })
        .cloned()
        .collect();
    for name in unwanted {
        trailers.remove(name);
    }
}

/// [`strip_trailers`] on a body frame, when it holds trailers.
pub fn strip_frame_trailers<D>(frame: &mut hyper::body::Frame<D>) {
    if let Some(trailers) = frame.trailers_mut() {
        strip_trailers(trailers);
    }
}

/// Remove the headers only Sigil may set from an inbound request, also when
/// spelled with underscores (`client_cert`): CGI and WSGI origins read
/// `-` and `_` as the same character.
pub fn strip_inbound(headers: &mut HeaderMap) {
    // Look at the few names the request has instead of removing each of the
    // runtime-owned names (a hash lookup each) from every request.
    let owned = |n: &http::HeaderName| is_runtime_owned(&dashed(n.as_str()));
    if !headers.keys().any(owned) {
        return;
    }
    let present: Vec<http::HeaderName> = headers.keys().filter(|n| owned(n)).cloned().collect();
    for name in present {
        headers.remove(name);
    }
}

/// A verified client certificate, rendered once per connection as the
/// headers added to every subrequest of every request on it.
#[derive(Debug)]
pub struct ForwardedClientCert {
    client_cert: HeaderValue,
    client_cert_chain: Option<HeaderValue>,
    xfcc: HeaderValue,
}

/// RFC 8941 byte sequence: `:base64:`.
fn sf_binary(der: &[u8]) -> String {
    format!(":{}:", STANDARD.encode(der))
}

impl ForwardedClientCert {
    /// Render the headers for `leaf`, the `intermediates` of the path it
    /// verified through (leaf's issuer first) and its `details`.
    pub fn new(
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        details: &ClientAuth,
    ) -> Option<Self> {
        let client_cert = HeaderValue::from_str(&sf_binary(leaf)).ok()?;
        let client_cert_chain = if intermediates.is_empty() {
            None
        } else {
            let list: Vec<String> = intermediates.iter().map(|c| sf_binary(c)).collect();
            HeaderValue::from_str(&list.join(", ")).ok()
        };
        let xfcc = xfcc::render_element(&xfcc::ClientCert {
            der: leaf,
            subject: &details.cert_subject_dn,
            uri_sans: &details.uri_sans,
            dns_sans: &details.dns_sans,
        });
        Some(ForwardedClientCert {
            client_cert,
            client_cert_chain,
            xfcc: HeaderValue::from_str(&xfcc).ok()?,
        })
    }

    /// Set the forwarding headers on a subrequest (replacing any copies).
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("client-cert", self.client_cert.clone());
        match &self.client_cert_chain {
            Some(chain) => {
                headers.insert("client-cert-chain", chain.clone());
            }
            None => {
                headers.remove("client-cert-chain");
            }
        }
        headers.insert("x-forwarded-client-cert", self.xfcc.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_lose_runtime_owned_and_hop_by_hop_fields_in_any_spelling() {
        let mut t = HeaderMap::new();
        for name in [
            "client-cert",
            "client_cert",
            "sigil-worker",
            "x_forwarded_client_cert",
            "sigil-client-cert-subject",
            "connection",
            "x-checksum",
        ] {
            t.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("forged"),
            );
        }
        strip_trailers(&mut t);
        let left: Vec<_> = t.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-checksum"]);
    }

    #[test]
    fn hops_travel_and_count_up() {
        let mut h = HeaderMap::new();
        assert_eq!(Hop::of(&h), Hop::default());
        h.insert(HOPS, HeaderValue::from_static("3"));
        h.insert(DEADLINE_MS, HeaderValue::from_static("1500"));
        let hop = Hop::of(&h);
        assert_eq!((hop.hops, hop.deadline_ms), (3, Some(1500)));
        let mut next = HeaderMap::new();
        hop.apply_next(std::time::Duration::from_millis(900), &mut next);
        assert_eq!(Hop::of(&next).hops, 4);
        assert_eq!(Hop::of(&next).deadline_ms, Some(900));
        h.insert(HOPS, HeaderValue::from_static("lots"));
        assert_eq!(Hop::of(&h).hops, 0);
    }

    #[test]
    fn a_client_cannot_send_a_request_id() {
        // Before: a client's `sigil-request-id: forged` reached the worker.
        let mut h = HeaderMap::new();
        h.insert("sigil-request-id", HeaderValue::from_static("forged"));
        h.insert("sigil_request_id", HeaderValue::from_static("forged"));
        h.insert("x-request-id", HeaderValue::from_static("theirs"));
        strip_inbound(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-request-id"));
    }

    #[test]
    fn component_headers_are_runtime_owned() {
        for name in client_cert::ALL.iter().chain([&BINDING]) {
            assert!(is_runtime_owned(name), "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert("sigil-binding", HeaderValue::from_static("TENANT_X"));
        h.insert(
            "sigil_client_cert_subject",
            HeaderValue::from_static("CN=forged"),
        );
        strip_inbound(&mut h);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn sf_binary_is_colon_base64() {
        assert_eq!(sf_binary(&[0, 1, 2]), ":AAEC:");
    }

    #[test]
    fn strips_client_supplied_copies() {
        let mut h = HeaderMap::new();
        h.insert("client-cert", HeaderValue::from_static(":Zm9yZ2Vk:"));
        h.insert(
            "x-forwarded-client-cert",
            HeaderValue::from_static("Hash=forged"),
        );
        h.insert("sigil-worker", HeaderValue::from_static("writer"));
        h.insert("client_cert", HeaderValue::from_static(":Zm9yZ2Vk:"));
        h.insert("x_forwarded_client_cert", HeaderValue::from_static("By=x"));
        h.insert("sigil_worker", HeaderValue::from_static("writer"));
        h.insert("client_cert_chain", HeaderValue::from_static(":Zm9yZ2Vk:"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        h.insert("x_custom", HeaderValue::from_static("kept"));
        strip_inbound(&mut h);
        let left: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(h.contains_key("accept") && h.contains_key("x_custom"));
    }
}
