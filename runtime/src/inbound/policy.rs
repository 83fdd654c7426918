//! Hostname policies: for each hostname, its server certificate, its
//! client-certificate verifier and mode, and whether client-certificate
//! details are forwarded. SNI selects the policy with one hash lookup.

use super::verifier::HostnameClientVerifier;
use crate::manifest::ClientCertMode;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use std::collections::HashMap;
use std::sync::Arc;

/// What a hostname's policy is built from.
pub struct HostnamePolicySpec {
    /// The hostname (lower case).
    pub name: String,
    /// Server certificate and key.
    pub server_cert: Arc<CertifiedKey>,
    /// Client CA certificates.
    pub client_cas: Vec<CertificateDer<'static>>,
    /// CRLs for the client CAs.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// Client-certificate mode.
    pub mode: ClientCertMode,
    /// Most certificates in a client chain.
    pub max_chain_depth: usize,
    /// Forward verified client-certificate details to origins.
    pub forward_client_cert: bool,
}

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
    pub verifier: Option<Arc<HostnameClientVerifier>>,
}

#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl HostnamePolicy {
    /// Build the policy; fails when the CA or CRL material is unusable.
    pub fn build(spec: HostnamePolicySpec) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let verifier = match spec.mode {
            ClientCertMode::Off => None,
            mode => {
                let mut roots = RootCertStore::empty();
                for ca in &spec.client_cas {
                    roots.add(ca.clone()).map_err(|e| {
                        format!("a client CA certificate is not usable as a trust anchor: {e}")
                    })?;
                }
                let mut webpki =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                if !spec.crls.is_empty() {
                    webpki = webpki.with_crls(spec.crls.clone());
                }
                let inner = webpki
                    .build()
                    .map_err(|e| format!("cannot build the client verifier: {e}"))?;
                Some(Arc::new(HostnameClientVerifier::new(
                    inner,
                    mode == ClientCertMode::Require,
                    spec.max_chain_depth,
                )))
            }
        };
        let builder = match &verifier {
            Some(v) => builder.with_client_cert_verifier(v.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(FixedCert(spec.server_cert)));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(HostnamePolicy {
            name: spec.name.into(),
            mode: spec.mode,
            forward_client_cert: spec.forward_client_cert,
            server_config: Arc::new(config),
            verifier,
        })
    }
}

/// Every hostname's policy, selected by SNI.
#[derive(Default)]
pub struct HostnamePolicies {
    by_name: HashMap<String, Arc<HostnamePolicy>>,
    default: Option<Arc<HostnamePolicy>>,
}

impl HostnamePolicies {
    /// Index `policies`; `default` names the policy for clients without (known) SNI.
    pub fn new(policies: Vec<HostnamePolicy>, default: Option<&str>) -> Self {
        let by_name: HashMap<String, Arc<HostnamePolicy>> = policies
            .into_iter()
            .map(|p| (p.name.to_string(), Arc::new(p)))
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
