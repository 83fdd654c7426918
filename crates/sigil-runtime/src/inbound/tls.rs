//! Per-hostname TLS: building each hostname's policy (server certificate,
//! client-certificate verifier, mode) from the manifest, and the server
//! side of a handshake, where SNI selects the policy before the handshake
//! completes.

use crate::config::{ClientCertMode, Findings, HostnameSection, fingerprint};
use crate::state::{CertificateExpiry, HostnamePolicy};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use sigil_pki::client_verifier::{self, ClientVerifier, VerifierConfig};
use sigil_pki::{CertificateDetails, CrlDetails};
use std::collections::HashMap;
use std::path::PathBuf;
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
    /// Most certificates in a client's verified path, trusted CA included.
    pub max_chain_depth: usize,
    /// Refuse client certificates whose issuer has no CRL.
    pub crl_required: bool,
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
fn verifier(spec: &PolicySpec) -> Result<Option<Arc<ClientVerifier>>, String> {
    let mode = match spec.mode {
        ClientCertMode::Off => return Ok(None),
        ClientCertMode::Require => client_verifier::ClientCertMode::Require,
        ClientCertMode::Optional => client_verifier::ClientCertMode::Optional,
    };
    let mut config = VerifierConfig::new(spec.client_cas.clone(), mode);
    config.crls = spec.crls.clone();
    config.max_chain_depth = spec.max_chain_depth;
    config.crl_required = spec.crl_required;
    let verifier = ClientVerifier::with_algorithms(
        config,
        sigil_pki::provider().signature_verification_algorithms,
    )
    .map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(verifier)))
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

/// A hostname policy and what it was built from, for reuse by the next
/// reload when nothing changed.
#[derive(Clone)]
pub struct CachedPolicy {
    /// SHA-256 over the policy's files and settings.
    pub key: String,
    /// The policy.
    pub policy: Arc<HostnamePolicy>,
    /// The server certificate's notAfter (unix seconds).
    pub not_after: i64,
    /// Warnings found when it was built (said again on every reload).
    pub warnings: Vec<String>,
}

/// The policies of the generation being served, by hostname.
#[derive(Clone, Default)]
pub struct PolicyCache(pub HashMap<String, CachedPolicy>);

/// The files a hostname's policy is built from.
fn policy_files(h: &HostnameSection) -> Vec<PathBuf> {
    let mut files = vec![h.cert.clone(), h.key.clone()];
    files.extend(h.client_ca.iter().cloned());
    files.extend(h.crl.iter().cloned());
    files
}

/// The fingerprint of a hostname's files and settings.
fn policy_key(h: &HostnameSection) -> String {
    let settings = format!(
        "{} {:?} {:?} {} {}",
        h.name, h.client_cert, h.max_chain_depth, h.forward_client_cert, h.crl_required
    );
    fingerprint(&settings, &policy_files(h))
}

/// The client CAs of a hostname, each checked to be a CA certificate.
fn load_client_cas(
    h: &HostnameSection,
    item: &str,
    findings: &mut Findings<'_>,
) -> Vec<(CertificateDer<'static>, String)> {
    let mut cas = Vec::new();
    for path in &h.client_ca {
        let Ok(certs) =
            sigil_pki::load_ca_bundle(path).map_err(|e| findings.error(item, e.to_string()))
        else {
            continue;
        };
        for (i, der) in certs.into_iter().enumerate() {
            match CertificateDetails::from_der(der.as_ref()) {
                Ok(d) if d.is_ca => {
                    if let Some(when) = d.out_of_date(sigil_pki::unix_now()) {
                        findings.warn(
                            item,
                            format_args!(
                                "{}: CA certificate #{} ({}) {when}; renew it (OpenSSL, nginx and Python refuse chains to a CA outside its dates)",
                                path.display(),
                                i + 1,
                                d.subject_dn
                            ),
                        );
                    }
                    cas.push((der, d.subject_dn))
                }
                Ok(d) => findings.error(
                    item,
                    format!(
                        "{}: certificate #{} ({}) is a leaf certificate, not a CA; client_ca lists the CAs that issue client certificates",
                        path.display(),
                        i + 1,
                        d.subject_dn
                    ),
                ),
                Err(e) => findings.error(item, e.to_string()),
            }
        }
    }
    cas
}

/// The CRLs of a hostname, each checked to come from one of its client CAs.
fn load_crls(
    h: &HostnameSection,
    item: &str,
    ca_subjects: &[&str],
    findings: &mut Findings<'_>,
) -> Vec<CertificateRevocationListDer<'static>> {
    let mut crls = Vec::new();
    let now = sigil_pki::unix_now();
    for path in &h.crl {
        let Ok(list) = sigil_pki::load_crls(path).map_err(|e| findings.error(item, e.to_string()))
        else {
            continue;
        };
        for crl in list {
            let Ok(d) =
                CrlDetails::from_der(crl.as_ref()).map_err(|e| findings.error(item, e.to_string()))
            else {
                continue;
            };
            if !ca_subjects.contains(&d.issuer_dn.as_str()) {
                findings.error(
                    item,
                    format!(
                        "{}: the CRL is issued by {}, which is not one of this hostname's client CAs ({}); a CRL applies only to the certificates of its issuer",
                        path.display(),
                        d.issuer_dn,
                        ca_subjects.join("; ")
                    ),
                );
            }
            if d.next_update.is_some_and(|t| t < now) {
                findings.warn(
                    item,
                    format_args!(
                        "{}: the CRL's nextUpdate ({}) has passed; certificates of {} are refused (\"CRL has expired\") until it is replaced",
                        path.display(),
                        sigil_pki::format_rfc3339(d.next_update.unwrap_or_default()),
                        d.issuer_dn
                    ),
                );
            }
            crls.push(crl);
        }
    }
    crls
}

/// Settings that have no effect with `client_cert = "off"`. `client_ca`
/// without `client_cert` is the one to catch: whoever lists the CA and
/// forgets the mode believes the hostname requires mutual TLS.
fn warn_of_settings_that_do_nothing(h: &HostnameSection, item: &str, findings: &mut Findings<'_>) {
    if h.client_cert != ClientCertMode::Off {
        return;
    }
    if !h.client_ca.is_empty() {
        findings.warn(
            item,
            "client_ca is set but client_cert = \"off\" (the default), so no client certificate is asked for and anyone may connect; set client_cert = \"require\" (or \"optional\"), or remove client_ca",
        );
    }
    if h.forward_client_cert {
        findings.warn(
            item,
            "forward_client_cert = true but client_cert = \"off\": there is no client certificate to forward; set client_cert = \"require\" or \"optional\"",
        );
    }
}

/// Load one `[[hostnames]]` entry's files and build its policy.
fn load_policy(
    h: &HostnameSection,
    key: String,
    findings: &mut Findings<'_>,
) -> Option<CachedPolicy> {
    let item = format!("hostname \"{}\"", h.name);
    let warnings_before = findings.warnings.len();
    let server = match sigil_pki::load_certified_key(&h.cert, &h.key, sigil_pki::unix_now()) {
        Ok(l) => l,
        Err(e) => {
            findings.error(&item, e.to_string());
            return None;
        }
    };
    let name = h.name.to_ascii_lowercase();
    if !server.leaf_details.covers_hostname(&name) {
        findings.warn(
            &item,
            format_args!(
                "{}: the server certificate does not name {name} among its DNS names ({}); clients will refuse it",
                h.cert.display(),
                server.leaf_details.dns_sans.join(", ")
            ),
        );
    }
    warn_of_settings_that_do_nothing(h, &item, findings);
    let cas = load_client_cas(h, &item, findings);
    let subjects: Vec<&str> = cas.iter().map(|(_, s)| s.as_str()).collect();
    let crls = load_crls(h, &item, &subjects, findings);
    let spec = PolicySpec {
        name,
        server_cert: server.certified_key.clone(),
        client_cas: cas.into_iter().map(|(der, _)| der).collect(),
        crls,
        mode: h.client_cert,
        max_chain_depth: h
            .max_chain_depth
            .map_or(client_verifier::DEFAULT_MAX_CHAIN_DEPTH, usize::from),
        crl_required: h.crl_required,
        forward_client_cert: h.forward_client_cert,
    };
    let policy = build_policy(spec)
        .map_err(|e| findings.error(&item, e))
        .ok()?;
    Some(CachedPolicy {
        key,
        policy: Arc::new(policy),
        not_after: server.validity.not_after,
        warnings: findings.warnings[warnings_before..].to_vec(),
    })
}

/// Every `[[hostnames]]` policy of the manifest being loaded; a policy whose
/// files and settings did not change since `previous` is carried over
/// without being loaded again. Returns the policies and the next cache.
pub fn build_policies(
    findings: &mut Findings<'_>,
    expiries: &mut Vec<CertificateExpiry>,
    previous: &PolicyCache,
) -> (Vec<Arc<HostnamePolicy>>, PolicyCache) {
    let manifest = findings.manifest();
    let mut next = PolicyCache::default();
    let mut policies = Vec::with_capacity(manifest.manifest.hostnames.len());
    for h in &manifest.manifest.hostnames {
        for f in policy_files(h) {
            findings.read(&f);
        }
        let key = policy_key(h);
        let cached = match previous.0.get(&h.name) {
            Some(c) if c.key == key => {
                findings.warnings.extend(c.warnings.iter().cloned());
                Some(c.clone())
            }
            _ => load_policy(h, key, findings),
        };
        let Some(cached) = cached else { continue };
        expiries.push(CertificateExpiry {
            label: format!("hostname:{}", h.name),
            not_after: cached.not_after,
        });
        policies.push(cached.policy.clone());
        next.0.insert(h.name.clone(), cached);
    }
    (policies, next)
}
