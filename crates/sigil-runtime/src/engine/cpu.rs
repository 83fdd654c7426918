//! Measuring the CPU time a request spends running wasm.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Measures the CPU time a request spends running wasm: only while the
/// request's future is being polled (so not while it waits on host I/O, a
/// WASI sleep, or the executor), checked at every epoch tick.
///
/// [`Metered`] resumes the meter when the request's future is polled and
/// pauses it when the poll returns; the epoch callback calls [`CpuMeter::tick`].
///
/// Two clocks, so that the common request pays for no system call and a
/// busy machine's preemption does not count against a worker's limit:
///
/// - While the request has used less than [`PRECISE_AFTER`], each stretch is
///   timed by the monotonic clock (read in the vDSO, no system call) and
///   counted as at most [`STRETCH_CAP`]: a stretch in which the OS
///   descheduled the thread counts no more than that. Almost every request
///   ends in this mode.
/// - From then on, stretches are timed by the thread's CPU clock
///   (`CLOCK_THREAD_CPUTIME_ID`, a system call per read), which does not
///   advance while the thread is descheduled.
///
/// So preemption can add at most [`PRECISE_AFTER`] + [`STRETCH_CAP`] (3 ms)
/// to what a request is charged, once, against a default limit of 50 ms.
/// (Reading the thread clock at every poll cost about 2 µs per request;
/// reading only the monotonic clock let preemption on a loaded machine
/// count in full.)
#[derive(Clone, Default)]
pub struct CpuMeter(Arc<Mutex<MeterState>>);

/// Time used after which the meter reads the thread's CPU clock.
pub const PRECISE_AFTER: Duration = Duration::from_millis(1);

/// The most one stretch timed by the monotonic clock counts.
pub const STRETCH_CAP: Duration = super::EPOCH_TICK;

#[derive(Default)]
struct MeterState {
    used: Duration,
    running_since: Option<Mark>,
}

/// Where the clock stood when wasm last resumed.
#[derive(Clone, Copy)]
enum Mark {
    /// The monotonic clock (cheap mode).
    Wall(Instant),
    /// The thread's CPU clock (precise mode), and the wall clock should the
    /// task move to another thread before the stretch ends.
    Thread {
        thread: std::thread::ThreadId,
        thread_cpu: Duration,
        wall: Instant,
    },
}

impl Mark {
    /// A mark in the mode that `used` calls for.
    fn now(used: Duration) -> Mark {
        if used < PRECISE_AFTER {
            Mark::Wall(Instant::now())
        } else {
            Mark::Thread {
                thread: std::thread::current().id(),
                thread_cpu: thread_cpu_time(),
                wall: Instant::now(),
            }
        }
    }

    /// The time to charge for the stretch from this mark until now.
    fn charge(&self) -> Duration {
        match *self {
            Mark::Wall(since) => since.elapsed().min(STRETCH_CAP),
            Mark::Thread {
                thread,
                thread_cpu,
                wall,
            } => {
                if std::thread::current().id() == thread {
                    thread_cpu_time().saturating_sub(thread_cpu)
                } else {
                    wall.elapsed()
                }
            }
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

    /// Start timing a stretch of wasm running.
    pub fn resume(&self) {
        let mut state = self.lock();
        state.running_since = Some(Mark::now(state.used));
    }

    /// End the current stretch (if any), counting it.
    pub fn pause(&self) {
        let mut state = self.lock();
        if let Some(mark) = state.running_since.take() {
            state.used += mark.charge();
        }
    }

    /// Count the running time up to now and return the total so far.
    pub fn tick(&self) -> Duration {
        let mut state = self.lock();
        if let Some(mark) = state.running_since.take() {
            state.used += mark.charge();
            state.running_since = Some(Mark::now(state.used));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let start = Instant::now();
        while start.elapsed() < d {
            std::hint::black_box(0u64);
        }
    }

    #[test]
    fn time_off_the_cpu_is_not_charged_in_either_mode() {
        let meter = CpuMeter::default();
        // Cheap mode: 30 ms off the CPU (as if preempted) counts at most
        // one stretch cap.
        meter.resume();
        std::thread::sleep(Duration::from_millis(30));
        meter.pause();
        let used = meter.tick();
        assert!(used <= STRETCH_CAP, "{used:?}");
        assert!(used >= PRECISE_AFTER, "the stretch was charged: {used:?}");
        // Precise mode: sleeping costs (almost) nothing, spinning counts.
        meter.resume();
        std::thread::sleep(Duration::from_millis(30));
        let slept = meter.tick() - used;
        assert!(slept < Duration::from_millis(5), "{slept:?}");
        spin(Duration::from_millis(20));
        meter.pause();
        let spun = meter.tick() - used - slept;
        assert!(
            spun >= Duration::from_millis(10) && spun <= Duration::from_millis(30),
            "{spun:?}"
        );
    }

    #[test]
    fn a_short_request_is_timed_by_the_monotonic_clock() {
        let meter = CpuMeter::default();
        meter.resume();
        spin(Duration::from_micros(200));
        meter.pause();
        let used = meter.tick();
        assert!(
            used >= Duration::from_micros(200) && used < PRECISE_AFTER,
            "{used:?}"
        );
        assert!(meter.lock().running_since.is_none(), "paused");
    }
}
