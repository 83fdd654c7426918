//! Structural checks of a parsed manifest: names, references, addresses.
//! Files are not opened here (see `config` for that).

use super::{ClientCertMode, IDENTITY_CERTIFICATE, LoadedManifest, ManifestError};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// An origin a worker may call, from `allowed_outbound_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    /// `http`, `https`, or `None` for any.
    pub scheme: Option<String>,
    /// Host (lower case), `*.suffix` for subdomains, or `*` for any.
    pub host: String,
    /// Port, or `None` for the scheme's default (any port when the host is `*`).
    pub port: Option<u16>,
    /// Whether any port matches (`:*`).
    pub any_port: bool,
}

impl AllowedOrigin {
    /// Whether a request to `scheme://host:port` is allowed by this entry.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if let Some(s) = &self.scheme
            && s != scheme
        {
            return false;
        }
        let host_ok = if self.host == "*" {
            true
        } else if let Some(suffix) = self.host.strip_prefix("*.") {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        } else {
            self.host.eq_ignore_ascii_case(host)
        };
        if !host_ok {
            return false;
        }
        if self.any_port || (self.host == "*" && self.port.is_none()) {
            return true;
        }
        let default_port = match scheme {
            "http" => 80,
            _ => 443,
        };
        self.port.unwrap_or(default_port) == port
    }
}

/// Parse one `allowed_outbound_hosts` entry.
pub fn parse_allowed_origin(entry: &str) -> Result<AllowedOrigin, String> {
    if entry == "*" {
        return Ok(AllowedOrigin {
            scheme: None,
            host: "*".into(),
            port: None,
            any_port: true,
        });
    }
    let (scheme, rest) = entry.split_once("://").ok_or_else(|| {
        format!("\"{entry}\" needs a scheme: write \"https://{entry}\" (or \"*://{entry}\")")
    })?;
    let scheme = match scheme {
        "http" | "https" => Some(scheme.to_string()),
        "*" => None,
        other => {
            return Err(format!(
                "\"{entry}\": scheme \"{other}\" is not http, https or *"
            ));
        }
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(format!(
            "\"{entry}\": give an origin (scheme://host[:port]), not a path"
        ));
    }
    let (host, port, any_port) = match rest.rsplit_once(':') {
        Some((h, "*")) => (h, None, true),
        Some((h, p)) if !h.ends_with(']') || p.parse::<u16>().is_ok() => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("\"{entry}\": port \"{p}\" is not a number or *"))?;
            (h, Some(port), false)
        }
        _ => (rest, None, false),
    };
    if host.is_empty() {
        return Err(format!("\"{entry}\": the host is empty"));
    }
    Ok(AllowedOrigin {
        scheme,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
        port,
        any_port,
    })
}

/// A DNS hostname as used for SNI: labels of letters, digits and hyphens.
pub(crate) fn is_valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A worker or binding name: it appears in SPIFFE IDs, metrics and logs.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name != "."
        && name != ".."
}

pub(super) fn validate(m: &LoadedManifest) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    let man = &m.manifest;
    let mut err = |item: String, message: String| errors.push(m.error(item, message));

    // [server]
    for (key, value) in [
        ("http", &man.server.http),
        ("https", &man.server.https),
        ("admin", &man.server.admin),
    ] {
        if let Some(addr) = value
            && addr.parse::<SocketAddr>().is_err()
        {
            err(
                format!("server.{key}"),
                format!(
                    "\"{addr}\" is not a listen address; write it as IP:PORT, e.g. \"127.0.0.1:8443\""
                ),
            );
        }
    }
    if man.server.http.is_none() && man.server.https.is_none() {
        err(
            "server".into(),
            "no listener: set server.http and/or server.https (e.g. https = \"127.0.0.1:8443\")"
                .into(),
        );
    }
    if man.server.https.is_some() && man.hostnames.is_empty() {
        err(
            "server.https".into(),
            "an HTTPS listener needs at least one [[hostnames]] entry with its server certificate"
                .into(),
        );
    }
    for problem in crate::limits::check_overrides(&man.limits) {
        err("limits".into(), problem);
    }

    // [identity]
    if let Some(id) = &man.identity {
        if let Err(e) = crate::certs::spiffe::validate_trust_domain(&id.trust_domain) {
            err("identity.trust_domain".into(), e.to_string());
        }
        if id.ttl_secs == Some(0) {
            err(
                "identity.ttl_secs".into(),
                "must be at least 1 second (default 3600)".into(),
            );
        }
    }

    // [[certificates]]
    let mut certificates = HashSet::new();
    for c in &man.certificates {
        let item = format!("certificate \"{}\"", c.name);
        if !is_valid_name(&c.name) {
            err(
                item.clone(),
                "name must be letters, digits, '-', '_' or '.'".into(),
            );
        }
        if c.name == IDENTITY_CERTIFICATE {
            err(
                item.clone(),
                format!(
                    "\"{IDENTITY_CERTIFICATE}\" is reserved for each worker's own Sigil identity; rename this certificate"
                ),
            );
        }
        if !certificates.insert(c.name.as_str()) {
            err(
                item,
                "declared twice; certificate names must be unique".into(),
            );
        }
    }

    // [[hostnames]]
    let mut hostnames = HashSet::new();
    for h in &man.hostnames {
        let item = format!("hostname \"{}\"", h.name);
        if !is_valid_hostname(&h.name) {
            err(
                item.clone(),
                "not a valid DNS name (letters, digits, '-' and dots)".into(),
            );
        }
        if !hostnames.insert(h.name.to_ascii_lowercase()) {
            err(
                item.clone(),
                "declared twice; each hostname has exactly one policy".into(),
            );
        }
        if h.client_cert != ClientCertMode::Off && h.client_ca.is_empty() {
            err(
                item.clone(),
                "client_cert is require/optional but client_ca is empty; list the CA bundle(s) that issue this hostname's client certificates".into(),
            );
        }
        if h.client_cert == ClientCertMode::Off && !h.crl.is_empty() {
            err(
                item.clone(),
                "crl is set but client_cert = \"off\"; CRLs only apply to client certificates"
                    .into(),
            );
        }
        if h.max_chain_depth == Some(0) {
            err(item, "max_chain_depth must be at least 1".into());
        }
    }
    if let Some(d) = &man.server.default_hostname
        && !hostnames.contains(&d.to_ascii_lowercase())
    {
        err(
            "server.default_hostname".into(),
            format!("\"{d}\" is not declared under [[hostnames]]"),
        );
    }

    // [[workers]]
    let mut workers = HashSet::new();
    for w in &man.workers {
        let item = format!("worker \"{}\"", w.name);
        if !is_valid_name(&w.name) {
            err(
                item.clone(),
                "name must be letters, digits, '-', '_' or '.'".into(),
            );
        }
        if !workers.insert(w.name.as_str()) {
            err(
                item.clone(),
                "declared twice; worker names must be unique".into(),
            );
        }
        let identity_on = man.identity.is_some() && w.identity != Some(false);
        let mut bindings = HashMap::new();
        for b in &w.mtls_certificates {
            if !is_valid_name(&b.binding) {
                err(
                    item.clone(),
                    format!(
                        "binding \"{}\": name must be letters, digits, '-', '_' or '.'",
                        b.binding
                    ),
                );
            }
            if bindings
                .insert(b.binding.as_str(), b.certificate.as_str())
                .is_some()
            {
                err(
                    item.clone(),
                    format!("binding \"{}\" declared twice", b.binding),
                );
            }
            if b.certificate == IDENTITY_CERTIFICATE {
                if !identity_on {
                    err(
                        item.clone(),
                        format!(
                            "binding \"{}\" uses the worker's identity, but {}",
                            b.binding,
                            if man.identity.is_none() {
                                "no [identity] section is configured"
                            } else {
                                "this worker sets identity = false"
                            }
                        ),
                    );
                }
            } else if !certificates.contains(b.certificate.as_str()) {
                err(
                    item.clone(),
                    format!(
                        "binding \"{}\" names certificate \"{}\", which is not declared; add it under [[certificates]] or fix the name",
                        b.binding, b.certificate
                    ),
                );
            }
        }
        if let Some(d) = &w.default_binding
            && !bindings.contains_key(d.as_str())
        {
            err(
                item.clone(),
                format!(
                    "default_binding \"{d}\" is not one of this worker's [[workers.mtls_certificates]] bindings"
                ),
            );
        }
        for entry in &w.allowed_outbound_hosts {
            if let Err(e) = parse_allowed_origin(entry) {
                err(item.clone(), format!("allowed_outbound_hosts: {e}"));
            }
        }
        for problem in crate::limits::check_overrides(&w.limits) {
            err(item.clone(), format!("limits: {problem}"));
        }
    }

    // [[routes]]
    let mut seen_routes = HashSet::new();
    for r in &man.routes {
        let host = r.host.as_deref().unwrap_or("*");
        let path = r.path.as_deref().unwrap_or("/");
        let item = format!("route {host}{path}");
        if !workers.contains(r.worker.as_str()) {
            err(
                item.clone(),
                format!(
                    "routes to worker \"{}\", which is not declared under [[workers]]",
                    r.worker
                ),
            );
        }
        if host != "*" && !is_valid_hostname(host) && host.parse::<std::net::IpAddr>().is_err() {
            err(
                item.clone(),
                "host must be a DNS name, an IP address or \"*\"".into(),
            );
        }
        if !path.starts_with('/') {
            err(item.clone(), "path must start with '/'".into());
        }
        let key = (
            host.to_ascii_lowercase(),
            path.trim_end_matches('/').to_string(),
        );
        if !seen_routes.insert(key) {
            err(
                item,
                "declared twice; each host and path prefix routes to one worker".into(),
            );
        }
    }
    if man.routes.is_empty() && !man.workers.is_empty() {
        err(
            "routes".into(),
            "no [[routes]]: add one, e.g. [[routes]] host = \"*\" path = \"/\" worker = \"hello\""
                .into(),
        );
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_origins() {
        let o = parse_allowed_origin("https://api.example:8443").unwrap();
        assert!(o.allows("https", "api.example", 8443));
        assert!(!o.allows("https", "api.example", 443));
        assert!(!o.allows("http", "api.example", 8443));
        let o = parse_allowed_origin("https://*.example").unwrap();
        assert!(o.allows("https", "a.example", 443));
        assert!(!o.allows("https", "example", 443));
        assert!(!o.allows("https", "aexample", 443));
        let o = parse_allowed_origin("*://127.0.0.1:*").unwrap();
        assert!(o.allows("http", "127.0.0.1", 1234));
        assert!(parse_allowed_origin("*").unwrap().allows("https", "x", 1));
        assert!(parse_allowed_origin("api.example").is_err());
        assert!(parse_allowed_origin("ftp://x").is_err());
    }

    #[test]
    fn hostnames() {
        assert!(is_valid_hostname("pay.alpha.example"));
        assert!(!is_valid_hostname("bad_host"));
        assert!(!is_valid_hostname("a..b"));
    }
}
