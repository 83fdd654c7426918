//! Who is calling, and may they write?
//!
//! A [`Caller`] is computed once per TLS connection from the verified client
//! certificate; a [`Policy`] decides from it whether the caller may append
//! records.

use std::fmt;
use std::str::FromStr;

use rustls_pki_types::CertificateDer;
use sigil_origin::{
    ClientCertSummary, IdentityError, IdentityVerifier, WorkerIdentity, normalise_serial,
    parse_worker_spiffe_id,
};

/// One `--writer` rule: who may `POST /records`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterRule {
    /// A Sigil worker identity, `spiffe://<trust-domain>/worker/<name>`.
    Spiffe(WorkerIdentity),
    /// A bring-your-own certificate whose subject CN equals this name
    /// (`cn:NAME`). Any CA given with `--client-ca` can issue such a name.
    CommonName(String),
    /// A certificate with this serial number (`serial:HEX`), normalised with
    /// [`normalise_serial`]. Serials are unique only per issuer.
    Serial(String),
}

impl FromStr for WriterRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("spiffe://") {
            return parse_worker_spiffe_id(s)
                .map(WriterRule::Spiffe)
                .map_err(|e| format!("writer {s:?}: {e}"));
        }
        if let Some(name) = s.strip_prefix("cn:") {
            if name.is_empty() {
                return Err("writer \"cn:\" needs a common name, e.g. cn:writer".into());
            }
            return Ok(WriterRule::CommonName(name.to_owned()));
        }
        if let Some(hex) = s.strip_prefix("serial:") {
            let ok = !hex.is_empty()
                && hex.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
                && hex.chars().any(|c| c.is_ascii_hexdigit());
            if !ok {
                return Err(format!(
                    "writer {s:?}: serial must be hexadecimal (colons allowed), e.g. serial:0A1B2C"
                ));
            }
            return Ok(WriterRule::Serial(normalise_serial(hex)));
        }
        Err(format!(
            "writer {s:?}: expected spiffe://<trust-domain>/worker/<name>, cn:NAME or serial:HEX"
        ))
    }
}

impl fmt::Display for WriterRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriterRule::Spiffe(id) => write!(f, "{id}"),
            WriterRule::CommonName(cn) => write!(f, "cn:{cn}"),
            WriterRule::Serial(serial) => write!(f, "serial:{serial}"),
        }
    }
}

/// The caller on one TLS connection, from its verified client certificate.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The Sigil worker identity, or why the certificate does not carry one
    /// for this origin's trust domain.
    pub identity: Result<WorkerIdentity, IdentityError>,
    /// Subject, issuer, serial and CN of the leaf certificate, if one was
    /// presented and could be parsed.
    pub certificate: Option<ClientCertSummary>,
}

impl Caller {
    /// Describe the caller from the peer certificates rustls verified
    /// (leaf first).
    pub fn from_peer_certificates(
        peer: Option<&[CertificateDer<'_>]>,
        verifier: &IdentityVerifier,
    ) -> Self {
        let peer = peer.unwrap_or_default();
        Caller {
            identity: verifier.identify(peer),
            certificate: peer
                .first()
                .and_then(|leaf| ClientCertSummary::from_der(leaf.as_ref()).ok()),
        }
    }

    /// The SPIFFE ID, if the caller is a Sigil worker of our trust domain.
    pub fn spiffe_id(&self) -> Option<&str> {
        self.identity.as_ref().ok().map(|id| id.spiffe_id.as_str())
    }

    /// The worker name, if the caller is a Sigil worker of our trust domain.
    pub fn worker(&self) -> Option<&str> {
        self.identity.as_ref().ok().map(|id| id.worker.as_str())
    }
}

impl fmt::Display for Caller {
    /// A one-line description naming the caller, for logs and 403 messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.identity, &self.certificate) {
            (Ok(id), _) => write!(f, "{id}"),
            (Err(_), Some(cert)) => write!(
                f,
                "certificate subject \"{}\" issuer \"{}\" serial {}",
                cert.subject_dn, cert.issuer_dn, cert.serial_hex
            ),
            (Err(e), None) => write!(f, "unidentified caller ({e})"),
        }
    }
}

/// The write policy: a list of [`WriterRule`]s; reading is open to every
/// verified caller.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    writers: Vec<WriterRule>,
}

impl Policy {
    /// A policy allowing exactly the given writers.
    pub fn new(writers: Vec<WriterRule>) -> Self {
        Policy { writers }
    }

    /// The configured writer rules.
    pub fn writers(&self) -> &[WriterRule] {
        &self.writers
    }

    /// The rule that lets `caller` write, or `None` if no rule does.
    pub fn writer_rule(&self, caller: &Caller) -> Option<&WriterRule> {
        self.writers.iter().find(|rule| match rule {
            WriterRule::Spiffe(id) => caller.spiffe_id() == Some(id.spiffe_id.as_str()),
            WriterRule::CommonName(cn) => {
                caller
                    .certificate
                    .as_ref()
                    .and_then(|c| c.common_name.as_deref())
                    == Some(cn.as_str())
            }
            WriterRule::Serial(serial) => caller
                .certificate
                .as_ref()
                .is_some_and(|c| c.serial_matches(serial)),
        })
    }

    /// Whether `caller` may append records.
    pub fn may_write(&self, caller: &Caller) -> bool {
        self.writer_rule(caller).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(spiffe: Option<&str>, cn: Option<&str>, serial: &str) -> Caller {
        Caller {
            identity: match spiffe {
                Some(id) => Ok(parse_worker_spiffe_id(id).expect("valid id")),
                None => Err(IdentityError::NoUriSan),
            },
            certificate: Some(ClientCertSummary {
                subject_dn: cn.map(|c| format!("CN={c}")).unwrap_or_default(),
                issuer_dn: "CN=Test CA".into(),
                serial_hex: serial.into(),
                common_name: cn.map(str::to_owned),
            }),
        }
    }

    #[test]
    fn parses_writer_rules() {
        assert_eq!(
            "cn:writer".parse::<WriterRule>(),
            Ok(WriterRule::CommonName("writer".into()))
        );
        assert_eq!(
            "serial:0a:bc".parse::<WriterRule>(),
            Ok(WriterRule::Serial("ABC".into()))
        );
        assert!(matches!(
            "spiffe://sigil.local/worker/writer".parse::<WriterRule>(),
            Ok(WriterRule::Spiffe(_))
        ));
        assert!(
            "spiffe://sigil.local/svc/writer"
                .parse::<WriterRule>()
                .is_err()
        );
        assert!("writer".parse::<WriterRule>().is_err());
        assert!("cn:".parse::<WriterRule>().is_err());
        assert!("serial:xyz".parse::<WriterRule>().is_err());
    }

    #[test]
    fn policy_matches_each_rule_kind() {
        let policy = Policy::new(vec![
            "spiffe://sigil.local/worker/writer".parse().expect("rule"),
            "cn:byo-writer".parse().expect("rule"),
            "serial:00FF".parse().expect("rule"),
        ]);
        assert!(policy.may_write(&caller(
            Some("spiffe://sigil.local/worker/writer"),
            Some("writer"),
            "01"
        )));
        assert!(!policy.may_write(&caller(
            Some("spiffe://sigil.local/worker/reader"),
            Some("reader"),
            "02"
        )));
        assert!(policy.may_write(&caller(None, Some("byo-writer"), "03")));
        assert!(policy.may_write(&caller(None, Some("someone"), "FF")));
        assert!(!policy.may_write(&caller(None, Some("someone"), "FE")));
    }
}
