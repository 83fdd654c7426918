//! The client certificate a connection presents, chosen at handshake time
//! from the current value, so a rotated or renewed certificate is used by the
//! next handshake without rebuilding clients.

use arc_swap::ArcSwap;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A client certificate that can be replaced while connections use it.
#[derive(Debug)]
pub struct SwappableClientCert {
    current: ArcSwap<CertifiedKey>,
    handshakes: AtomicU64,
}

impl SwappableClientCert {
    /// Start with `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        SwappableClientCert {
            current: ArcSwap::new(key),
            handshakes: AtomicU64::new(0),
        }
    }

    /// Use `key` for every handshake from now on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }

    /// The certificate new handshakes present.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// How many handshakes presented this certificate.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }
}

impl ResolvesClientCert for SwappableClientCert {
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
