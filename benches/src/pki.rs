//! Throwaway test PKI generated in memory with rcgen.
//!
//! Nothing here is meant to be committed: [`TestPki::generate`] makes a fresh
//! CA, a server certificate and client certificates on every call, and
//! [`TestPki::write_to`] writes them to a (temporary) directory when a separate
//! process needs files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain and its private key, both PEM encoded.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CertKeyPem {
    /// PEM certificate chain, leaf first.
    pub cert_pem: String,
    /// PEM private key (PKCS#8).
    pub key_pem: String,
}

impl CertKeyPem {
    /// Parses the chain into DER certificates.
    pub fn cert_chain(&self) -> Result<Vec<CertificateDer<'static>>> {
        parse_certs(self.cert_pem.as_bytes())
    }

    /// Parses the private key.
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).context("parsing PEM private key")
    }
}

/// Parses every certificate in a PEM bundle; fails if there is none.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .context("parsing PEM certificates")?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in PEM input");
    Ok(certs)
}

/// A generated CA with one server certificate and named client certificates.
pub struct TestPki {
    ca_pem: String,
    ca: Issuer<'static, KeyPair>,
    server: CertKeyPem,
    clients: Vec<(String, CertKeyPem)>,
}

/// Paths of a [`TestPki`] written to disk by [`TestPki::write_to`].
#[derive(Clone, Debug)]
pub struct PkiFiles {
    /// Directory holding the files.
    pub dir: PathBuf,
    /// CA certificate (`ca.pem`).
    pub ca: PathBuf,
    /// Server chain (`server.pem`).
    pub server_cert: PathBuf,
    /// Server key (`server.key`).
    pub server_key: PathBuf,
    /// Client `(CN, chain, key)` triples (`client-<CN>.pem` / `.key`).
    pub clients: Vec<(String, PathBuf, PathBuf)>,
}

impl TestPki {
    /// Generates a CA (`CN=sigil-bench test CA`), a server certificate for
    /// `localhost`, `127.0.0.1` and `server_names`, and one client certificate
    /// per entry of `client_cns` (that CN, clientAuth EKU).
    pub fn generate(server_names: &[&str], client_cns: &[&str]) -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "sigil-bench test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let ca_pem = params.self_signed(&key)?.pem();
        let ca = Issuer::new(params, key);
        let mut pki = TestPki {
            ca_pem,
            ca,
            server: CertKeyPem {
                cert_pem: String::new(),
                key_pem: String::new(),
            },
            clients: Vec::new(),
        };
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(server_names.iter().map(|s| s.to_string()));
        pki.server = pki.issue_server(&names)?;
        for cn in client_cns {
            let c = pki.issue_client(cn)?;
            pki.clients.push((cn.to_string(), c));
        }
        Ok(pki)
    }

    /// The CA certificate (PEM): trust it on both sides.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server certificate and key made by [`TestPki::generate`].
    pub fn server(&self) -> &CertKeyPem {
        &self.server
    }

    /// The client certificate with this CN, if it was generated.
    pub fn client(&self, cn: &str) -> Option<&CertKeyPem> {
        self.clients.iter().find(|(c, _)| c == cn).map(|(_, k)| k)
    }

    /// All client certificates as `(CN, cert+key)`.
    pub fn clients(&self) -> &[(String, CertKeyPem)] {
        &self.clients
    }

    /// Issues another server certificate (serverAuth) for these names
    /// (DNS names, wildcards such as `*.bench.example`, or IP addresses).
    pub fn issue_server(&self, names: &[String]) -> Result<CertKeyPem> {
        let mut params = CertificateParams::new(names.to_vec())?;
        let cn = names.first().map(String::as_str).unwrap_or("server");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    /// Issues another client certificate (clientAuth) with this CN.
    pub fn issue_client(&self, cn: &str) -> Result<CertKeyPem> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Result<CertKeyPem> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca)?;
        Ok(CertKeyPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes the CA, server and client files into `dir` (created if needed).
    pub fn write_to(&self, dir: &Path) -> Result<PkiFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let write = |name: &str, body: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))?;
            Ok(p)
        };
        let ca = write("ca.pem", &self.ca_pem)?;
        let server_cert = write("server.pem", &self.server.cert_pem)?;
        let server_key = write("server.key", &self.server.key_pem)?;
        let mut clients = Vec::new();
        for (cn, c) in &self.clients {
            let cert = write(&format!("client-{cn}.pem"), &c.cert_pem)?;
            let key = write(&format!("client-{cn}.key"), &c.key_pem)?;
            clients.push((cn.clone(), cert, key));
        }
        Ok(PkiFiles {
            dir: dir.to_path_buf(),
            ca,
            server_cert,
            server_key,
            clients,
        })
    }
}

/// A fresh, unique directory under the system temp dir for PKI files.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()))
}
