//! Measuring the CPU time a request spends running wasm.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Measures the CPU time a request spends running wasm: only while the
/// request's future is being polled (so not while it waits on host I/O, a
/// WASI sleep, or the executor), and by the thread's CPU clock (so not while
/// the OS has descheduled the thread). Checked at every epoch tick.
///
/// [`Metered`] resumes the meter when the request's future is polled and
/// pauses it when the poll returns; the epoch callback calls [`CpuMeter::tick`].
#[derive(Clone, Default)]
pub struct CpuMeter(Arc<Mutex<MeterState>>);

#[derive(Default)]
struct MeterState {
    used: Duration,
    running_since: Option<Mark>,
}

/// Where the clocks stood when wasm last resumed. The thread CPU clock is a
/// system call (not in the vDSO); it is read at every resume and pause
/// anyway: measuring short stretches by the wall clock instead let OS
/// preemption on a loaded machine count against a worker's CPU limit.
#[derive(Clone, Copy)]
struct Mark {
    thread: std::thread::ThreadId,
    thread_cpu: Duration,
    wall: Instant,
}

impl Mark {
    fn now() -> Mark {
        Mark {
            thread: std::thread::current().id(),
            thread_cpu: thread_cpu_time(),
            wall: Instant::now(),
        }
    }

    /// Time run from this mark to `now`: the thread's CPU time, or wall time
    /// should the task have moved to another thread.
    fn until(&self, now: &Mark) -> Duration {
        if self.thread == now.thread {
            now.thread_cpu.saturating_sub(self.thread_cpu)
        } else {
            now.wall.saturating_duration_since(self.wall)
        }
    }
}

/// CPU time consumed by the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl CpuMeter {
    fn lock(&self) -> std::sync::MutexGuard<'_, MeterState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn resume(&self) {
        self.lock().running_since = Some(Mark::now());
    }

    fn pause(&self) {
        let now = Mark::now();
        let mut state = self.lock();
        if let Some(mark) = state.running_since.take() {
            state.used += mark.until(&now);
        }
    }

    /// Count the running time up to now and return the total so far.
    pub fn tick(&self) -> Duration {
        let now = Mark::now();
        let mut state = self.lock();
        if let Some(mark) = state.running_since.replace(now) {
            state.used += mark.until(&now);
        }
        state.used
    }
}

/// A future whose polls are metered by a [`CpuMeter`].
pub struct Metered<F> {
    inner: std::pin::Pin<Box<F>>,
    meter: CpuMeter,
}

impl<F> Metered<F> {
    /// Meter `inner`'s polls with `meter`.
    pub fn new(inner: F, meter: CpuMeter) -> Self {
        Metered {
            inner: Box::pin(inner),
            meter,
        }
    }
}

impl<F: std::future::Future> std::future::Future for Metered<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.meter.resume();
        let poll = self.inner.as_mut().poll(cx);
        self.meter.pause();
        poll
    }
}
