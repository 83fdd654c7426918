//! The wire types shared by the host and the guest.
//!
//! Every value that crosses the guest boundary is one of these types, encoded
//! with [`crate::codec`]. The host (`sigil-runtime`) depends on this very
//! module, so the two sides cannot drift apart. Bump [`ABI_VERSION`] whenever a
//! type here changes shape.

use serde::{Deserialize, Serialize};

/// Version of the host/guest ABI. A guest exports it as `sigil_abi_version`;
/// the host refuses modules built against another version.
pub const ABI_VERSION: u32 = 1;

/// An HTTP request as it crosses the boundary (inbound to the guest, or
/// outbound from the guest as a subrequest).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct WireRequest {
    /// HTTP method, upper case (`GET`, `POST`, ...).
    pub method: String,
    /// Absolute URL (`https://host/path?query`).
    pub url: String,
    /// Header fields in order; names are lower case.
    pub headers: Vec<(String, String)>,
    /// The whole body (encoded as one length-prefixed run of bytes, the
    /// same bytes as a sequence of `u8`, copied at once).
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// An HTTP response as it crosses the boundary.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct WireResponse {
    /// Status code.
    pub status: u16,
    /// Header fields in order; names are lower case.
    pub headers: Vec<(String, String)>,
    /// The whole body (encoded as one length-prefixed run of bytes, the
    /// same bytes as a sequence of `u8`, copied at once).
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// About the bytes `headers` take encoded: each pair's strings and their
/// length prefixes (a size estimate for [`codec::encode_sized`](crate::codec::encode_sized)).
fn headers_size(headers: &[(String, String)]) -> usize {
    headers.iter().map(|(k, v)| k.len() + v.len() + 6).sum()
}

impl WireRequest {
    /// About the bytes this request takes encoded.
    pub fn encoded_size(&self) -> usize {
        16 + self.method.len() + self.url.len() + headers_size(&self.headers) + self.body.len()
    }
}

impl WireResponse {
    /// About the bytes this response takes encoded.
    pub fn encoded_size(&self) -> usize {
        16 + headers_size(&self.headers) + self.body.len()
    }
}

/// What the host hands a guest for one inbound request.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The inbound request.
    pub request: WireRequest,
    /// The client certificate of the inbound connection, if it came over TLS.
    pub client_auth: Option<ClientAuth>,
    /// The name of the worker being invoked (from the manifest).
    pub worker: String,
    /// The request id the host logs this request under.
    pub request_id: String,
}

/// What a guest's handler returns to the host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum HandlerOutput {
    /// The handler produced a response.
    Response(WireResponse),
    /// The handler failed; the host answers `status` with `message`.
    Error {
        /// HTTP status to answer with.
        status: u16,
        /// Human-readable cause, sent in the response body and logged.
        message: String,
    },
}

/// Which client certificate a subrequest presents.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientCertChoice {
    /// The worker's default binding (or none when it has no default).
    #[default]
    WorkerDefault,
    /// One of the worker's own bindings, by binding name.
    Binding(String),
    /// Explicitly no client certificate.
    None,
}

/// A subrequest: the request plus how to send it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The request to send; `url` must be absolute `http://` or `https://`.
    pub request: WireRequest,
    /// The client certificate to present.
    pub client_cert: ClientCertChoice,
    /// A timeout for this subrequest, capped by the worker's wall-clock limit.
    pub timeout_ms: Option<u32>,
}

/// The outcome of a subrequest.
pub type FetchResult = Result<WireResponse, FetchError>;

/// Why a subrequest failed. Every variant names what the guest needs to act on:
/// the binding used (if any), the origin host and the cause.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The worker has no binding of this name (bindings are per worker).
    UnknownBinding {
        /// The name the guest asked for.
        binding: String,
    },
    /// The URL's host is not in the worker's `allowed_outbound_hosts`.
    HostNotAllowed {
        /// The origin (`scheme://host:port`) that was refused.
        origin: String,
    },
    /// The worker already made as many subrequests as its limit allows.
    SubrequestLimit {
        /// The limit for one inbound request.
        limit: u32,
    },
    /// The request itself is malformed (bad URL, bad header, body too large).
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
    /// The origin could not be reached (connection refused, DNS failure).
    ConnectFailed {
        /// Binding used, if any.
        binding: Option<String>,
        /// Origin host and port.
        host: String,
        /// Underlying cause.
        cause: String,
    },
    /// The origin's server certificate was not trusted.
    UntrustedOrigin {
        /// Binding used, if any.
        binding: Option<String>,
        /// Origin host and port.
        host: String,
        /// Underlying cause.
        cause: String,
    },
    /// The origin refused the client certificate (or required one that was not sent).
    ClientCertRefused {
        /// Binding used, if any.
        binding: Option<String>,
        /// Origin host and port.
        host: String,
        /// Underlying cause (the TLS alert).
        cause: String,
    },
    /// The subrequest did not complete in time.
    Timeout {
        /// Binding used, if any.
        binding: Option<String>,
        /// Origin host and port.
        host: String,
        /// The timeout that expired, in milliseconds.
        after_ms: u64,
    },
    /// The origin's response body exceeded the worker's response body limit.
    ResponseTooLarge {
        /// Origin host and port.
        host: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// Any other failure (protocol error, connection reset, ...).
    Other {
        /// Binding used, if any.
        binding: Option<String>,
        /// Origin host and port.
        host: String,
        /// Underlying cause.
        cause: String,
    },
}

fn binding_label(binding: &Option<String>) -> String {
    match binding {
        Some(b) => format!("binding \"{b}\""),
        None => "no client certificate".to_string(),
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::UnknownBinding { binding } => write!(
                f,
                "unknown binding \"{binding}\": this worker declares no binding of that name \
                 (add it under the worker's [[workers.mtls_certificates]] in sigil.toml)"
            ),
            FetchError::HostNotAllowed { origin } => write!(
                f,
                "outbound host {origin} is not allowed for this worker \
                 (add it to the worker's allowed_outbound_hosts in sigil.toml)"
            ),
            FetchError::SubrequestLimit { limit } => write!(
                f,
                "subrequest limit reached: at most {limit} subrequests per request (limits.subrequests)"
            ),
            FetchError::InvalidRequest { reason } => write!(f, "invalid subrequest: {reason}"),
            FetchError::ConnectFailed {
                binding,
                host,
                cause,
            } => write!(
                f,
                "{} to {host}: could not connect: {cause}",
                binding_label(binding)
            ),
            FetchError::UntrustedOrigin {
                binding,
                host,
                cause,
            } => write!(
                f,
                "{} to {host}: the origin's certificate is not trusted: {cause}",
                binding_label(binding)
            ),
            FetchError::ClientCertRefused {
                binding,
                host,
                cause,
            } => write!(
                f,
                "{} to {host}: the origin refused the client certificate: {cause}",
                binding_label(binding)
            ),
            FetchError::Timeout {
                binding,
                host,
                after_ms,
            } => write!(
                f,
                "{} to {host}: timed out after {after_ms} ms",
                binding_label(binding)
            ),
            FetchError::ResponseTooLarge { host, limit } => write!(
                f,
                "response from {host} exceeds the response body limit of {limit} bytes"
            ),
            FetchError::Other {
                binding,
                host,
                cause,
            } => {
                write!(f, "{} to {host}: {cause}", binding_label(binding))
            }
        }
    }
}

impl std::error::Error for FetchError {}

/// Result of verifying the inbound client certificate, with the same strings
/// as Cloudflare's `certVerified` and nginx's `$ssl_client_verify`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum CertVerified {
    /// A certificate was presented and verified against the hostname's CA.
    Success,
    /// No certificate was presented.
    None,
    /// A certificate was presented but did not verify; the reason says why.
    Failed(String),
}

impl std::fmt::Display for CertVerified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertVerified::Success => f.write_str("SUCCESS"),
            CertVerified::None => f.write_str("NONE"),
            CertVerified::Failed(reason) => write!(f, "FAILED:{reason}"),
        }
    }
}

/// The inbound connection's client certificate, as the worker sees it
/// (Cloudflare's `tlsClientAuth`, plus SANs and the SPIFFE ID).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// Whether the client presented a certificate.
    pub cert_presented: bool,
    /// Whether it verified against the hostname's client CA.
    pub cert_verified: CertVerified,
    /// Whether the hostname's CRL lists it.
    pub cert_revoked: bool,
    /// Subject distinguished name (RFC 4514 style), empty when none presented.
    pub cert_subject_dn: String,
    /// Issuer distinguished name.
    pub cert_issuer_dn: String,
    /// Serial number, upper-case hex.
    pub cert_serial: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub cert_fingerprint_sha256: String,
    /// Not-before, seconds since the Unix epoch.
    pub cert_not_before: i64,
    /// Not-after, seconds since the Unix epoch.
    pub cert_not_after: i64,
    /// DNS subject alternative names.
    pub dns_sans: Vec<String>,
    /// URI subject alternative names.
    pub uri_sans: Vec<String>,
    /// The SPIFFE ID, when the certificate carries exactly one `spiffe://` URI SAN.
    ///
    /// It is what the certificate says, vouched for only by the CA that
    /// issued it (one of the hostname's `client_ca`): any of those CAs can
    /// write any URI, including `spiffe://<Sigil's trust domain>/worker/...`.
    /// Authorise by the SPIFFE ID only on a hostname whose `client_ca` is
    /// the CA of that trust domain (for instance Sigil's identity CA), or
    /// check [`cert_issuer_dn`](Self::cert_issuer_dn) with it.
    pub spiffe_id: Option<String>,
}

impl ClientAuth {
    /// The value for a connection without a client certificate.
    pub fn not_presented() -> Self {
        ClientAuth {
            cert_presented: false,
            cert_verified: CertVerified::None,
            cert_revoked: false,
            cert_subject_dn: String::new(),
            cert_issuer_dn: String::new(),
            cert_serial: String::new(),
            cert_fingerprint_sha256: String::new(),
            cert_not_before: 0,
            cert_not_after: 0,
            dns_sans: Vec::new(),
            uri_sans: Vec::new(),
            spiffe_id: None,
        }
    }
}

/// Log levels for the `sigil.log` host call.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum LogLevel {
    /// Very detailed.
    Trace = 0,
    /// Debugging detail.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unusual.
    Warn = 3,
    /// Something failed.
    Error = 4,
    /// The guest is panicking; the message is the panic message.
    Panic = 5,
}

impl LogLevel {
    /// Decode the raw level passed over the ABI; unknown values map to `Info`.
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Panic,
            _ => LogLevel::Info,
        }
    }
}
