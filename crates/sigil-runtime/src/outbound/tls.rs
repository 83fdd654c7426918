//! rustls client configurations for subrequests: which roots verify the
//! origin, which client certificate is presented, and ALPN.

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use sigil_pki::RotatingCert;
use std::sync::{Arc, OnceLock};

/// The system's trusted roots, loaded once per process.
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!("loading system root certificates: {e}");
        }
        found.certs
    })
}

/// Build a root store from CA certificates, optionally with the system roots.
pub fn root_store(extra: &[CertificateDer<'static>], with_system: bool) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    if with_system {
        store.add_parsable_certificates(system_roots().iter().cloned());
    }
    store.add_parsable_certificates(extra.iter().cloned());
    Arc::new(store)
}

/// A client configuration verifying origins against `roots` and presenting
/// `client_cert` (if any), offering HTTP/2 and HTTP/1.1.
pub fn client_config(
    roots: Arc<RootCertStore>,
    client_cert: Option<Arc<RotatingCert>>,
) -> anyhow::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client_cert {
        Some(resolver) => builder.with_client_cert_resolver(resolver),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
