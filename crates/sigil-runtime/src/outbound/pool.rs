//! A connection pool whose connections all present one client certificate
//! (or none), so a connection authenticated as one identity is never reused
//! for a request that asked for another identity, or for none.

use super::blocking::GuardedResolver;
use super::tls;
use arc_swap::ArcSwap;
use rustls::RootCertStore;
use sigil_pki::RotatingCert;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings shared by every outbound pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSettings {
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle: Duration,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        OutboundSettings {
            connect_timeout: Duration::from_secs(5),
            pool_idle: Duration::from_secs(90),
        }
    }
}

/// Connections presenting one client certificate (or none).
///
/// When the certificate is replaced (rotation, renewal), new handshakes
/// present the new one at once, and the next request builds a fresh pool, so
/// connections authenticated with the old certificate are retired (requests
/// in flight on them finish first). The fresh pool also starts a fresh TLS
/// session cache: a resumed TLS 1.3 session carries the identity of its
/// original handshake, so resuming one would keep presenting the old
/// certificate to the origin.
#[derive(Debug)]
pub struct ClientPool {
    /// What this pool presents: `certificate:<name>`, `identity:<worker>`, or `none`.
    pub label: Arc<str>,
    /// The certificate presented at each handshake, if any.
    pub client_cert: Option<Arc<RotatingCert>>,
    /// Connections for requests an explicit `allowed_outbound_hosts` entry
    /// let through: their names may resolve to internal addresses.
    client: ArcSwap<reqwest::Client>,
    /// Connections for every other request (allowed by `*` or `*.suffix`):
    /// names resolve to public addresses only. The same client as `client`
    /// when no worker of this pool names a host explicitly.
    guarded: ArcSwap<reqwest::Client>,
    /// The certificate version the current client was built for.
    built_for: AtomicU64,
    rebuild: Mutex<()>,
    pub(super) tls: Arc<rustls::ClientConfig>,
    settings: OutboundSettings,
    /// Host names the workers using this pool name explicitly: the only
    /// names `client` resolves to internal addresses.
    explicit: Arc<HashSet<String>>,
}

/// Idle connections a pool keeps to one origin (each is a file
/// descriptor): enough for bursts of parallel subrequests to be reused,
/// not every connection a burst opened.
const MAX_IDLE_PER_HOST: usize = 32;

/// The trusted and the guarded client of a pool (one client, shared, when
/// `explicit` is empty).
fn http_clients(
    tls: &rustls::ClientConfig,
    settings: &OutboundSettings,
    explicit: &Arc<HashSet<String>>,
) -> anyhow::Result<(Arc<reqwest::Client>, Arc<reqwest::Client>)> {
    let trusted = Arc::new(http_client(tls, settings, explicit)?);
    let guarded = if explicit.is_empty() {
        trusted.clone()
    } else {
        Arc::new(http_client(tls, settings, &Arc::default())?)
    };
    Ok((trusted, guarded))
}

fn http_client(
    tls: &rustls::ClientConfig,
    settings: &OutboundSettings,
    explicit: &Arc<HashSet<String>>,
) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(settings.pool_idle)
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .dns_resolver(Arc::new(GuardedResolver::new(explicit.clone())))
        .no_proxy()
        .build()?)
}

impl ClientPool {
    /// A pool verifying origins against `roots`, presenting `client_cert`,
    /// and resolving only `explicit` names to internal addresses.
    pub fn new(
        label: &str,
        roots: Arc<RootCertStore>,
        client_cert: Option<Arc<RotatingCert>>,
        settings: &OutboundSettings,
        explicit: Arc<HashSet<String>>,
    ) -> anyhow::Result<Self> {
        let config = tls::client_config(roots, client_cert.clone())?;
        let (client, guarded) = http_clients(&config, settings, &explicit)?;
        let built_for = client_cert.as_ref().map_or(0, |c| c.version());
        Ok(ClientPool {
            label: label.into(),
            client_cert,
            client: ArcSwap::new(client),
            guarded: ArcSwap::new(guarded),
            built_for: AtomicU64::new(built_for),
            rebuild: Mutex::new(()),
            tls: Arc::new(config),
            settings: settings.clone(),
            explicit,
        })
    }

    /// The resolver of this pool's connections for a request that an
    /// explicit entry let through (`trusted`) or not.
    pub fn resolver(&self, trusted: bool) -> GuardedResolver {
        if trusted {
            GuardedResolver::new(self.explicit.clone())
        } else {
            GuardedResolver::new(Arc::default())
        }
    }

    /// How long establishing a connection may take.
    pub fn connect_timeout(&self) -> Duration {
        self.settings.connect_timeout
    }

    /// The connection pool for the current certificate, for a request an
    /// explicit `allowed_outbound_hosts` entry let through (`trusted`: its
    /// host may resolve to internal addresses) or not.
    pub(crate) fn http(&self, trusted: bool) -> Arc<reqwest::Client> {
        if let Some(cert) = &self.client_cert
            && cert.version() != self.built_for.load(Ordering::Acquire)
        {
            self.retire(cert);
        }
        if trusted {
            self.client.load_full()
        } else {
            self.guarded.load_full()
        }
    }

    /// Replace the client after a certificate change (once per change).
    fn retire(&self, cert: &RotatingCert) {
        let _guard = self.rebuild.lock().unwrap_or_else(|p| p.into_inner());
        let version = cert.version();
        if version == self.built_for.load(Ordering::Acquire) {
            return;
        }
        let mut tls = (*self.tls).clone();
        tls.resumption = rustls::client::Resumption::in_memory_sessions(256);
        match http_clients(&tls, &self.settings, &self.explicit) {
            Ok((fresh, guarded)) => {
                self.client.store(fresh);
                self.guarded.store(guarded);
                self.built_for.store(version, Ordering::Release);
            }
            Err(e) => {
                tracing::error!(pool = %self.label, "cannot rebuild the pool after a certificate change: {e:#}")
            }
        }
    }
}
