//! Command line and configuration loading.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sigil_origin::{IdentityVerifier, parse_worker_spiffe_id};

use crate::authz::{Policy, WriterRule};

/// Example HTTPS origin for Sigil workers: a tiny records API where only
/// named writers may append, decided from the client certificate.
#[derive(Debug, Clone, Parser)]
#[command(name = "sigil-example-origin", version)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9443")]
    pub listen: SocketAddr,

    /// Server certificate chain (PEM, leaf first).
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,

    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,

    /// CA bundle (PEM) whose client certificates are accepted; repeat for
    /// several CAs, e.g. Sigil's identity CA and your own CA.
    #[arg(long = "client-ca", value_name = "FILE", required = true)]
    pub client_ca: Vec<PathBuf>,

    /// SPIFFE trust domain of the Sigil identity CA.
    #[arg(long, default_value = "sigil.local")]
    pub trust_domain: String,

    /// Who may POST /records: spiffe://<trust-domain>/worker/<name>,
    /// cn:NAME (bring-your-own certificate by subject CN) or serial:HEX.
    /// Repeatable.
    #[arg(long = "writer", value_name = "ID")]
    pub writers: Vec<WriterRule>,
}

/// Everything the server needs, loaded and validated.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// TLS configuration requiring verified client certificates.
    pub tls: Arc<rustls::ServerConfig>,
    /// Reads Sigil worker identities for our trust domain.
    pub verifier: IdentityVerifier,
    /// Who may write.
    pub policy: Policy,
}

impl Args {
    /// Read the certificate, key and CA files and check the writer rules.
    pub fn load(&self) -> anyhow::Result<OriginConfig> {
        // Validate the trust domain with the same rules as certificates use.
        parse_worker_spiffe_id(&format!("spiffe://{}/worker/x", self.trust_domain))
            .with_context(|| format!("--trust-domain {:?} is not valid", self.trust_domain))?;
        for rule in &self.writers {
            if let WriterRule::Spiffe(id) = rule
                && id.trust_domain != self.trust_domain
            {
                bail!(
                    "--writer {id}: trust domain {:?} is not --trust-domain {:?}; \
                     such a caller could never be identified",
                    id.trust_domain,
                    self.trust_domain
                );
            }
        }

        let chain = load_certs(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("--key {}: no usable private key", self.key.display()))?;
        let mut roots = RootCertStore::empty();
        for path in &self.client_ca {
            for cert in load_certs(path)? {
                roots.add(cert).with_context(|| {
                    format!(
                        "--client-ca {}: not a usable CA certificate",
                        path.display()
                    )
                })?;
            }
        }
        let tls = sigil_origin::server_config(chain, key, roots, true).with_context(|| {
            format!(
                "--cert {} / --key {}",
                self.cert.display(),
                self.key.display()
            )
        })?;

        Ok(OriginConfig {
            listen: self.listen,
            tls,
            verifier: IdentityVerifier::new(self.trust_domain.clone()),
            policy: Policy::new(self.writers.clone()),
        })
    }
}

/// Read every certificate in a PEM file; an error if there are none.
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: invalid PEM", path.display()))?;
    if certs.is_empty() {
        bail!("{}: contains no certificates", path.display());
    }
    Ok(certs)
}
