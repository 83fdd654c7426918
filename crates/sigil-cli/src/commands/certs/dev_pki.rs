//! A throwaway development PKI for the examples and tests (`sigil certs init`).
//!
//! Everything is ECDSA P-256. CAs are valid for 10 years, leaves for 365
//! days. Existing files are kept unless `force` is set; a leaf is re-issued
//! whenever its CA was (re)created in the same run, so the set stays
//! consistent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sigil_pki::{CertError, CertUsage, CertificateAuthority, IssueRequest};

/// Lifetime of development leaf certificates, in days.
pub const DEV_LEAF_DAYS: u64 = 365;
/// Lifetime of development CAs, in days.
pub const DEV_CA_DAYS: u32 = 3650;

const README: &str = "\
# Sigil development certificates

These are THROWAWAY DEVELOPMENT CERTIFICATES created by `sigil certs init`.
The private keys sit unencrypted next to the certificates. Never use them in
production, never trust these CAs in a browser or system store, and never
commit them anywhere that matters. Re-create them any time with
`sigil certs init --force`.

| file | what |
|------|------|
| identity-ca.pem/.key | issues worker identities (trust domain `sigil.local`); origins trust it |
| server-ca.pem/.key | issues the server certificates below |
| localhost.pem/.key | server: localhost, 127.0.0.1, ::1 |
| pay.alpha.example.pem/.key | server: pay.alpha.example (customer alpha's hostname) |
| pay.beta.example.pem/.key | server: pay.beta.example (customer beta's hostname) |
| origin.pem/.key | the example origin: localhost, origin.localhost, 127.0.0.1 |
| alpha-ca.pem/.key, beta-ca.pem/.key | customers' own client CAs |
| alpha-device.pem/.key, beta-device.pem/.key | device client certificates from them |
| clients-ca.pem/.key | issues bring-your-own client certificates |
| writer, reader, tenant-x, tenant-y (.pem/.key) | client certificates from clients-ca |

Inspect any of them with `sigil certs inspect <file> [--ca <ca.pem>]`.
";

/// What [`init_dev_pki`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevPkiReport {
    /// The directory.
    pub dir: PathBuf,
    /// Files written in this run.
    pub created: Vec<PathBuf>,
    /// Files that already existed and were left alone.
    pub kept: Vec<PathBuf>,
}

struct Leaf {
    name: &'static str,
    cn: &'static str,
    dns: &'static [&'static str],
    ips: &'static [IpAddr],
    usage: CertUsage,
}

const LOCALHOST_IPS: &[IpAddr] = &[
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];
const LOOPBACK_V4: &[IpAddr] = &[IpAddr::V4(Ipv4Addr::LOCALHOST)];

fn server(name: &'static str, dns: &'static [&'static str], ips: &'static [IpAddr]) -> Leaf {
    Leaf {
        name,
        cn: dns[0],
        dns,
        ips,
        usage: CertUsage::ServerAuth,
    }
}

fn client(name: &'static str, cn: &'static str) -> Leaf {
    Leaf {
        name,
        cn,
        dns: &[],
        ips: &[],
        usage: CertUsage::ClientAuth,
    }
}

/// Creates (or completes) the development PKI in `dir`.
///
/// Writes `identity-ca`, `server-ca` (with `localhost`, `pay.alpha.example`,
/// `pay.beta.example`, `origin`), `alpha-ca` (with `alpha-device`), `beta-ca`
/// (with `beta-device`) and `clients-ca` (with `writer`, `reader`,
/// `tenant-x`, `tenant-y`), each as `<name>.pem` + `<name>.key`, plus a
/// `README.md`. Keys are mode 0600 on unix. `progress` receives one line per
/// file created, e.g. `created certs/alpha-ca.pem`.
pub fn init_dev_pki(
    dir: &Path,
    force: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<DevPkiReport, CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_path_buf(),
        cause: source,
    })?;
    let mut run = Run {
        dir,
        force,
        progress,
        report: DevPkiReport {
            dir: dir.to_path_buf(),
            ..DevPkiReport::default()
        },
    };

    let readme = dir.join("README.md");
    if readme.exists() && !force {
        run.report.kept.push(readme);
    } else {
        write_file(&readme, README.as_bytes(), false)?;
        run.created(readme);
    }

    run.ca("identity-ca", "Sigil Development Identity CA", &[])?;
    run.ca(
        "server-ca",
        "Sigil Development Server CA",
        &[
            server("localhost", &["localhost"], LOCALHOST_IPS),
            server("pay.alpha.example", &["pay.alpha.example"], &[]),
            server("pay.beta.example", &["pay.beta.example"], &[]),
            server("origin", &["localhost", "origin.localhost"], LOOPBACK_V4),
        ],
    )?;
    run.ca(
        "alpha-ca",
        "Alpha Customer Devices CA",
        &[client("alpha-device", "alpha-device-1")],
    )?;
    run.ca(
        "beta-ca",
        "Beta Customer Devices CA",
        &[client("beta-device", "beta-device-1")],
    )?;
    run.ca(
        "clients-ca",
        "Sigil Development Clients CA",
        &[
            client("writer", "writer"),
            client("reader", "reader"),
            client("tenant-x", "tenant-x"),
            client("tenant-y", "tenant-y"),
        ],
    )?;
    Ok(run.report)
}

struct Run<'a> {
    dir: &'a Path,
    force: bool,
    progress: &'a mut dyn FnMut(&str),
    report: DevPkiReport,
}

impl Run<'_> {
    fn created(&mut self, path: PathBuf) {
        (self.progress)(&format!("created {}", path.display()));
        self.report.created.push(path);
    }

    fn paths(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        )
    }

    fn ca(&mut self, name: &str, cn: &str, leaves: &[Leaf]) -> Result<(), CertError> {
        let (cert, key) = self.paths(name);
        let (ca, fresh) = if !self.force && cert.exists() && key.exists() {
            match CertificateAuthority::load(&cert, &key) {
                Ok(ca) => {
                    self.report.kept.extend([cert, key]);
                    (ca, false)
                }
                Err(e) if leaves.is_empty() => {
                    // Nothing to issue from it; keep the user's files as they are.
                    tracing::warn!("{e}");
                    self.report.kept.extend([cert, key]);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        } else {
            let ca = CertificateAuthority::generate(cn, DEV_CA_DAYS)?;
            self.write_pair(&cert, ca.cert_pem(), &key, &ca.key_pem())?;
            (ca, true)
        };
        for leaf in leaves {
            let (cert, key) = self.paths(leaf.name);
            if !fresh && !self.force && cert.exists() && key.exists() {
                self.report.kept.extend([cert, key]);
                continue;
            }
            let mut req = IssueRequest::new(
                leaf.cn,
                leaf.usage,
                Duration::from_secs(DEV_LEAF_DAYS * 24 * 60 * 60),
            );
            req.dns_sans = leaf.dns.iter().map(|d| (*d).to_string()).collect();
            req.ip_sans = leaf.ips.to_vec();
            let issued = ca.issue(&req)?;
            self.write_pair(&cert, &issued.cert_pem, &key, &issued.key_pem)?;
        }
        Ok(())
    }

    fn write_pair(
        &mut self,
        cert: &Path,
        cert_pem: &str,
        key: &Path,
        key_pem: &str,
    ) -> Result<(), CertError> {
        write_file(key, key_pem.as_bytes(), true)?;
        write_file(cert, cert_pem.as_bytes(), false)?;
        self.created(cert.to_path_buf());
        self.created(key.to_path_buf());
        Ok(())
    }
}

/// Writes `contents` to `path` atomically (temporary file + rename); private
/// files get mode 0600 on unix. Overwrites an existing file.
pub fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), CertError> {
    use std::io::Write;
    let err = |source| CertError::Write {
        path: path.to_path_buf(),
        cause: source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = (|| {
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            // The temp file may have pre-existed with wider permissions.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::super::test_dir::TempDir;
    use super::*;
    use rustls_pki_types::{ServerName, UnixTime};
    use sigil_pki::{load_ca_bundle, load_certified_key, unix_now};
    use std::sync::Arc;

    const ALL: &[&str] = &[
        "identity-ca",
        "server-ca",
        "localhost",
        "pay.alpha.example",
        "pay.beta.example",
        "origin",
        "alpha-ca",
        "beta-ca",
        "alpha-device",
        "beta-device",
        "clients-ca",
        "writer",
        "reader",
        "tenant-x",
        "tenant-y",
    ];

    fn roots(path: &Path) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        for c in load_ca_bundle(path).unwrap() {
            roots.add(c).unwrap();
        }
        Arc::new(roots)
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    #[test]
    fn dev_pki_is_complete_idempotent_and_private() {
        let tmp = TempDir::new("dev-pki");
        let dir = tmp.path().join("certs");
        let mut lines = Vec::new();
        let report = init_dev_pki(&dir, false, &mut |l| lines.push(l.to_string())).unwrap();
        assert_eq!(report.created.len(), ALL.len() * 2 + 1);
        assert!(report.kept.is_empty());
        assert_eq!(lines.len(), report.created.len());
        assert!(
            lines.contains(&format!("created {}", dir.join("alpha-ca.pem").display())),
            "{lines:?}"
        );
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(readme.contains("THROWAWAY DEVELOPMENT CERTIFICATES"));

        for name in ALL {
            let loaded = load_certified_key(
                dir.join(format!("{name}.pem")),
                dir.join(format!("{name}.key")),
                unix_now(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(loaded.leaf_details.key_type, "ECDSA P-256", "{name}");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(dir.join(format!("{name}.key")))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{name}.key");
            }
        }

        // Second run keeps everything.
        let before = std::fs::read(dir.join("writer.pem")).unwrap();
        let mut lines = Vec::new();
        let report = init_dev_pki(&dir, false, &mut |l| lines.push(l.to_string())).unwrap();
        assert!(report.created.is_empty(), "{:?}", report.created);
        assert!(lines.is_empty());
        assert_eq!(report.kept.len(), ALL.len() * 2 + 1);
        assert_eq!(std::fs::read(dir.join("writer.pem")).unwrap(), before);

        // A missing leaf is re-issued from the existing CA.
        std::fs::remove_file(dir.join("reader.key")).unwrap();
        let report = init_dev_pki(&dir, false, &mut |_| {}).unwrap();
        assert_eq!(
            report.created,
            vec![dir.join("reader.pem"), dir.join("reader.key")]
        );

        // --force replaces everything.
        let report = init_dev_pki(&dir, true, &mut |_| {}).unwrap();
        assert_eq!(report.created.len(), ALL.len() * 2 + 1);
        assert_ne!(std::fs::read(dir.join("writer.pem")).unwrap(), before);
    }

    #[test]
    fn dev_pki_chains_verify() {
        let tmp = TempDir::new("dev-pki-verify");
        let dir = tmp.path();
        init_dev_pki(dir, false, &mut |_| {}).unwrap();
        let now = UnixTime::now();

        let alpha = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(&dir.join("alpha-ca.pem")),
            provider(),
        )
        .build()
        .unwrap();
        let alpha_dev = sigil_pki::load_chain(dir.join("alpha-device.pem")).unwrap();
        let beta_dev = sigil_pki::load_chain(dir.join("beta-device.pem")).unwrap();
        alpha.verify_client_cert(&alpha_dev[0], &[], now).unwrap();
        assert!(alpha.verify_client_cert(&beta_dev[0], &[], now).is_err());

        let server = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots(&dir.join("server-ca.pem")),
            provider(),
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        for (file, name) in [
            ("localhost", "localhost"),
            ("localhost", "127.0.0.1"),
            ("localhost", "::1"),
            ("pay.alpha.example", "pay.alpha.example"),
            ("pay.beta.example", "pay.beta.example"),
            ("origin", "origin.localhost"),
            ("origin", "127.0.0.1"),
        ] {
            let chain = sigil_pki::load_chain(dir.join(format!("{file}.pem"))).unwrap();
            let sn = ServerName::try_from(name.to_string()).unwrap();
            server
                .verify_server_cert(&chain[0], &[], &sn, &[], now)
                .unwrap_or_else(|e| panic!("{file} as {name}: {e}"));
        }
        let d = sigil_pki::CertificateDetails::from_der(
            &sigil_pki::load_chain(dir.join("tenant-x.pem")).unwrap()[0],
        )
        .unwrap();
        assert_eq!(d.subject_dn, "CN=tenant-x");
        assert_eq!(d.issuer_dn, "CN=Sigil Development Clients CA");
    }
}
