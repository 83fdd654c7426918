//! Giving freed memory back to the operating system.
//!
//! glibc's allocator keeps memory freed by a burst of connections (their
//! buffers, TLS state, request bodies) in its arenas: resident memory then
//! stays at the burst's peak. After a burst ends, [`release_free_memory`]
//! asks it to return what it holds free.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the connection count is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// A burst is over once this many fewer connections are open than at its peak.
const BURST: u64 = 64;

/// Return free heap memory to the operating system (glibc's `malloc_trim`;
/// nothing on other C libraries).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `malloc_trim` has no preconditions: it takes the allocator's
    // own locks, touches only memory the allocator owns and already freed,
    // and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Watch `open()` (the open inbound connections) and release free memory
/// when it has fallen by [`BURST`] from its peak since the last release,
/// until `stop` turns true.
pub fn spawn_trimmer(open: Arc<dyn Fn() -> u64 + Send + Sync>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut peak = open();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now = open();
            peak = peak.max(now);
            if peak.saturating_sub(now) >= BURST {
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
                peak = now;
            }
        }
    });
}
