//! Bounds on the subrequests in flight, for the whole process and for each
//! worker: every one holds an outbound connection (a file descriptor) while
//! it runs, so without a bound one worker's parallel subrequests — 50 per
//! request, hundreds of requests — could take the descriptors that other
//! workers' subrequests and the listeners need.
//!
//! The process allows as many as `server.max_connections` (the inbound
//! bound is half of the descriptors; this is the other half), and one
//! worker its `server.worker_share` of them, as with instance slots. Past
//! a bound a subrequest fails at once, naming it.

use std::sync::{Arc, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The process-wide bound, set once at start (unbounded until then, as in
/// tests and benchmarks that build workers without a server).
static PROCESS: OnceLock<(Arc<Semaphore>, usize)> = OnceLock::new();

/// Bound the subrequests in flight in this process to `limit`. Only the
/// first call has an effect.
pub fn set_process_limit(limit: usize) {
    let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
    let _ = PROCESS.set((Arc::new(Semaphore::new(limit)), limit));
}

fn process() -> &'static (Arc<Semaphore>, usize) {
    PROCESS.get_or_init(|| {
        let max = Semaphore::MAX_PERMITS;
        (Arc::new(Semaphore::new(max)), max)
    })
}

/// One worker's bound (its share of the process's), shared by its
/// subrequests.
#[derive(Debug)]
pub struct InFlight {
    worker: Arc<Semaphore>,
    share: usize,
}

/// A subrequest's place in both bounds, held until it ends.
#[derive(Debug)]
pub struct InFlightPermit {
    _process: OwnedSemaphorePermit,
    _worker: OwnedSemaphorePermit,
}

impl InFlight {
    /// A worker's bound: `share` (`server.worker_share`) of the process's.
    pub fn for_worker(share: f64) -> InFlight {
        let (_, limit) = process();
        let share = ((*limit as f64 * share).floor() as usize).clamp(1, Semaphore::MAX_PERMITS);
        InFlight {
            worker: Arc::new(Semaphore::new(share)),
            share,
        }
    }

    /// A place for one more subrequest of `worker`, or why there is none.
    pub fn try_start(&self, worker: &str) -> Result<InFlightPermit, String> {
        let Ok(mine) = self.worker.clone().try_acquire_owned() else {
            return Err(format!(
                "worker \"{worker}\" already has {} subrequests in flight, its share (server.worker_share) of the subrequests Sigil runs at once (server.max_connections); wait for some to finish",
                self.share
            ));
        };
        let (all, limit) = process();
        let Ok(any) = all.clone().try_acquire_owned() else {
            return Err(format!(
                "Sigil already has {limit} subrequests in flight (server.max_connections); wait for some to finish"
            ));
        };
        Ok(InFlightPermit {
            _process: any,
            _worker: mine,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_holds_at_most_its_share_and_gets_it_back() {
        // The process bound is whatever the first caller set (unbounded in
        // unit tests): only the worker's share is exercised here.
        let bound = InFlight {
            worker: Arc::new(Semaphore::new(2)),
            share: 2,
        };
        let a = bound.try_start("w").unwrap();
        let _b = bound.try_start("w").unwrap();
        let refused = bound.try_start("w").unwrap_err();
        assert!(
            refused.contains("worker \"w\" already has 2 subrequests in flight"),
            "{refused}"
        );
        assert!(refused.contains("server.worker_share"), "{refused}");
        drop(a);
        assert!(bound.try_start("w").is_ok());
    }
}
