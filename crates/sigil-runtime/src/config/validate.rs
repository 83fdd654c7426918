//! Structural checks of a parsed manifest: names, references, addresses.
//! Files are not opened here; the generation builder loads them.
//!
//! One function per manifest section; each appends what it finds to a
//! [`Problems`] list, so every problem is reported at once.

use super::connections::check_connection_settings;
use super::limits::check_overrides;
use super::model::{
    CertificateSection, HostnameSection, Manifest, RouteSection, ServerSection, WorkerSection,
};
use super::origins::parse_allowed_origin;
use super::{ClientCertMode, IDENTITY_CERTIFICATE, LoadedManifest, ManifestError};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

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

/// Why `name` is not a valid DNS name, in words that say the fix.
fn hostname_problem(name: &str) -> String {
    if let Some(bare) = name.strip_suffix('.')
        && is_valid_hostname(bare)
    {
        return format!(
            "not a valid DNS name: drop the trailing dot (write \"{bare}\"; requests for \"{name}\" are matched to it)"
        );
    }
    if name.len() > 253 {
        return format!(
            "not a valid DNS name: it is {} characters, and a DNS name has at most 253",
            name.len()
        );
    }
    if let Some(label) = name.split('.').find(|l| l.len() > 63) {
        return format!(
            "not a valid DNS name: its label \"{label}\" is {} characters, and a label has at most 63",
            label.len()
        );
    }
    "not a valid DNS name (letters, digits, '-' and dots; no empty label, no label starting or ending with '-')".into()
}

/// What is wrong with a worker, certificate or binding name (it appears in
/// SPIFFE IDs, metrics and logs), if anything.
fn name_problem(name: &str) -> Option<&'static str> {
    if name == "." || name == ".." {
        return Some(
            "\".\" and \"..\" cannot be names: a worker name is a path segment of its SPIFFE ID, where they mean this and the parent directory",
        );
    }
    let allowed = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if name.is_empty() || name.len() > 128 || !allowed {
        return Some("name must be 1 to 128 letters, digits, '-', '_' or '.'");
    }
    None
}

/// Problems found so far, each naming its item.
struct Problems<'a> {
    manifest: &'a LoadedManifest,
    found: Vec<ManifestError>,
}

impl Problems<'_> {
    fn add(&mut self, item: impl Into<String>, message: impl Into<String>) {
        self.found.push(self.manifest.error(item, message));
    }
}

/// Every structural problem of `m`, in manifest order.
pub(super) fn validate(m: &LoadedManifest) -> Vec<ManifestError> {
    let mut p = Problems {
        manifest: m,
        found: Vec::new(),
    };
    let man = &m.manifest;
    server(&mut p, &man.server, man);
    for problem in check_overrides(&man.limits) {
        p.add("limits", problem);
    }
    identity(&mut p, man);
    let certificates = certificates(&mut p, &man.certificates);
    hostnames(
        &mut p,
        &man.hostnames,
        man.server.default_hostname.as_deref(),
    );
    let workers = workers(&mut p, man, &certificates);
    routes(&mut p, &man.routes, &workers);
    if man.routes.is_empty() && !man.workers.is_empty() {
        p.add(
            "routes",
            "no [[routes]]: add one, e.g. [[routes]] host = \"*\" path = \"/\" worker = \"hello\"",
        );
    }
    p.found
}

fn server(p: &mut Problems<'_>, server: &ServerSection, man: &Manifest) {
    for (key, value) in [
        ("http", &server.http),
        ("https", &server.https),
        ("admin", &server.admin),
    ] {
        if let Some(addr) = value
            && addr.parse::<SocketAddr>().is_err()
        {
            p.add(
                format!("server.{key}"),
                format!(
                    "\"{addr}\" is not a listen address; write it as IP:PORT, e.g. \"127.0.0.1:8443\""
                ),
            );
        }
    }
    if server.http.is_none() && server.https.is_none() {
        p.add(
            "server",
            "no listener: set server.http and/or server.https (e.g. https = \"127.0.0.1:8443\")",
        );
    }
    if server.https.is_some() && man.hostnames.is_empty() {
        p.add(
            "server.https",
            "an HTTPS listener needs at least one [[hostnames]] entry with its server certificate",
        );
    }
    for (key, problem) in check_connection_settings(server) {
        p.add(format!("server.{key}"), problem);
    }
    compile_limits(p, server);
    shared_addresses(p, server);
    if server.worker_share.is_some_and(|s| !(s > 0.0 && s <= 1.0)) {
        p.add(
            "server.worker_share",
            "must be a fraction above 0 and at most 1 (e.g. 0.5: a worker holds at most half of max_instances)",
        );
    }
    if server.max_instances == Some(0) {
        p.add("server.max_instances", "must be at least 1 (default 1000)");
    }
    if server.max_hops == Some(0) {
        p.add("server.max_hops", "must be at least 1 (default 16)");
    }
}

/// Limits on module size and compilation must leave room to compile anything,
/// and stay within what a machine and its clock can mean.
fn compile_limits(p: &mut Problems<'_>, server: &ServerSection) {
    for (key, value, most, unit) in [
        (
            "max_module_mb",
            server.max_module_mb,
            MAX_MODULE_MB,
            "MiB (4 GiB)",
        ),
        (
            "max_module_functions",
            server.max_module_functions.map(u64::from),
            u64::from(u32::MAX),
            "functions",
        ),
        (
            "compile_memory_mb",
            server.compile_memory_mb,
            MAX_COMPILE_MEMORY_MB,
            "MiB (1 TiB)",
        ),
        (
            "compile_timeout_secs",
            server.compile_timeout_secs,
            MAX_COMPILE_TIMEOUT_SECS,
            "seconds (one day)",
        ),
    ] {
        if value == Some(0) {
            p.add(
                format!("server.{key}"),
                "must be at least 1 (see docs/manifest.md for the default)",
            );
        } else if let Some(v) = value.filter(|v| *v > most) {
            p.add(
                format!("server.{key}"),
                format!("must be between 1 and {most} {unit}, not {v}"),
            );
        }
    }
}

/// The largest `server.max_module_mb`: wasm modules are at most 4 GiB.
const MAX_MODULE_MB: u64 = 4096;
/// The largest `server.compile_memory_mb` (1 TiB).
const MAX_COMPILE_MEMORY_MB: u64 = 1 << 20;
/// The largest `server.compile_timeout_secs` (one day).
const MAX_COMPILE_TIMEOUT_SECS: u64 = 86_400;
/// The longest `identity.ttl_secs`: worker certificates are short-lived; a
/// year is the most that makes sense (the default is an hour).
pub const MAX_IDENTITY_TTL_SECS: u64 = 365 * 86_400;

/// Two listeners on one address: the second cannot bind at start.
fn shared_addresses(p: &mut Problems<'_>, server: &ServerSection) {
    let listeners = [
        ("http", &server.http),
        ("https", &server.https),
        ("admin", &server.admin),
    ];
    let parsed: Vec<(&str, SocketAddr)> = listeners
        .iter()
        .filter_map(|(key, v)| Some((*key, v.as_deref()?.parse().ok()?)))
        .collect();
    for (i, (key, addr)) in parsed.iter().enumerate() {
        for (earlier, other) in &parsed[..i] {
            let same_port = addr.port() == other.port() && addr.port() != 0;
            let overlap = addr.ip() == other.ip()
                || addr.ip().is_unspecified()
                || other.ip().is_unspecified();
            if same_port && overlap {
                p.add(
                    format!("server.{key}"),
                    format!(
                        "{addr} is also server.{earlier} ({other}); each listener needs its own address"
                    ),
                );
            }
        }
    }
}

fn identity(p: &mut Problems<'_>, man: &Manifest) {
    let Some(id) = &man.identity else { return };
    if let Err(e) = sigil_pki::validate_trust_domain(&id.trust_domain) {
        p.add("identity.trust_domain", e.to_string());
    }
    match id.ttl_secs {
        Some(0) => p.add(
            "identity.ttl_secs",
            "must be at least 1 second (default 3600)",
        ),
        Some(ttl) if ttl > MAX_IDENTITY_TTL_SECS => p.add(
            "identity.ttl_secs",
            format!(
                "must be between 1 and {MAX_IDENTITY_TTL_SECS} seconds (a year; worker certificates are short-lived, default 3600), not {ttl}"
            ),
        ),
        _ => {}
    }
}

/// Checks `[[certificates]]`; returns the declared names.
fn certificates<'m>(p: &mut Problems<'_>, list: &'m [CertificateSection]) -> HashSet<&'m str> {
    let mut names = HashSet::new();
    for c in list {
        let item = format!("certificate \"{}\"", c.name);
        if let Some(problem) = name_problem(&c.name) {
            p.add(&item, problem);
        }
        if c.name == IDENTITY_CERTIFICATE {
            p.add(
                &item,
                format!(
                    "\"{IDENTITY_CERTIFICATE}\" is reserved for each worker's own Sigil identity; rename this certificate"
                ),
            );
        }
        if !names.insert(c.name.as_str()) {
            p.add(&item, "declared twice; certificate names must be unique");
        }
    }
    names
}

fn hostnames(p: &mut Problems<'_>, list: &[HostnameSection], default: Option<&str>) {
    let mut names = HashSet::new();
    for h in list {
        let item = format!("hostname \"{}\"", h.name);
        if !is_valid_hostname(&h.name) {
            p.add(&item, hostname_problem(&h.name));
        }
        if !names.insert(h.name.to_ascii_lowercase()) {
            p.add(
                &item,
                "declared twice; each hostname has exactly one policy",
            );
        }
        if h.client_cert != ClientCertMode::Off && h.client_ca.is_empty() {
            p.add(
                &item,
                "client_cert is require/optional but client_ca is empty; list the CA bundle(s) that issue this hostname's client certificates",
            );
        }
        if h.client_cert == ClientCertMode::Off && !h.crl.is_empty() {
            p.add(
                &item,
                "crl is set but client_cert = \"off\"; CRLs only apply to client certificates",
            );
        }
        if h.max_chain_depth.is_some_and(|d| d < 2) {
            p.add(
                &item,
                "max_chain_depth counts the verified path (leaf, intermediates and the trusted CA), so it must be at least 2",
            );
        }
        if h.crl_required && h.crl.is_empty() {
            p.add(
                &item,
                "crl_required = true but no crl is listed; list the CRL of each issuer under crl",
            );
        }
    }
    if let Some(d) = default
        && !names.contains(&d.to_ascii_lowercase())
    {
        p.add(
            "server.default_hostname",
            format!("\"{d}\" is not declared under [[hostnames]]"),
        );
    }
}

/// Checks `[[workers]]`; returns the declared names.
fn workers<'m>(
    p: &mut Problems<'_>,
    man: &'m Manifest,
    certificates: &HashSet<&str>,
) -> HashSet<&'m str> {
    let mut names = HashSet::new();
    let mut folded: HashMap<String, &str> = HashMap::new();
    for w in &man.workers {
        let item = format!("worker \"{}\"", w.name);
        if let Some(problem) = name_problem(&w.name) {
            p.add(&item, problem);
        }
        if !names.insert(w.name.as_str()) {
            p.add(&item, "declared twice; worker names must be unique");
        } else if let Some(other) = folded.insert(w.name.to_ascii_lowercase(), &w.name) {
            p.add(
                &item,
                format!(
                    "differs from worker \"{other}\" only in case; their identities (SPIFFE IDs, metrics, logs) would look alike: rename one"
                ),
            );
        }
        bindings(p, &item, w, man, certificates);
        for entry in &w.allowed_outbound_hosts {
            if let Err(e) = parse_allowed_origin(entry) {
                p.add(&item, format!("allowed_outbound_hosts: {e}"));
            }
        }
        for problem in check_overrides(&w.limits) {
            p.add(&item, format!("limits: {problem}"));
        }
        if let Some(problem) = w.build.as_ref().and_then(|b| b.problem()) {
            p.add(&item, problem);
        }
        if w.instance_reuse == Some(0) {
            p.add(
                &item,
                "instance_reuse must be at least 1 (1: a fresh instance per request)",
            );
        }
    }
    names
}

/// Checks one worker's `[[workers.mtls_certificates]]` and `default_binding`.
fn bindings(
    p: &mut Problems<'_>,
    item: &str,
    w: &WorkerSection,
    man: &Manifest,
    certificates: &HashSet<&str>,
) {
    let identity_on = man.identity.is_some() && w.identity != Some(false);
    let mut bindings = HashMap::new();
    for b in &w.mtls_certificates {
        if let Some(problem) = name_problem(&b.binding) {
            p.add(item, format!("binding \"{}\": {problem}", b.binding));
        }
        if b.binding == "none" {
            p.add(
                item,
                "binding \"none\": the name is reserved (`sigil-binding: none` asks for no client certificate); choose another name".to_string(),
            );
        }
        if bindings
            .insert(b.binding.as_str(), b.certificate.as_str())
            .is_some()
        {
            p.add(item, format!("binding \"{}\" declared twice", b.binding));
        }
        if b.certificate == IDENTITY_CERTIFICATE {
            if !identity_on {
                let why = if man.identity.is_none() {
                    "no [identity] section is configured"
                } else {
                    "this worker sets identity = false"
                };
                p.add(
                    item,
                    format!(
                        "binding \"{}\" uses the worker's identity, but {why}",
                        b.binding
                    ),
                );
            }
        } else if !certificates.contains(b.certificate.as_str()) {
            p.add(
                item,
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
        p.add(
            item,
            format!(
                "default_binding \"{d}\" is not one of this worker's [[workers.mtls_certificates]] bindings"
            ),
        );
    }
}

/// Why a route `path` could never match a request, if it could not: a
/// request's path holds no query, fragment, space or raw non-ASCII
/// character, and routes match it normalised (see `route_path`).
fn route_path_problem(path: &str) -> Option<String> {
    if let Some(c) = path
        .chars()
        .find(|c| matches!(c, '?' | '#') || !c.is_ascii_graphic())
    {
        let what = match c {
            '?' => "a query ('?'): routes match the path only".to_string(),
            '#' => "a fragment ('#'): clients never send one".to_string(),
            c => format!("{c:?}: a request path holds only visible ASCII (percent-encode it)"),
        };
        return Some(format!("path holds {what}; it could never match"));
    }
    let normal = crate::route_path::route_path(path);
    let trimmed = |p: &str| p.trim_end_matches('/').to_string();
    if trimmed(&normal) != trimmed(path) {
        return Some(format!(
            "routes match the normalised path (no '//', '.' or '..' segments, unreserved characters not percent-encoded): write \"{normal}\""
        ));
    }
    None
}

fn routes(p: &mut Problems<'_>, list: &[RouteSection], workers: &HashSet<&str>) {
    let mut seen = HashSet::new();
    for r in list {
        let host = r.host.as_deref().unwrap_or("*");
        let path = r.path.as_deref().unwrap_or("/");
        let item = format!("route {host}{path}");
        if !workers.contains(r.worker.as_str()) {
            p.add(
                &item,
                format!(
                    "routes to worker \"{}\", which is not declared under [[workers]]",
                    r.worker
                ),
            );
        }
        if host != "*" && !is_valid_hostname(host) && host.parse::<std::net::IpAddr>().is_err() {
            p.add(
                &item,
                format!(
                    "host must be a DNS name, an IP address or \"*\"; {}",
                    hostname_problem(host)
                ),
            );
        }
        if !path.starts_with('/') {
            p.add(&item, "path must start with '/'");
        } else if let Some(problem) = route_path_problem(path) {
            p.add(&item, problem);
        }
        let key = (
            host.to_ascii_lowercase(),
            path.trim_end_matches('/').to_string(),
        );
        if !seen.insert(key) {
            p.add(
                &item,
                "declared twice; each host and path prefix routes to one worker",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert!(is_valid_hostname("pay.alpha.example"));
        assert!(!is_valid_hostname("bad_host"));
        assert!(!is_valid_hostname("a..b"));
    }
}
