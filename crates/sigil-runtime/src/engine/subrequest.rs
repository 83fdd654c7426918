//! The engine's door to the outside world: the [`Subrequests`] a worker's
//! host calls use, and the [`CallContext`] they run in. The engine defines
//! the trait; the outbound layer implements it, so the engine never depends
//! on how subrequests are sent.

use crate::config::Limits;
use crate::headers::{ForwardedClientCert, Hop};
use bytes::Bytes;
use sigil_sdk::wire::FetchError;
use sigil_sdk::wire_ref::FetchRequestView;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The origin's response to a subrequest, as the outbound layer read it:
/// its header map and body are handed to the guest's encoding as they are,
/// without copies into owned strings.
#[derive(Debug)]
pub struct FetchedResponse {
    /// Status code.
    pub status: u16,
    /// The origin's header fields.
    pub headers: http::HeaderMap,
    /// The whole body (within the worker's `max_response_body`).
    pub body: Bytes,
    /// The body's bytes, counted in the request's [`HeldBytes`] until the
    /// guest has taken the response.
    pub held: Option<Claim>,
}

/// The bytes of one request's subrequests that the host holds for the
/// guest: bodies on their way to origins, responses being read, and
/// responses read but not yet taken by the guest. They count against the
/// worker's memory limit (`limits.memory_mb`), so a worker cannot make the
/// host buffer what it could not hold itself (50 unread 8 MiB responses).
#[derive(Clone, Debug, Default)]
pub struct HeldBytes {
    count: Arc<AtomicU64>,
}

impl HeldBytes {
    /// A claim on no bytes yet, grown as a body is copied or arrives.
    pub fn claim(&self) -> Claim {
        Claim {
            count: self.count.clone(),
            bytes: 0,
        }
    }

    /// The bytes held now.
    pub fn now(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Bytes counted in a [`HeldBytes`], given back when this is dropped.
#[derive(Debug)]
pub struct Claim {
    count: Arc<AtomicU64>,
    bytes: u64,
}

impl Claim {
    /// Count `n` more bytes, unless the request's total would pass `limit`;
    /// then nothing is counted and the error is the total held now.
    pub fn grow(&mut self, n: u64, limit: u64) -> Result<(), u64> {
        let mut now = self.count.load(Ordering::Relaxed);
        loop {
            let Some(next) = now.checked_add(n).filter(|&total| total <= limit) else {
                return Err(now);
            };
            match self
                .count
                .compare_exchange_weak(now, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.bytes += n;
                    return Ok(());
                }
                Err(actual) => now = actual,
            }
        }
    }
}

impl Claim {
    /// Give back every byte counted so far (the claim stays usable).
    pub fn release(&mut self) {
        self.count.fetch_sub(self.bytes, Ordering::Relaxed);
        self.bytes = 0;
    }

    /// A claim on the bytes this one counts, leaving this one with none.
    pub fn split_off(&mut self) -> Claim {
        Claim {
            count: self.count.clone(),
            bytes: std::mem::take(&mut self.bytes),
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.count.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// How a subrequest ended: the origin's response or a named error.
pub type Fetched = Result<FetchedResponse, FetchError>;

/// A subrequest on its way: resolves to the origin's response or a named error.
pub type SubrequestFuture = Pin<Box<dyn Future<Output = Fetched> + Send + 'static>>;

/// What a worker's subrequests go through.
pub trait Subrequests: Send + Sync {
    /// Check `request` (binding, allowed hosts, method and headers), read
    /// from the guest's encoded bytes in place, and return the future that
    /// sends it, or the error that stops it before anything is sent.
    /// The bytes it copies or reads are counted in `held`.
    fn start(
        &self,
        request: FetchRequestView<'_>,
        call: &CallContext,
        held: &HeldBytes,
    ) -> Result<SubrequestFuture, FetchError>;
}

/// Everything about the inbound request that host calls need.
#[derive(Clone)]
pub struct CallContext {
    /// The worker's name.
    pub worker: Arc<str>,
    /// The request id used in logs.
    pub request_id: Arc<str>,
    /// The worker's limits.
    pub limits: Limits,
    /// Where the worker's subrequests go.
    pub subrequests: Arc<dyn Subrequests>,
    /// The inbound client certificate to forward to origins, when the
    /// hostname forwards it.
    pub forward: Option<Arc<ForwardedClientCert>>,
    /// When the request must be finished.
    pub deadline: Instant,
    /// How the request reached Sigil (hops so far), carried to its subrequests.
    pub hop: Hop,
    /// The worker's variables, exposed as environment variables.
    pub vars: Arc<[(String, String)]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims count against one total, refuse past the limit without
    /// counting, and give their bytes back when released or dropped.
    #[test]
    fn claims_count_refuse_and_give_back() {
        let held = HeldBytes::default();
        let mut a = held.claim();
        a.grow(60, 100).unwrap();
        let mut b = held.claim();
        assert_eq!(b.grow(41, 100), Err(60));
        b.grow(40, 100).unwrap();
        assert_eq!(held.now(), 100);
        let moved = a.split_off();
        a.release();
        assert_eq!(held.now(), 100, "the split-off claim still counts");
        drop(moved);
        assert_eq!(held.now(), 40);
        b.release();
        b.grow(100, 100).unwrap();
        drop(b);
        assert_eq!(held.now(), 0);
        assert_eq!(held.claim().grow(u64::MAX, u64::MAX), Ok(()));
    }
}
