//! `sigil certs ...`: create, issue and inspect certificates.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

pub mod dev_pki;
mod inspect;
#[cfg(test)]
mod test_dir;

use dev_pki::{init_dev_pki, write_file};
use inspect::inspect;
use sigil_pki::{CertError, CertUsage, CertificateAuthority, IssueRequest};

/// The `sigil certs` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum CertsCommand {
    /// Create a throwaway development PKI (CAs, server, device and client
    /// certificates) for the examples. Existing files are kept, except that
    /// a CA whose key is missing is created anew, with new certificates
    /// under it.
    Init {
        /// Directory to write the certificates and keys into.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Re-create every file, even those that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Issue a leaf certificate (ECDSA P-256) signed by an existing CA.
    Issue {
        /// The issuing CA's certificate (PEM).
        #[arg(long, value_name = "PEM")]
        ca_cert: PathBuf,
        /// The issuing CA's private key (PEM).
        #[arg(long, value_name = "PEM")]
        ca_key: PathBuf,
        /// Subject common name, e.g. a worker or device name.
        #[arg(long)]
        cn: String,
        /// DNS subject alternative name (repeatable).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// IP subject alternative name (repeatable).
        #[arg(long = "ip", value_name = "ADDR")]
        ip: Vec<IpAddr>,
        /// URI subject alternative name, e.g. a SPIFFE ID (repeatable).
        #[arg(long = "uri", value_name = "URI")]
        uri: Vec<String>,
        /// Make a client certificate (clientAuth). This is the default.
        #[arg(long)]
        client: bool,
        /// Make a server certificate (serverAuth; needs --dns or --ip).
        /// With --client too, the certificate allows both.
        #[arg(long)]
        server: bool,
        /// Validity in days, starting one minute ago.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Where to write the certificate (PEM).
        #[arg(long, value_name = "PEM")]
        out_cert: PathBuf,
        /// Where to write the private key (PEM, mode 0600).
        #[arg(long, value_name = "PEM")]
        out_key: PathBuf,
        /// Overwrite existing output files.
        #[arg(long)]
        force: bool,
    },
    /// Show a certificate's subject, issuer, SANs, SPIFFE ID, serial,
    /// fingerprint and validity; with --ca, verify it against a CA bundle.
    Inspect {
        /// The certificate or chain to inspect (PEM).
        file: PathBuf,
        /// Verify the chain against this CA bundle (PEM).
        #[arg(long, value_name = "PEM")]
        ca: Option<PathBuf>,
    },
    /// Create a new self-signed CA (ECDSA P-256), e.g. your own client CA.
    Ca {
        /// The CA's common name.
        #[arg(long)]
        cn: String,
        /// Validity in days.
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Where to write the CA certificate (PEM).
        #[arg(long, value_name = "PEM")]
        out_cert: PathBuf,
        /// Where to write the CA private key (PEM, mode 0600).
        #[arg(long, value_name = "PEM")]
        out_key: PathBuf,
        /// Overwrite existing output files.
        #[arg(long)]
        force: bool,
    },
}

/// Runs a `sigil certs` subcommand, printing to stdout.
pub fn run(cmd: CertsCommand) -> anyhow::Result<()> {
    match cmd {
        CertsCommand::Init { dir, force } => init(&dir, force),
        CertsCommand::Issue {
            ca_cert,
            ca_key,
            cn,
            dns,
            ip,
            uri,
            client,
            server,
            days,
            out_cert,
            out_key,
            force,
        } => {
            distinct_files(
                &cn,
                &[
                    ("--ca-cert", &ca_cert),
                    ("--ca-key", &ca_key),
                    ("--out-cert", &out_cert),
                    ("--out-key", &out_key),
                ],
            )?;
            refuse_overwrite(&[&out_cert, &out_key], force)?;
            let usage = match (client, server) {
                (true, true) => CertUsage::Both,
                (false, true) => CertUsage::ServerAuth,
                _ => CertUsage::ClientAuth,
            };
            let mut req = IssueRequest::new(
                cn,
                usage,
                Duration::from_secs(u64::from(days) * 24 * 60 * 60),
            );
            req.dns_sans = dns;
            req.ip_sans = ip;
            req.uri_sans = uri;
            issue(&ca_cert, &ca_key, &req, &out_cert, &out_key)
        }
        CertsCommand::Inspect { file, ca } => inspect_verified(&file, ca.as_deref()),
        CertsCommand::Ca {
            cn,
            days,
            out_cert,
            out_key,
            force,
        } => {
            distinct_files(&cn, &[("--out-cert", &out_cert), ("--out-key", &out_key)])?;
            refuse_overwrite(&[&out_cert, &out_key], force)?;
            let ca = CertificateAuthority::generate(&cn, days)?;
            write_file(&out_key, ca.key_pem().as_bytes(), true)?;
            write_file(&out_cert, ca.cert_pem().as_bytes(), false)?;
            println!("wrote {} and {}", out_cert.display(), out_key.display());
            print!("{}", inspect(&out_cert, None, sigil_pki::unix_now())?);
            Ok(())
        }
    }
}

/// `sigil certs init`: the development PKI.
fn init(dir: &Path, force: bool) -> anyhow::Result<()> {
    let report = init_dev_pki(dir, force, &mut |line| println!("{line}"))?;
    if !report.kept.is_empty() {
        println!(
            "kept {} existing file(s) in {} (use --force to re-create them)",
            report.kept.len(),
            dir.display()
        );
    }
    println!(
        "development PKI ready in {} (throwaway certificates: see {})",
        dir.display(),
        dir.join("README.md").display()
    );
    Ok(())
}

/// `sigil certs issue`: a leaf signed by an existing CA.
fn issue(
    ca_cert: &Path,
    ca_key: &Path,
    req: &IssueRequest,
    out_cert: &Path,
    out_key: &Path,
) -> anyhow::Result<()> {
    let ca = CertificateAuthority::load(ca_cert, ca_key)?;
    let issued = ca.issue(req)?;
    write_file(out_key, issued.key_pem.as_bytes(), true)?;
    write_file(out_cert, issued.cert_pem.as_bytes(), false)?;
    println!("wrote {} and {}", out_cert.display(), out_key.display());
    if req.not_after.unix_timestamp() > ca.not_after() {
        println!(
            "note: the certificate ends with its CA, at {}: sooner than --days asked for (a certificate cannot outlive its issuer)",
            sigil_pki::details::format_rfc3339(ca.not_after())
        );
    }
    print!(
        "{}",
        inspect(out_cert, Some(ca_cert), sigil_pki::unix_now())?
    );
    Ok(())
}

/// `sigil certs inspect`: fails, like `openssl verify`, when verification fails.
fn inspect_verified(file: &Path, ca: Option<&Path>) -> anyhow::Result<()> {
    let report = inspect(file, ca, sigil_pki::unix_now())
        .with_context(|| format!("cannot inspect {}", file.display()))?;
    print!("{report}");
    if report
        .lines()
        .any(|l| l.starts_with("verified") && l.contains(": FAILED"))
    {
        anyhow::bail!(
            "{} does not verify against {}",
            file.display(),
            ca.map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
    Ok(())
}

/// Refuse two of `files` (flag, path) naming one file: writing the
/// certificate over the key just written (or over the CA's own files)
/// would destroy a private key while reporting success.
fn distinct_files(what: &str, files: &[(&str, &Path)]) -> Result<(), CertError> {
    let same = |a: &Path, b: &Path| {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        if absolute(a) == absolute(b) {
            return true;
        }
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
            _ => false,
        }
    };
    for (i, (flag_a, a)) in files.iter().enumerate() {
        for (flag_b, b) in &files[i + 1..] {
            if same(a, b) {
                return Err(CertError::InvalidRequest {
                    what: format!("{what:?}"),
                    detail: format!(
                        "{flag_a} and {flag_b} name the same file ({}); give each its own path",
                        a.display()
                    ),
                });
            }
        }
    }
    Ok(())
}

fn refuse_overwrite(paths: &[&Path], force: bool) -> Result<(), CertError> {
    if force {
        return Ok(());
    }
    for path in paths {
        if path.exists() {
            return Err(CertError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::test_dir::TempDir;
    use super::*;
    use clap::{CommandFactory, Parser};
    use sigil_pki::{load_certified_key, unix_now};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: CertsCommand,
    }

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "certs",
            "issue",
            "--ca-cert",
            "a.pem",
            "--ca-key",
            "a.key",
            "--cn",
            "x",
            "--dns",
            "a.example",
            "--dns",
            "b.example",
            "--ip",
            "::1",
            "--server",
            "--out-cert",
            "o.pem",
            "--out-key",
            "o.key",
        ])
        .unwrap();
        let CertsCommand::Issue { dns, ip, days, .. } = cli.cmd else {
            panic!("not issue");
        };
        assert_eq!(dns, ["a.example", "b.example"]);
        assert_eq!(ip, ["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(days, 365);
        let cli = Cli::try_parse_from(["certs", "init"]).unwrap();
        assert_eq!(
            cli.cmd,
            CertsCommand::Init {
                dir: "certs".into(),
                force: false
            }
        );
        assert!(Cli::try_parse_from(["certs", "issue", "--ip", "nope"]).is_err());
    }

    /// One path for the certificate and the key (or a CA file as an
    /// output, even with --force) is refused before anything is written.
    /// Before, `certs ca --out-cert same.pem --out-key same.pem` exited 0
    /// with the CA's key overwritten by its certificate.
    #[test]
    fn outputs_that_name_one_file_are_refused() {
        let dir = TempDir::new("cli-same");
        let same = dir.path().join("same.pem");
        let err = run(CertsCommand::Ca {
            cn: "Same".into(),
            days: 30,
            out_cert: same.clone(),
            out_key: dir.path().join(".").join("same.pem"),
            force: false,
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--out-cert and --out-key name the same file"),
            "{err}"
        );
        assert!(!same.exists(), "nothing is written");
        let (ca_cert, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        run(CertsCommand::Ca {
            cn: "CA".into(),
            days: 30,
            out_cert: ca_cert.clone(),
            out_key: ca_key.clone(),
            force: false,
        })
        .unwrap();
        let key_before = std::fs::read(&ca_key).unwrap();
        let err = run(CertsCommand::Issue {
            ca_cert: ca_cert.clone(),
            ca_key: ca_key.clone(),
            cn: "svc".into(),
            dns: vec![],
            ip: vec![],
            uri: vec![],
            client: true,
            server: false,
            days: 1,
            out_cert: dir.path().join("svc.pem"),
            out_key: ca_key.clone(),
            force: true,
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--ca-key and --out-key name the same file"),
            "{err}"
        );
        assert_eq!(std::fs::read(&ca_key).unwrap(), key_before);
    }

    #[test]
    fn ca_then_issue_then_refuse_overwrite() {
        let dir = TempDir::new("cli");
        let ca_cert = dir.path().join("my-ca.pem");
        let ca_key = dir.path().join("my-ca.key");
        run(CertsCommand::Ca {
            cn: "My CA".into(),
            days: 30,
            out_cert: ca_cert.clone(),
            out_key: ca_key.clone(),
            force: false,
        })
        .unwrap();
        let issue = CertsCommand::Issue {
            ca_cert: ca_cert.clone(),
            ca_key: ca_key.clone(),
            cn: "svc".into(),
            dns: vec!["svc.example".into()],
            ip: vec![],
            uri: vec![],
            client: true,
            server: true,
            days: 10,
            out_cert: dir.path().join("svc.pem"),
            out_key: dir.path().join("svc.key"),
            force: false,
        };
        run(issue.clone()).unwrap();
        let loaded = load_certified_key(
            dir.path().join("svc.pem"),
            dir.path().join("svc.key"),
            unix_now(),
        )
        .unwrap();
        assert_eq!(
            loaded.leaf_details.extended_key_usages,
            ["serverAuth", "clientAuth"]
        );
        let err = run(issue).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}
