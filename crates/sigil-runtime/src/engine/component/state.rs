//! What one component instance's `Store` carries: WASI 0.2 (sockets denied,
//! output captured), the `wasi:http` context and Sigil's send-request hook,
//! the memory limit over all of the component's memories, and the CPU meter.

use super::hooks::ComponentHooks;
use super::output::LogPipe;
use crate::engine::cpu::CpuMeter;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Most tables and instances one component may create (its core modules').
const MAX_PARTS: usize = 256;

/// The memory limit over all of a component's linear memories together
/// (`limits.memory_mb`), remembering whether it refused to grow.
pub struct ComponentLimiter {
    limit: usize,
    total: usize,
    /// Set once a growth past the limit was refused.
    pub refused: bool,
}

impl ResourceLimiter for ComponentLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if total > self.limit {
            self.refused = true;
            return Ok(false);
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|m| desired <= m))
    }

    fn instances(&self) -> usize {
        MAX_PARTS
    }

    fn tables(&self) -> usize {
        MAX_PARTS
    }

    fn memories(&self) -> usize {
        MAX_PARTS
    }
}

/// The data of one component instance's `Store`.
pub struct ComponentState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// Sigil's send-request hook (a separate field: `wasi:http` borrows it
    /// beside the table).
    pub hooks: ComponentHooks,
    /// The memory limit.
    pub limiter: ComponentLimiter,
    /// The CPU meter of the request running now.
    pub cpu: CpuMeter,
    /// Captured stdout.
    pub stdout: LogPipe,
    /// Captured stderr.
    pub stderr: LogPipe,
}

impl ComponentState {
    /// Whether a resource through which the guest could still answer the
    /// request it just returned from is alive in the table: its
    /// response-outparam (kept unset), a response not yet handed over, or a
    /// response body not finished. Such an instance must not serve another
    /// request: the next caller's data could reach the earlier caller.
    /// (What only reads the earlier request — its headers or body, which a
    /// garbage-collected guest such as StarlingMonkey drops late — tells the
    /// worker nothing it could not have kept in a global anyway.)
    pub fn can_still_answer(&mut self) -> bool {
        use wasmtime_wasi_http::p2::body::HostOutgoingBody;
        use wasmtime_wasi_http::p2::types::{HostOutgoingResponse, HostResponseOutparam};
        self.table.iter_mut().any(|entry| {
            entry.is::<HostResponseOutparam>()
                || entry.is::<HostOutgoingResponse>()
                || entry.is::<HostOutgoingBody>()
        })
    }

    /// Fresh state for an instance whose requests run with `hooks`, with
    /// `memory_bytes` of linear memory and `vars` as its environment.
    pub fn new(hooks: ComponentHooks, memory_bytes: u64, vars: &[(String, String)]) -> Self {
        let (stdout, stderr) = (LogPipe::default(), LogPipe::default());
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(vars)
            // No raw sockets: every outgoing request goes through wasi:http
            // and so through Sigil's outbound layer.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        ComponentState {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks,
            limiter: ComponentLimiter {
                limit: memory_bytes as usize,
                total: 0,
                refused: false,
            },
            cpu: CpuMeter::default(),
            stdout,
            stderr,
        }
    }

    /// Log what the guest printed since the last call, tagged with the
    /// worker and `request_id`.
    pub fn log_output(&self, request_id: &str) {
        let worker = &*self.hooks.call.worker;
        super::output::log_output(worker, request_id, "stdout", &self.stdout.take());
        super::output::log_output(worker, request_id, "stderr", &self.stderr.take());
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
