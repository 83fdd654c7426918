//! Hostname policies: for each hostname, its TLS configuration (server
//! certificate and client-certificate verifier), its mode, and whether
//! client-certificate details are forwarded. SNI selects one with a single
//! hash lookup. The inbound layer builds them from the manifest.

use crate::config::ClientCertMode;
use rustls::ServerConfig;
use sigil_pki::client_verifier::ClientVerifier;
use std::collections::HashMap;
use std::sync::Arc;

/// One hostname's inbound TLS policy.
pub struct HostnamePolicy {
    /// The hostname (lower case).
    pub name: Arc<str>,
    /// Client-certificate mode.
    pub mode: ClientCertMode,
    /// Forward verified client-certificate details to origins.
    pub forward_client_cert: bool,
    /// The TLS configuration used for handshakes on this hostname.
    pub server_config: Arc<ServerConfig>,
    /// The verifier (absent in `off` mode).
    pub verifier: Option<Arc<ClientVerifier>>,
}

/// Every hostname's policy, selected by SNI.
#[derive(Default)]
pub struct HostnamePolicies {
    by_name: HashMap<String, Arc<HostnamePolicy>>,
    default: Option<Arc<HostnamePolicy>>,
}

impl HostnamePolicies {
    /// Index `policies`; `default` names the policy for clients without (known) SNI.
    pub fn new(policies: Vec<Arc<HostnamePolicy>>, default: Option<&str>) -> Self {
        let by_name: HashMap<String, Arc<HostnamePolicy>> = policies
            .into_iter()
            .map(|p| (p.name.to_string(), p))
            .collect();
        let default = default.and_then(|d| by_name.get(&d.to_ascii_lowercase()).cloned());
        HostnamePolicies { by_name, default }
    }

    /// The policy for a client hello's SNI: the exact hostname, else the default.
    pub fn select(&self, sni: Option<&str>) -> Option<&Arc<HostnamePolicy>> {
        sni.and_then(|name| self.get(name))
            .or(self.default.as_ref())
    }

    /// The policy of hostname `name` (case-insensitive), if configured.
    pub fn get(&self, name: &str) -> Option<&Arc<HostnamePolicy>> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_name.get(&name.to_ascii_lowercase())
        } else {
            self.by_name.get(name)
        }
    }

    /// Number of hostnames.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no hostname is configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
