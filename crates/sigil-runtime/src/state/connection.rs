//! What the connection a request arrived on established.

use crate::headers::ForwardedClientCert;
use sigil_sdk::wire::ClientAuth;
use std::sync::Arc;

/// What the connection a request arrived on established: computed once per
/// connection, shared by every request on it.
#[derive(Debug)]
pub struct ConnectionInfo {
    /// The hostname whose policy authenticated the connection (TLS only).
    pub hostname: Option<Arc<str>>,
    /// Whether the client sent SNI naming `hostname` (false: default hostname).
    pub sni_matched: bool,
    /// Client-certificate details (TLS only).
    pub client_auth: Option<Arc<ClientAuth>>,
    /// Headers forwarding the client certificate, when the hostname forwards it.
    pub forward: Option<Arc<ForwardedClientCert>>,
    /// `https` or `http`.
    pub scheme: &'static str,
}

impl ConnectionInfo {
    /// A plain-HTTP connection: no hostname, no client certificate.
    pub fn plain() -> Self {
        ConnectionInfo {
            hostname: None,
            sni_matched: false,
            client_auth: None,
            forward: None,
            scheme: "http",
        }
    }
}
