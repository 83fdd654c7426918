//! A client certificate chosen at handshake time from its current value, so
//! a rotated or renewed certificate is presented by the next handshake
//! without rebuilding TLS configurations.

use arc_swap::ArcSwap;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A client certificate that can be replaced while connections use it.
///
/// Every replacement bumps [`version`](Self::version), so holders of state
/// tied to the old certificate (pooled connections, TLS session caches) can
/// tell that it is stale.
#[derive(Debug)]
pub struct RotatingCert {
    current: ArcSwap<CertifiedKey>,
    version: AtomicU64,
    handshakes: AtomicU64,
}

impl RotatingCert {
    /// Start with `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        RotatingCert {
            current: ArcSwap::new(key),
            version: AtomicU64::new(0),
            handshakes: AtomicU64::new(0),
        }
    }

    /// Present `key` in every handshake from now on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The certificate new handshakes present.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// How many times the certificate was replaced.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// How many handshakes presented this certificate.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }
}

impl ResolvesClientCert for RotatingCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        Some(self.current.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
