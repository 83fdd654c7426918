//! The shape of `sigil.toml`, as serde reads it. Unknown keys are errors.

use super::limits::LimitOverrides;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The whole manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Listeners and server-wide settings.
    #[serde(default)]
    pub server: ServerSection,
    /// Default limits for every worker.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Settings for every outbound subrequest.
    #[serde(default)]
    pub outbound: OutboundSection,
    /// Sigil's identity CA, issuing each worker a SPIFFE certificate.
    pub identity: Option<IdentitySection>,
    /// Named client certificates workers can bind.
    #[serde(default)]
    pub certificates: Vec<CertificateSection>,
    /// Hostnames served over TLS, each with its own client-certificate policy.
    #[serde(default)]
    pub hostnames: Vec<HostnameSection>,
    /// The workers.
    #[serde(default)]
    pub workers: Vec<WorkerSection>,
    /// Routes from hostnames and path prefixes to workers.
    #[serde(default)]
    pub routes: Vec<RouteSection>,
}

/// `[server]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Plain HTTP listen address, e.g. `127.0.0.1:8080`.
    pub http: Option<String>,
    /// HTTPS listen address, e.g. `127.0.0.1:8443`.
    pub https: Option<String>,
    /// Admin listener (metrics, health), e.g. `127.0.0.1:9090`.
    pub admin: Option<String>,
    /// The hostname whose policy applies to TLS clients that send no SNI or an unknown name.
    pub default_hostname: Option<String>,
    /// Seconds between checks of the manifest and the files it names for changes (0 = off).
    pub reload_poll_secs: Option<u64>,
    /// Most wasm instances alive at once across all workers (pool size).
    pub max_instances: Option<u32>,
    /// The share of `max_instances` one worker may hold at once (0 < share
    /// ≤ 1; default 0.5), so one hot or hostile worker cannot take every slot.
    pub worker_share: Option<f64>,
    /// Most times one request may pass through Sigil (a worker calling
    /// Sigil's own listeners); past it, 508 Loop Detected (default 16).
    pub max_hops: Option<u32>,
    /// One log line per request (target `sigil::access`, level info):
    /// request id, worker, method, host, path, status and microseconds.
    pub access_log: Option<bool>,
    /// Directory for the compiled-module cache (relative to the manifest); `""` disables it.
    pub module_cache: Option<String>,
    /// Milliseconds a client has to send a whole request head (default 60000).
    pub header_read_timeout_ms: Option<u64>,
    /// A request body that sends nothing for this many milliseconds gets 408 (default 60000).
    pub body_idle_timeout_ms: Option<u64>,
    /// A client that takes none of our pending output for this many milliseconds is dropped (default 60000).
    pub write_timeout_ms: Option<u64>,
    /// A connection with no request in flight is closed after this many seconds (default 75).
    pub keepalive_idle_secs: Option<u64>,
    /// Milliseconds a client has to complete the TLS handshake (default 10000).
    pub tls_handshake_timeout_ms: Option<u64>,
    /// Most inbound connections open at once across the HTTP and HTTPS listeners
    /// (default: derived from the file-descriptor limit).
    pub max_connections: Option<u64>,
    /// Largest worker module file, in MiB, checked before compiling (default 64).
    pub max_module_mb: Option<u64>,
    /// Most functions a worker module may define, checked before compiling (default 50000).
    pub max_module_functions: Option<u32>,
    /// Memory (address space) the compiler process may use beyond its start, in MiB (default 1024).
    pub compile_memory_mb: Option<u64>,
    /// Longest a module may take to compile, in seconds (default 60).
    pub compile_timeout_secs: Option<u64>,
}

/// `[outbound]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSection {
    /// Extra CA bundles trusted for every subrequest, beside the system roots.
    #[serde(default)]
    pub ca: Vec<PathBuf>,
    /// Whether the system roots are trusted for subrequests (default true).
    pub system_roots: Option<bool>,
    /// Connect timeout for subrequests, in milliseconds (default 5000).
    pub connect_timeout_ms: Option<u64>,
    /// Idle pooled connections are closed after this many seconds (default 90).
    pub pool_idle_secs: Option<u64>,
}

/// `[identity]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    /// SPIFFE trust domain, e.g. `sigil.local`.
    pub trust_domain: String,
    /// Identity CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// Identity CA private key (PEM).
    pub ca_key: PathBuf,
    /// Lifetime of each worker certificate, in seconds (default 3600).
    pub ttl_secs: Option<u64>,
}

/// `[[certificates]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSection {
    /// The certificate's name, used by bindings.
    pub name: String,
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// CA bundle for verifying origins reached with this certificate.
    pub ca: Option<PathBuf>,
    /// Trust the system roots too (default: true without `ca`, false with it).
    pub system_roots: Option<bool>,
}

/// Client-certificate mode of a hostname.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertMode {
    /// A verified client certificate is required during the handshake.
    Require,
    /// A certificate is requested; the worker sees whether it verified.
    Optional,
    /// No client certificate is requested.
    #[default]
    Off,
}

/// `[[hostnames]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostnameSection {
    /// The hostname (SNI), e.g. `pay.alpha.example`.
    pub name: String,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// Client CA bundles (PEM) trusted for this hostname.
    #[serde(default)]
    pub client_ca: Vec<PathBuf>,
    /// `require`, `optional` or `off` (default `off`).
    #[serde(default)]
    pub client_cert: ClientCertMode,
    /// CRL files (PEM or DER) for this hostname's client CAs.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// Most certificates in a client's verified path: the leaf, its
    /// intermediates and the trusted CA (default 4; at least 2).
    pub max_chain_depth: Option<u8>,
    /// Refuse client certificates whose issuer has no CRL among `crl`
    /// (default false: a CRL only applies to the certificates of its issuer).
    #[serde(default)]
    pub crl_required: bool,
    /// Forward verified client-certificate details to origins (default false).
    #[serde(default)]
    pub forward_client_cert: bool,
}

/// `[[routes]]`: a hostname (or `*`) and a path prefix, served by a worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Host to match, or `*` for any (default `*`).
    pub host: Option<String>,
    /// Path prefix to match on segment boundaries (default `/`).
    pub path: Option<String>,
    /// The worker that serves it.
    pub worker: String,
}

/// `[[workers.mtls_certificates]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSection {
    /// The name the worker uses.
    pub binding: String,
    /// The `[[certificates]]` name, or `identity` for the worker's own Sigil identity.
    pub certificate: String,
}

/// `[[workers]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSection {
    /// The worker's name.
    pub name: String,
    /// Path of the compiled `.wasm` module.
    pub module: PathBuf,
    /// How `sigil build` / `sigil dev` make `module`: a `sigil-sdk` crate
    /// directory, or `{ lang = "rust" | "rust-component" | "js" | "python", dir | entry }`.
    pub build: Option<super::BuildSection>,
    /// Component workers only: one instance serves up to this many requests
    /// one after another (default 1: a fresh instance per request).
    pub instance_reuse: Option<u32>,
    /// Origins this worker may call: `https://host[:port]`, `http://...`, `*://host`, or `*`.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Binding used by a fetch that names none.
    pub default_binding: Option<String>,
    /// Issue this worker a Sigil identity (default true when `[identity]` is set).
    pub identity: Option<bool>,
    /// This worker's certificate bindings.
    #[serde(default)]
    pub mtls_certificates: Vec<BindingSection>,
    /// Limit overrides for this worker.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Variables the worker reads as environment variables (`std::env::var`).
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
}

impl ServerSection {
    /// The keys of `[server]` that apply only at start: a reload that
    /// changes them keeps the values the server started with.
    pub const RESTART_KEYS: [&'static str; 12] = [
        "http",
        "https",
        "admin",
        "reload_poll_secs",
        "max_instances",
        "module_cache",
        "header_read_timeout_ms",
        "body_idle_timeout_ms",
        "write_timeout_ms",
        "keepalive_idle_secs",
        "tls_handshake_timeout_ms",
        "max_connections",
    ];

    /// The [`Self::RESTART_KEYS`] whose value differs between `self` and
    /// `other`.
    pub fn restart_keys_changed(&self, other: &ServerSection) -> Vec<&'static str> {
        let (a, b) = (toml::Table::try_from(self), toml::Table::try_from(other));
        let (Ok(a), Ok(b)) = (a, b) else {
            return Vec::new();
        };
        Self::RESTART_KEYS
            .into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .collect()
    }
}

/// The certificate name that refers to a worker's own Sigil identity.
pub const IDENTITY_CERTIFICATE: &str = "identity";
