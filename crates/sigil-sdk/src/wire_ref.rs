//! Borrowing views of the [`wire`](crate::wire) types, for the host.
//!
//! Each type here encodes to, or decodes from, exactly the bytes of its owned
//! counterpart (the tests check it), but refers to data where it already is:
//! the inbound request's header map and body when the host builds an
//! [`Invocation`](crate::wire::Invocation), the guest's memory when it reads
//! a [`HandlerOutput`](crate::wire::HandlerOutput) or a
//! [`FetchRequest`](crate::wire::FetchRequest). The guest keeps using the
//! owned types; the ABI is the same.

use crate::wire::{ClientAuth, ClientCertChoice};
use serde::{Deserialize, Serialize};

/// [`Invocation`](crate::wire::Invocation) by reference; `H` serializes as
/// the header list, a sequence of `(name, value)` string pairs.
#[derive(Serialize, Debug)]
pub struct InvocationRef<'a, H: Serialize> {
    /// The inbound request.
    pub request: RequestRef<'a, H>,
    /// The client certificate of the inbound connection.
    pub client_auth: Option<&'a ClientAuth>,
    /// The worker's name.
    pub worker: &'a str,
    /// The request id.
    pub request_id: &'a str,
}

/// [`WireRequest`](crate::wire::WireRequest) by reference (encoding only).
#[derive(Serialize, Debug)]
pub struct RequestRef<'a, H: Serialize> {
    /// HTTP method.
    pub method: &'a str,
    /// Absolute URL.
    pub url: &'a str,
    /// Header fields in order, as `(name, value)` string pairs.
    pub headers: H,
    /// The whole body.
    #[serde(with = "serde_bytes")]
    pub body: &'a [u8],
}

/// [`WireRequest`](crate::wire::WireRequest) borrowed from encoded bytes.
#[derive(Deserialize, Debug, PartialEq, Eq)]
pub struct RequestView<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Absolute URL.
    pub url: &'a str,
    /// Header fields in order.
    #[serde(borrow)]
    pub headers: Vec<(&'a str, &'a str)>,
    /// The whole body.
    #[serde(borrow, with = "serde_bytes")]
    pub body: &'a [u8],
}

/// [`WireResponse`](crate::wire::WireResponse) borrowed from encoded bytes.
#[derive(Deserialize, Debug, PartialEq, Eq)]
pub struct ResponseView<'a> {
    /// Status code.
    pub status: u16,
    /// Header fields in order.
    #[serde(borrow)]
    pub headers: Vec<(&'a str, &'a str)>,
    /// The whole body.
    #[serde(borrow, with = "serde_bytes")]
    pub body: &'a [u8],
}

/// [`HandlerOutput`](crate::wire::HandlerOutput) borrowed from encoded bytes
/// (the variants in the same order).
#[derive(Deserialize, Debug, PartialEq, Eq)]
pub enum HandlerOutputView<'a> {
    /// The handler produced a response.
    #[serde(borrow)]
    Response(ResponseView<'a>),
    /// The handler failed.
    Error {
        /// HTTP status to answer with.
        status: u16,
        /// Human-readable cause.
        message: String,
    },
}

/// [`FetchRequest`](crate::wire::FetchRequest) borrowed from encoded bytes.
#[derive(Deserialize, Debug, PartialEq, Eq)]
pub struct FetchRequestView<'a> {
    /// The request to send.
    #[serde(borrow)]
    pub request: RequestView<'a>,
    /// The client certificate to present.
    pub client_cert: ClientCertChoice,
    /// A timeout for this subrequest.
    pub timeout_ms: Option<u32>,
}

/// [`WireResponse`](crate::wire::WireResponse) by reference (encoding only),
/// inside a [`FetchResult`](crate::wire::FetchResult)'s `Ok`.
#[derive(Serialize, Debug)]
pub struct ResponseRef<'a, H: Serialize> {
    /// Status code.
    pub status: u16,
    /// Header fields in order, as `(name, value)` string pairs.
    pub headers: H,
    /// The whole body.
    #[serde(with = "serde_bytes")]
    pub body: &'a [u8],
}

/// The `Ok` of a [`FetchResult`](crate::wire::FetchResult) (`Result`'s
/// variant 0), by reference.
#[derive(Serialize, Debug)]
pub enum FetchResultRef<'a, H: Serialize> {
    /// The origin's response.
    Ok(ResponseRef<'a, H>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, decode_view, encode};
    use crate::wire::*;

    fn auth() -> ClientAuth {
        ClientAuth {
            cert_presented: true,
            cert_verified: CertVerified::Failed("expired".into()),
            cert_subject_dn: "CN=a,O=b".into(),
            dns_sans: vec!["a.example".into()],
            spiffe_id: Some("spiffe://x/y".into()),
            ..ClientAuth::not_presented()
        }
    }

    fn request() -> WireRequest {
        WireRequest {
            method: "POST".into(),
            url: "https://a.example/p?q=1".into(),
            headers: vec![
                ("host".into(), "a.example".into()),
                ("x".into(), "é".into()),
            ],
            body: (0..=255).collect(),
        }
    }

    #[test]
    fn a_borrowed_invocation_encodes_to_the_owned_bytes() {
        let owned = Invocation {
            request: request(),
            client_auth: Some(auth()),
            worker: "w".into(),
            request_id: "1-2".into(),
        };
        let r = &owned.request;
        let headers: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let borrowed = InvocationRef {
            request: RequestRef {
                method: &r.method,
                url: &r.url,
                headers,
                body: &r.body,
            },
            client_auth: owned.client_auth.as_ref(),
            worker: "w",
            request_id: "1-2",
        };
        assert_eq!(encode(&borrowed).unwrap(), encode(&owned).unwrap());
    }

    #[test]
    fn views_decode_the_owned_bytes() {
        let response = WireResponse {
            status: 201,
            headers: vec![("a".into(), "b".into())],
            body: b"body".to_vec(),
        };
        let bytes = encode(&HandlerOutput::Response(response.clone())).unwrap();
        let HandlerOutputView::Response(view) =
            decode_view::<HandlerOutputView>(&bytes, 1024).unwrap()
        else {
            panic!("not a response")
        };
        assert_eq!((view.status, view.body), (201, &b"body"[..]));
        assert_eq!(view.headers, vec![("a", "b")]);
        let error = HandlerOutput::Error {
            status: 503,
            message: "m".into(),
        };
        assert_eq!(
            decode_view::<HandlerOutputView>(&encode(&error).unwrap(), 1024).unwrap(),
            HandlerOutputView::Error {
                status: 503,
                message: "m".into()
            }
        );
        let fetch = FetchRequest {
            request: request(),
            client_cert: ClientCertChoice::Binding("B".into()),
            timeout_ms: Some(9),
        };
        let bytes = encode(&fetch).unwrap();
        let view = decode_view::<FetchRequestView>(&bytes, 4096).unwrap();
        assert_eq!(view.request.url, fetch.request.url);
        assert_eq!(view.request.body, &fetch.request.body[..]);
        assert_eq!(view.client_cert, fetch.client_cert);
        assert!(decode_view::<FetchRequestView>(&bytes[..bytes.len() - 1], 4096).is_err());
    }

    #[test]
    fn a_borrowed_fetch_result_encodes_to_the_owned_bytes() {
        let owned: FetchResult = Ok(WireResponse {
            status: 200,
            headers: vec![("k".into(), "v".into())],
            body: vec![7; 300],
        });
        let borrowed = FetchResultRef::Ok(ResponseRef {
            status: 200,
            headers: vec![("k", "v")],
            body: &[7; 300],
        });
        let bytes = encode(&borrowed).unwrap();
        assert_eq!(bytes, encode(&owned).unwrap());
        assert_eq!(decode::<FetchResult>(&bytes, 4096).unwrap(), owned);
    }
}
