//! A throwaway PKI per test, written as PEM files into the test's directory.

use sigil_pki::{CertUsage, CertificateAuthority, IssueRequest, IssuedCertificate};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Files of one issued certificate.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// Serial, upper-case hex.
    pub serial_hex: String,
    /// Serial bytes (for CRLs).
    pub serial: Vec<u8>,
}

impl CertFiles {
    /// The certificate path as a string for manifests.
    pub fn cert_s(&self) -> String {
        self.cert.display().to_string()
    }
    /// The key path as a string for manifests.
    pub fn key_s(&self) -> String {
        self.key.display().to_string()
    }
}

/// A CA with its files.
pub struct Ca {
    /// The authority.
    pub ca: CertificateAuthority,
    /// Its certificate file.
    pub cert: PathBuf,
    /// Its key file.
    pub key: PathBuf,
    dir: PathBuf,
}

/// Options for a leaf.
#[derive(Default, Clone)]
pub struct Leaf<'a> {
    pub cn: &'a str,
    pub dns: &'a [&'a str],
    pub ips: &'a [&'a str],
    pub uris: &'a [&'a str],
    /// Validity offsets from now, in seconds (defaults: -60 .. +1 day).
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
}

impl Ca {
    /// Create a CA named `name` in `dir` (`<name>.pem` / `<name>.key`).
    pub fn new(dir: &Path, name: &str) -> Ca {
        let ca = CertificateAuthority::generate(&format!("{name} test CA"), 30).expect("CA");
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, ca.cert_pem()).unwrap();
        std::fs::write(&key, ca.key_pem()).unwrap();
        Ca {
            ca,
            cert,
            key,
            dir: dir.to_path_buf(),
        }
    }

    /// The CA certificate path as a string for manifests.
    pub fn cert_s(&self) -> String {
        self.cert.display().to_string()
    }

    fn issue_raw(&self, usage: CertUsage, leaf: &Leaf<'_>) -> IssuedCertificate {
        let mut req = IssueRequest::new(leaf.cn, usage, Duration::from_secs(86400));
        let now = time::OffsetDateTime::now_utc();
        if let Some(nb) = leaf.not_before {
            req.not_before = now + time::Duration::seconds(nb);
        }
        if let Some(na) = leaf.not_after {
            req.not_after = now + time::Duration::seconds(na);
        }
        req.dns_sans = leaf.dns.iter().map(|s| s.to_string()).collect();
        req.ip_sans = leaf
            .ips
            .iter()
            .map(|s| s.parse::<IpAddr>().unwrap())
            .collect();
        req.uri_sans = leaf.uris.iter().map(|s| s.to_string()).collect();
        self.ca.issue(&req).expect("issue")
    }

    /// Issue a leaf and write `<stem>.pem` / `<stem>.key`.
    pub fn issue(&self, stem: &str, usage: CertUsage, leaf: Leaf<'_>) -> CertFiles {
        let issued = self.issue_raw(usage, &leaf);
        let cert = self.dir.join(format!("{stem}.pem"));
        let key = self.dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &issued.cert_pem).unwrap();
        std::fs::write(&key, &issued.key_pem).unwrap();
        CertFiles {
            cert,
            key,
            serial_hex: issued.serial_hex.clone(),
            serial: issued.serial.clone(),
        }
    }

    /// A client certificate with common name `cn`.
    pub fn client(&self, stem: &str, cn: &str) -> CertFiles {
        self.issue(
            stem,
            CertUsage::ClientAuth,
            Leaf {
                cn,
                ..Default::default()
            },
        )
    }

    /// A server certificate for `names` (DNS names; 127.0.0.1 is always added).
    pub fn server(&self, stem: &str, names: &[&str]) -> CertFiles {
        self.issue(
            stem,
            CertUsage::ServerAuth,
            Leaf {
                cn: names.first().copied().unwrap_or("localhost"),
                dns: names,
                ips: &["127.0.0.1"],
                ..Default::default()
            },
        )
    }

    /// Write a CRL revoking `serials` to `<stem>.crl.pem`, valid for a day.
    pub fn crl(&self, stem: &str, serials: &[Vec<u8>]) -> PathBuf {
        self.crl_valid_for(stem, serials, 86_400)
    }

    /// Write a CRL revoking `serials` to `<stem>.crl.pem` whose nextUpdate is
    /// `secs` from now (negative: already passed).
    pub fn crl_valid_for(&self, stem: &str, serials: &[Vec<u8>], secs: i64) -> PathBuf {
        let now = time::OffsetDateTime::now_utc();
        let next_update = now + time::Duration::seconds(secs);
        let this_update =
            (now - time::Duration::minutes(1)).min(next_update - time::Duration::hours(1));
        let pem = self
            .ca
            .issue_crl(serials, this_update, next_update)
            .expect("CRL");
        let path = self.dir.join(format!("{stem}.crl.pem"));
        std::fs::write(&path, pem).unwrap();
        path
    }
}
