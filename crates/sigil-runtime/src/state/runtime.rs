//! The live state shared by every connection: the current generation, the
//! request-id counter, and the door to the supervisor's reload loop.

use super::Generation;
use crate::config::ManifestErrors;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tokio::sync::{mpsc, oneshot};

/// A request to re-read the manifest, answered when the reload is done.
pub struct ReloadRequest {
    /// What asked for it (`SIGHUP`, `admin`, `file change`), for the log.
    pub trigger: &'static str,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<(), ManifestErrors>>,
}

/// The live state shared by every connection.
pub struct Runtime {
    current: ArcSwap<Generation>,
    request_seq: AtomicU64,
    request_prefix: u32,
    reloads: mpsc::Sender<ReloadRequest>,
}

/// Write the low `digits` hex digits of `n` (lower case) into `out`.
fn hex_into(out: &mut [u8], mut n: u64, digits: usize) {
    for slot in out[..digits].iter_mut().rev() {
        *slot = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// Give `generation` the id after `previous`.
fn numbered(mut generation: Generation, previous: u64) -> Generation {
    generation.id = previous + 1;
    generation
}

impl Runtime {
    /// Serve `generation`; reload requests go to `reloads`.
    pub fn new(generation: Generation, reloads: mpsc::Sender<ReloadRequest>) -> Self {
        Runtime {
            current: ArcSwap::from_pointee(numbered(generation, 0)),
            request_seq: AtomicU64::new(0),
            request_prefix: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
                .unwrap_or(0)
                ^ std::process::id(),
            reloads,
        }
    }

    /// The generation new requests and handshakes use.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Serve `generation` from now on (requests in flight keep theirs).
    pub fn swap(&self, generation: Generation) {
        let previous = self.current.load().id;
        self.current.store(Arc::new(numbered(generation, previous)));
    }

    /// A new request id, unique within this process and unlikely to repeat
    /// across restarts: `<8 hex digits of the process>-<hex sequence>`.
    pub fn next_request_id(&self) -> Arc<str> {
        let n = self.request_seq.fetch_add(1, Ordering::Relaxed);
        // Written by hand into a stack buffer: one allocation, no formatter.
        let mut buf = [0u8; 8 + 1 + 16];
        hex_into(&mut buf[..8], u64::from(self.request_prefix), 8);
        buf[8] = b'-';
        let digits = ((64 - n.leading_zeros()).max(1) as usize).div_ceil(4);
        hex_into(&mut buf[9..9 + digits], n, digits);
        let text = std::str::from_utf8(&buf[..9 + digits]).unwrap_or("-");
        Arc::from(text)
    }

    /// Ask the supervisor to reload the manifest and wait for the outcome.
    pub async fn reload(&self, trigger: &'static str) -> Result<(), ManifestErrors> {
        let (reply, outcome) = oneshot::channel();
        let unavailable = || {
            ManifestErrors(vec![crate::config::ManifestError {
                file: Default::default(),
                item: String::new(),
                message: "the server is shutting down; reloads are not accepted".into(),
            }])
        };
        self.reloads
            .send(ReloadRequest { trigger, reply })
            .await
            .map_err(|_| unavailable())?;
        outcome.await.unwrap_or_else(|_| Err(unavailable()))
    }
}

#[cfg(test)]
mod tests {
    use super::hex_into;

    #[test]
    fn request_ids_are_hex_like_format() {
        for (n, digits) in [(0u64, 1), (0xa, 1), (0x10, 2), (u64::MAX, 16)] {
            let mut buf = [0u8; 16];
            hex_into(&mut buf, n, digits);
            assert_eq!(
                std::str::from_utf8(&buf[..digits]).unwrap(),
                format!("{n:x}")
            );
        }
        let mut buf = [0u8; 8];
        hex_into(&mut buf, 0x2f, 8);
        assert_eq!(&buf, b"0000002f");
    }
}
