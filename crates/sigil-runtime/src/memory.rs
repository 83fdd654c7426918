//! Giving freed memory back to the operating system.
//!
//! The allocator keeps memory freed by a burst of connections (their
//! buffers, TLS state, request bodies) in its arenas: resident memory then
//! stays at the burst's peak. After a burst ends,
//! [`release_free_memory`] asks it to return what it holds free.

use crate::allocator::release_free_memory;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the connection count is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// A burst is over once this many fewer connections are open than at its
/// peak, or once the count has fallen by [`SETTLED`] and then held still for
/// a check (the tail of a burst whose last connections close slowly).
const BURST: u64 = 64;

/// See [`BURST`].
const SETTLED: u64 = 8;

/// When to release memory, from samples of the open connection count.
#[derive(Debug, Default)]
struct TrimPolicy {
    /// Most connections seen open since the last release.
    high: u64,
    /// The previous sample.
    previous: u64,
}

impl TrimPolicy {
    /// Record a sample; true when memory should be released now.
    fn observe(&mut self, now: u64) -> bool {
        self.high = self.high.max(now);
        let fell = self.high - now;
        let still = now == self.previous;
        self.previous = now;
        let trim = fell >= BURST || (still && fell >= SETTLED);
        if trim {
            self.high = now;
        }
        trim
    }
}

/// Watch `open()` (the open inbound connections) and release free memory
/// when a burst of them has closed (see `BURST`), until `stop` turns true.
pub fn spawn_trimmer(open: Arc<dyn Fn() -> u64 + Send + Sync>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut policy = TrimPolicy::default();
        policy.observe(open());
        let mut tick = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if policy.observe(open()) {
                release_now().await;
            }
        }
    });
}

/// Ask the allocator to return the memory it holds free now (off the
/// runtime's threads): after a burst of connections has closed, and after a
/// reload has replaced the configuration (a generation with 10,000
/// hostnames is tens of MiB, freed in the loader thread's arena).
pub async fn release_now() {
    let per_thread = tokio::task::spawn_blocking(release_free_memory).await;
    if per_thread.unwrap_or(false) {
        wake_runtime_threads();
    }
}

/// Wake idle runtime threads (a spawned task is offered to a parked worker),
/// so that each passes through `on_thread_idle` again and collects its own
/// allocator heap.
fn wake_runtime_threads() {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    for _ in 0..workers * 2 {
        tokio::spawn(tokio::task::yield_now());
    }
}

#[cfg(test)]
mod tests {
    use super::TrimPolicy;

    #[test]
    fn a_burst_is_released_when_it_falls_and_when_its_tail_settles() {
        let mut p = TrimPolicy::default();
        assert!(!p.observe(10));
        assert!(!p.observe(500), "connections arriving");
        assert!(!p.observe(470), "a fall under the burst size, still moving");
        assert!(p.observe(300), "a fall of a burst");
        assert!(!p.observe(260), "falling again, under the burst size");
        assert!(!p.observe(250), "still moving");
        assert!(p.observe(250), "the tail settled 50 under the last release");
        assert!(!p.observe(250), "nothing new to release");
        assert!(!p.observe(246), "a small fall");
        assert!(
            !p.observe(246),
            "settled, but within the noise of a steady load"
        );
    }
}
