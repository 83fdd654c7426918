//! rustls configuration shared by the load generator and the baselines.

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::client::ResolvesClientCert;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};

use crate::pki::{CertKeyPem, parse_certs};

/// ALPN identifiers for HTTP/2 then HTTP/1.1.
pub fn alpn_h2_h1() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// A root store holding every certificate of a PEM bundle.
pub fn root_store(ca_pem: &[u8]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(ca_pem)? {
        roots
            .add(cert)
            .context("adding CA certificate to root store")?;
    }
    Ok(roots)
}

/// Loads a certificate chain + key into a rustls [`CertifiedKey`] using the
/// installed crypto provider.
pub fn certified_key(identity: &CertKeyPem) -> Result<Arc<CertifiedKey>> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .context("no rustls crypto provider installed (call install_crypto_provider)")?;
    let key = provider
        .key_provider
        .load_private_key(identity.private_key()?)
        .context("loading private key")?;
    Ok(Arc::new(CertifiedKey::new(identity.cert_chain()?, key)))
}

/// A server config presenting `server`, requiring and verifying client
/// certificates issued by `client_ca_pem` (or none when `None`), with ALPN
/// h2 + http/1.1.
pub fn server_config(server: &CertKeyPem, client_ca_pem: Option<&str>) -> Result<ServerConfig> {
    let roots = match client_ca_pem {
        Some(ca) => Some(Arc::new(root_store(ca.as_bytes())?)),
        None => None,
    };
    server_config_with_key(certified_key(server)?, roots)
}

/// Like [`server_config`] but with an already loaded key and parsed client
/// CA roots, so many hostnames can be configured cheaply. Each call builds
/// its own [`WebPkiClientVerifier`], as a per-hostname policy would.
pub fn server_config_with_key(
    key: Arc<CertifiedKey>,
    client_ca_roots: Option<Arc<RootCertStore>>,
) -> Result<ServerConfig> {
    let builder = ServerConfig::builder();
    let builder = match client_ca_roots {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder(roots)
                .build()
                .context("building client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(FixedServerCert(key)));
    cfg.alpn_protocols = alpn_h2_h1();
    Ok(cfg)
}

/// Server certificate resolver that always answers with the same key.
#[derive(Debug)]
struct FixedServerCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedServerCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Client certificate resolver that always presents one identity, the way a
/// single-identity proxy would (Sigil chooses per request instead).
#[derive(Debug)]
pub struct FixedClientCert(pub Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.key.choose_scheme(sigschemes).map(|_| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client config trusting `ca_pem`, presenting `identity` through a
/// [`FixedClientCert`] resolver when given, with the given ALPN list.
pub fn client_config(
    ca_pem: &[u8],
    identity: Option<&CertKeyPem>,
    alpn: Vec<Vec<u8>>,
) -> Result<ClientConfig> {
    let builder = ClientConfig::builder().with_root_certificates(root_store(ca_pem)?);
    let mut cfg = match identity {
        Some(id) => {
            builder.with_client_cert_resolver(Arc::new(FixedClientCert(certified_key(id)?)))
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn;
    Ok(cfg)
}
