//! What one request's wasm `Store` carries: WASI, the memory limiter, the CPU
//! meter, the subrequests in flight and the context the host calls need.

use super::cpu::CpuMeter;
use super::output::{CappedPipe, LogBudget};
use super::subrequest::{CallContext, Claim, Fetched, HeldBytes, SubrequestFuture};
use std::collections::HashMap;
use std::task::{Context, Poll};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p1::WasiP1Ctx;

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

/// A subrequest started by the guest.
pub enum FetchSlot {
    /// Still on its way. It is polled by the request's own task, not
    /// spawned: when the guest waits for any subrequest, every pending one
    /// makes progress.
    Pending(SubrequestFuture),
    /// Finished; its encoded result waits for `fetch_read`, its body still
    /// counted in the request's held bytes.
    Done(Vec<u8>, Option<Claim>),
}

/// The subrequests of one request, by handle. Dropping it cancels any
/// still pending.
#[derive(Default)]
pub struct Fetches {
    next: u32,
    /// The subrequests by handle.
    pub slots: HashMap<u32, FetchSlot>,
    /// Subrequests started so far (for the limit).
    pub started: u32,
    /// The bytes the host holds for them (made at the first subrequest).
    held: Option<HeldBytes>,
}

impl Fetches {
    /// Store a slot and return its handle.
    pub fn insert(&mut self, slot: FetchSlot) -> u32 {
        let handle = self.next;
        self.next = self.next.wrapping_add(1);
        self.slots.insert(handle, slot);
        handle
    }

    /// The count of the bytes the host holds for these subrequests.
    pub fn held(&mut self) -> &HeldBytes {
        self.held.get_or_insert_with(HeldBytes::default)
    }
}

impl Fetches {
    /// Poll every pending subrequest once, turning those that finished into
    /// their encoded result (`encode`). Ready when `handle` is finished (or
    /// unknown).
    pub fn poll_pending(
        &mut self,
        cx: &mut Context<'_>,
        handle: Option<u32>,
        encode: fn(&Fetched) -> Vec<u8>,
    ) -> Poll<()> {
        for slot in self.slots.values_mut() {
            if let FetchSlot::Pending(future) = slot
                && let Poll::Ready(mut result) = future.as_mut().poll(cx)
            {
                let held = result.as_mut().ok().and_then(|r| r.held.take());
                *slot = FetchSlot::Done(encode(&result), held);
            }
        }
        match handle.and_then(|h| self.slots.get(&h)) {
            Some(FetchSlot::Pending(_)) => Poll::Pending,
            _ => Poll::Ready(()),
        }
    }
}

/// The data of one request's `Store`.
pub struct RequestState {
    /// WASI preview 1 context (stdout/stderr captured), made at the
    /// guest's first WASI call: most requests make none, and building it
    /// (random number generators, tables) cost about a microsecond.
    wasi: Option<WasiP1Ctx>,
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
    /// Captured stdout (the first `OUTPUT_CAPTURE` bytes).
    pub stdout: CappedPipe,
    /// Captured stderr (the first `OUTPUT_CAPTURE` bytes).
    pub stderr: CappedPipe,
    /// What this request may still add to the server log.
    pub log: LogBudget,
    /// The instance's exported memory, once instantiated: host calls read
    /// and write it without looking the export up by name each time.
    pub guest_memory: Option<wasmtime::Memory>,
}

impl RequestState {
    /// Fresh state for one request.
    pub fn new(call: CallContext) -> Self {
        RequestState {
            wasi: None,
            memory: MemoryLimiter::new(call.limits.memory_bytes),
            cpu: CpuMeter::default(),
            call,
            fetches: Fetches::default(),
            panic_message: None,
            stdout: CappedPipe::default(),
            stderr: CappedPipe::default(),
            log: LogBudget::default(),
            guest_memory: None,
        }
    }

    /// The WASI context, made on first use: stdout and stderr go to the
    /// capped pipes, the worker's variables are its environment.
    pub fn wasi(&mut self) -> &mut WasiP1Ctx {
        let (stdout, stderr, vars) = (&self.stdout, &self.stderr, &self.call.vars);
        self.wasi.get_or_insert_with(|| {
            wasmtime_wasi::WasiCtxBuilder::new()
                .stdout(stdout.clone())
                .stderr(stderr.clone())
                .envs(vars)
                .build_p1()
        })
    }
}
