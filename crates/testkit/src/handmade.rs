//! Hand-made certificates for the edge cases Sigil's own CA will not issue:
//! intermediates, odd subject names, self-signed leaves, URI SANs with
//! separators, and (through the `openssl` command) X.509 v1 certificates.
//! Built with rcgen and written as PEM files into a test's directory.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A leaf certificate's files.
#[derive(Debug, Clone)]
pub struct HandLeaf {
    /// The certificate, followed by the chain it was written with.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// Its serial number.
    pub serial: u64,
}

/// A CA made with rcgen: a root, or an intermediate under another one.
pub struct HandCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Its certificate file (just this certificate).
    pub cert: PathBuf,
    /// The PEM of the intermediates between it and its root.
    chain_pem: String,
    /// Whether it is an intermediate (not self-signed).
    intermediate: bool,
    dir: PathBuf,
}

fn next_serial() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0x5151_0000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(SerialNumber::from(next_serial()));
    p
}

/// Parameters of a client certificate with common name `cn` (clientAuth).
pub fn client_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    p
}

/// Parameters whose subject has one attribute of each kind in `rdns`, in
/// certificate order: `("CN", DnValue::BmpString(..))`, `("O", ..)`.
pub fn client_params_with_subject(rdns: Vec<(DnType, DnValue)>) -> CertificateParams {
    let mut p = client_params("");
    p.distinguished_name = DistinguishedName::new();
    for (kind, value) in rdns {
        p.distinguished_name.push(kind, value);
    }
    p
}

impl HandCa {
    /// A self-signed root named `name`, written to `<dir>/<name>.pem`.
    pub fn root(dir: &Path, name: &str) -> HandCa {
        let issuer = CertifiedIssuer::self_signed(ca_params(name), KeyPair::generate().unwrap())
            .expect("root");
        let mut ca = HandCa::written(dir, name, issuer, String::new());
        ca.intermediate = false;
        ca
    }

    /// An intermediate CA under this one.
    pub fn intermediate(&self, name: &str) -> HandCa {
        let issuer =
            CertifiedIssuer::signed_by(ca_params(name), KeyPair::generate().unwrap(), &self.issuer)
                .expect("intermediate");
        HandCa::written(&self.dir, name, issuer, self.sent_chain())
    }

    /// An intermediate CA under this one whose validity ends `secs` seconds
    /// from now.
    pub fn intermediate_expiring_in(&self, name: &str, secs: i64) -> HandCa {
        let mut params = ca_params(name);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
        let issuer = CertifiedIssuer::signed_by(params, KeyPair::generate().unwrap(), &self.issuer)
            .expect("intermediate");
        HandCa::written(&self.dir, name, issuer, self.sent_chain())
    }

    /// What a client sends after a leaf this CA issued: this CA and the
    /// intermediates above it (nothing for a root).
    pub fn sent_chain(&self) -> String {
        if self.intermediate {
            format!("{}{}", self.issuer.pem(), self.chain_pem)
        } else {
            String::new()
        }
    }

    fn written(
        dir: &Path,
        name: &str,
        issuer: CertifiedIssuer<'static, KeyPair>,
        above: String,
    ) -> HandCa {
        let cert = dir.join(format!("{name}.pem"));
        std::fs::write(&cert, issuer.pem()).expect("write CA");
        HandCa {
            intermediate: !above.is_empty() || name_is_intermediate(&issuer),
            issuer,
            cert,
            chain_pem: above,
            dir: dir.to_path_buf(),
        }
    }

    /// This CA's certificate as PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issue a leaf from `params` and write `<stem>.pem` (the leaf, then
    /// `extra_chain` — e.g. this CA's own PEM for a leaf under an
    /// intermediate) and `<stem>.key`.
    pub fn leaf(&self, stem: &str, mut params: CertificateParams, extra_chain: &str) -> HandLeaf {
        let serial = next_serial();
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        let chain = format!("{}{extra_chain}", cert.pem());
        write_leaf(&self.dir, stem, &chain, &key.serialize_pem(), serial)
    }

    /// A CRL from this CA revoking `serials`, valid from one minute ago for
    /// `valid_secs` (negative: already past its nextUpdate), written to
    /// `<stem>.crl.pem`.
    pub fn crl(&self, stem: &str, serials: &[u64], valid_secs: i64) -> PathBuf {
        let now = time::OffsetDateTime::now_utc();
        let this_update = if valid_secs < 0 {
            now + time::Duration::seconds(valid_secs * 2)
        } else {
            now - time::Duration::minutes(1)
        };
        let params = CertificateRevocationListParams {
            this_update,
            next_update: now + time::Duration::seconds(valid_secs),
            crl_number: SerialNumber::from(next_serial()),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now - time::Duration::minutes(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).expect("CRL");
        let path = self.dir.join(format!("{stem}.crl.pem"));
        std::fs::write(&path, crl.pem().expect("CRL PEM")).expect("write CRL");
        path
    }
}

/// Whether an issuer's certificate is not self-signed (issuer ≠ subject).
fn name_is_intermediate(issuer: &CertifiedIssuer<'static, KeyPair>) -> bool {
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(issuer.der())
        .map(|(_, c)| c.issuer() != c.subject())
        .unwrap_or(false)
}

fn write_leaf(dir: &Path, stem: &str, cert_pem: &str, key_pem: &str, serial: u64) -> HandLeaf {
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, cert_pem).expect("write leaf");
    std::fs::write(&key, key_pem).expect("write key");
    HandLeaf { cert, key, serial }
}

/// A self-signed client certificate (no CA behind it).
pub fn self_signed_leaf(dir: &Path, stem: &str, cn: &str) -> HandLeaf {
    let serial = next_serial();
    let mut params = client_params(cn);
    params.serial_number = Some(SerialNumber::from(serial));
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    write_leaf(dir, stem, &cert.pem(), &key.serialize_pem(), serial)
}

/// An X.509 **v1** client certificate signed by `ca` (its certificate and
/// key files), made with the `openssl` command, which writes v1 when no
/// extensions are asked for (installed with apt-get when missing).
pub fn openssl_v1_leaf(
    dir: &Path,
    stem: &str,
    cn: &str,
    ca_cert: &Path,
    ca_key: &Path,
) -> HandLeaf {
    crate::ensure_tool("openssl", "version", "openssl");
    let key = dir.join(format!("{stem}.key"));
    let csr = dir.join(format!("{stem}.csr"));
    let cert = dir.join(format!("{stem}.pem"));
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl {args:?} failed");
    };
    let p = |path: &Path| path.display().to_string();
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &p(&key),
    ]);
    run(&[
        "req",
        "-new",
        "-key",
        &p(&key),
        "-subj",
        &format!("/CN={cn}"),
        "-out",
        &p(&csr),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(ca_cert),
        "-CAkey",
        &p(ca_key),
        "-days",
        "2",
        "-set_serial",
        "77",
        "-out",
        &p(&cert),
    ]);
    HandLeaf {
        cert,
        key,
        serial: 77,
    }
}
