//! What one request's wasm `Store` carries: WASI, the memory limiter, the CPU
//! meter, the subrequests in flight and the context the host calls need.

use crate::inbound::forward::ForwardedClientCert;
use crate::limits::Limits;
use crate::outbound::WorkerOutbound;
use sigil_sdk::wire::FetchResult;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// Everything about the inbound request that host calls need.
#[derive(Clone)]
pub struct CallContext {
    /// The worker's name.
    pub worker: Arc<str>,
    /// The request id used in logs.
    pub request_id: Arc<str>,
    /// The worker's limits.
    pub limits: Limits,
    /// The worker's outbound view (bindings, allowed hosts, clients).
    pub outbound: Arc<WorkerOutbound>,
    /// The inbound client certificate to forward to origins, when the
    /// hostname forwards it.
    pub forward: Option<Arc<ForwardedClientCert>>,
    /// When the request must be finished.
    pub deadline: Instant,
    /// The worker's variables, exposed as environment variables.
    pub vars: Arc<[(String, String)]>,
}

/// A memory limiter that remembers whether it refused to grow, so a trap
/// after an allocation failure can be reported as the memory limit.
pub struct MemoryLimiter {
    inner: StoreLimits,
    /// Set once a growth past the limit was refused.
    pub refused: bool,
}

impl MemoryLimiter {
    fn new(memory_bytes: u64) -> Self {
        MemoryLimiter {
            inner: StoreLimitsBuilder::new()
                .memory_size(memory_bytes as usize)
                .instances(1)
                .trap_on_grow_failure(false)
                .build(),
            refused: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        if !ok {
            self.refused = true;
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

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
    thread_cpu: Option<Duration>,
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
        match (self.thread == now.thread, self.thread_cpu, now.thread_cpu) {
            (true, Some(then), Some(now)) => now.saturating_sub(then),
            _ => now.wall.saturating_duration_since(self.wall),
        }
    }
}

/// CPU time consumed by the calling thread.
#[cfg(unix)]
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(unix))]
fn thread_cpu_time() -> Option<Duration> {
    None
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

/// A subrequest started by the guest.
pub enum FetchSlot {
    /// Still running on the executor.
    Running(tokio::task::JoinHandle<FetchResult>),
    /// Finished; its encoded result waits for `fetch_read`.
    Done(Vec<u8>),
}

/// The subrequests of one request, by handle. Dropping it aborts any still running.
#[derive(Default)]
pub struct Fetches {
    next: u32,
    /// The subrequests by handle.
    pub slots: HashMap<u32, FetchSlot>,
    /// Subrequests started so far (for the limit).
    pub started: u32,
}

impl Fetches {
    /// Store a slot and return its handle.
    pub fn insert(&mut self, slot: FetchSlot) -> u32 {
        let handle = self.next;
        self.next = self.next.wrapping_add(1);
        self.slots.insert(handle, slot);
        handle
    }
}

impl Drop for Fetches {
    fn drop(&mut self) {
        for slot in self.slots.values() {
            if let FetchSlot::Running(task) = slot {
                task.abort();
            }
        }
    }
}

/// The data of one request's `Store`.
pub struct RequestState {
    /// WASI preview 1 context (stdout/stderr captured).
    pub wasi: WasiP1Ctx,
    /// The memory limiter.
    pub memory: MemoryLimiter,
    /// The CPU meter.
    pub cpu: CpuMeter,
    /// Context for host calls.
    pub call: CallContext,
    /// Subrequests in flight or finished.
    pub fetches: Fetches,
    /// The guest's panic message, if it panicked.
    pub panic_message: Option<String>,
    /// Captured stdout.
    pub stdout: MemoryOutputPipe,
    /// Captured stderr.
    pub stderr: MemoryOutputPipe,
}

/// How much guest stdout/stderr is kept per request.
const OUTPUT_CAPACITY: usize = 1 << 20;

impl RequestState {
    /// Fresh state for one request.
    pub fn new(call: CallContext) -> Self {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(&call.vars)
            .build_p1();
        RequestState {
            wasi,
            memory: MemoryLimiter::new(call.limits.memory_bytes),
            cpu: CpuMeter::default(),
            call,
            fetches: Fetches::default(),
            panic_message: None,
            stdout,
            stderr,
        }
    }
}
