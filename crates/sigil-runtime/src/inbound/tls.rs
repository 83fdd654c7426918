//! Per-hostname TLS: building each hostname's policy (server certificate,
//! client-certificate verifier, mode) from the manifest, and the server
//! side of a handshake, where SNI selects the policy before the handshake
//! completes.

use crate::config::{ClientCertMode, Findings, HostnameSection};
use crate::state::{CertificateExpiry, HostnamePolicy};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use sigil_pki::client_verifier::HostnameClientVerifier;
use std::sync::Arc;

/// What a hostname's policy is built from.
pub struct PolicySpec {
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

#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The client-certificate verifier of a policy (none in `off` mode).
fn verifier(spec: &PolicySpec) -> Result<Option<Arc<HostnameClientVerifier>>, String> {
    if spec.mode == ClientCertMode::Off {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    for ca in &spec.client_cas {
        roots
            .add(ca.clone())
            .map_err(|e| format!("a client CA certificate is not usable as a trust anchor: {e}"))?;
    }
    let mut webpki =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), sigil_pki::provider().clone());
    if !spec.crls.is_empty() {
        webpki = webpki.with_crls(spec.crls.clone());
    }
    let inner = webpki
        .build()
        .map_err(|e| format!("cannot build the client verifier: {e}"))?;
    Ok(Some(Arc::new(HostnameClientVerifier::new(
        inner,
        spec.mode == ClientCertMode::Require,
        spec.max_chain_depth,
    ))))
}

/// Build a hostname's policy; fails when the CA or CRL material is unusable.
pub fn build_policy(spec: PolicySpec) -> Result<HostnamePolicy, String> {
    let builder = ServerConfig::builder_with_provider(sigil_pki::provider().clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let verifier = verifier(&spec)?;
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

/// Load one `[[hostnames]]` entry's files and build its policy.
fn load_policy(
    h: &HostnameSection,
    findings: &mut Findings<'_>,
    expiries: &mut Vec<CertificateExpiry>,
) -> Option<HostnamePolicy> {
    let item = format!("hostname \"{}\"", h.name);
    findings.read(&h.cert);
    findings.read(&h.key);
    let server = match sigil_pki::load_certified_key(&h.cert, &h.key, sigil_pki::unix_now()) {
        Ok(l) => l,
        Err(e) => {
            findings.error(&item, e.to_string());
            return None;
        }
    };
    expiries.push(CertificateExpiry {
        label: format!("hostname:{}", h.name),
        not_after: server.validity.not_after,
    });
    let mut client_cas = Vec::new();
    for ca in &h.client_ca {
        findings.read(ca);
        match sigil_pki::load_ca_bundle(ca) {
            Ok(cas) => client_cas.extend(cas),
            Err(e) => findings.error(&item, e.to_string()),
        }
    }
    let mut crls = Vec::new();
    for crl in &h.crl {
        findings.read(crl);
        match sigil_pki::load_crls(crl) {
            Ok(c) => crls.extend(c),
            Err(e) => findings.error(&item, e.to_string()),
        }
    }
    let spec = PolicySpec {
        name: h.name.to_ascii_lowercase(),
        server_cert: server.certified_key.clone(),
        client_cas,
        crls,
        mode: h.client_cert,
        max_chain_depth: h.max_chain_depth.unwrap_or(4) as usize,
        forward_client_cert: h.forward_client_cert,
    };
    build_policy(spec)
        .map_err(|e| findings.error(&item, e))
        .ok()
}

/// Every `[[hostnames]]` policy of the manifest being loaded.
pub fn build_policies(
    findings: &mut Findings<'_>,
    expiries: &mut Vec<CertificateExpiry>,
) -> Vec<HostnamePolicy> {
    let manifest = findings.manifest();
    manifest
        .manifest
        .hostnames
        .iter()
        .filter_map(|h| load_policy(h, findings, expiries))
        .collect()
}
