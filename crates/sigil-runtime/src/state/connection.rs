//! What the connection a request arrived on established.

use crate::headers::ForwardedClientCert;
use rustls_pki_types::CertificateDer;
use sigil_sdk::wire::ClientAuth;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// The client's certificate chain as presented (TLS only), to check it
    /// again when a reload changes the hostname's policy.
    pub chain: Option<Arc<[CertificateDer<'static>]>>,
    /// The earliest notAfter (Unix seconds) of the certificates the client
    /// sent (its certificate and intermediates); `i64::MAX` without any. A
    /// verified connection is refused past it.
    pub chain_not_after: i64,
    /// The generation whose policy last accepted this connection.
    pub accepted_by: AtomicU64,
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
            chain: None,
            chain_not_after: i64::MAX,
            accepted_by: AtomicU64::new(0),
        }
    }

    /// Whether the policy of generation `id` was already found to accept
    /// this connection.
    pub fn accepted_by(&self, id: u64) -> bool {
        self.accepted_by.load(Ordering::Relaxed) == id
    }

    /// Record that the policy of generation `id` accepts this connection.
    pub fn accept(&self, id: u64) {
        self.accepted_by.store(id, Ordering::Relaxed);
    }
}
