//! The wasm engine: compiling worker modules once, and running each request
//! in a fresh instance from a pre-linked `InstancePre` with the pooling
//! allocator, epoch-based CPU limits and per-store memory limits.
//!
//! The engine calls out only through the [`Subrequests`] trait it defines
//! (implemented by the outbound layer) and serves requests through
//! [`crate::state::WorkerHandler`] ([`SdkWorker`]).
//!
//! Loading a module is bounded and checked before any request sees it: size
//! and function count are checked before compiling (`compile.rs`), the
//! compilation itself runs in a child process with a memory limit when the
//! embedding says where the compiler is, and the compiled module is
//! instantiated once with the request limits to check its ABI (`probe.rs`).

mod abi;
mod cache;
mod compile;
pub mod component;
mod cpu;
mod environ;
mod invoke;
mod module;
mod output;
mod probe;
mod sdk_worker;
mod store;
mod subrequest;

pub use compile::{CompileLimits, run_compiler};
pub use module::{ModuleError, WorkerModule, read_module};
pub(crate) use output::{MAX_LINE, guest_log_line};
pub use output::{MAX_LOG_BYTES, MAX_LOG_LINES, OUTPUT_CAPTURE};
pub use sdk_worker::{MAX_HEADER_VALUE, MAX_RESPONSE_HEADERS, SdkWorker, response_from_view};
pub use store::RequestState;
pub use subrequest::{
    CallContext, Claim, Fetched, FetchedResponse, HeldBytes, SubrequestFuture, Subrequests,
};

use crate::config::limits::MAX_MEMORY_MB;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

/// How often the epoch advances; the CPU limit is checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Bytes of each instance slot's linear memory (and table) kept resident
/// between requests when the kernel supports `PAGEMAP_SCAN`; only pages a
/// request actually wrote are reset, so idle slots cost what they touched.
const KEEP_RESIDENT: usize = 4 << 20;

/// `server.max_instances` when not set.
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Most instances alive at once (pool slots).
    pub max_instances: u32,
    /// Directory of the compiled-module cache, if any.
    pub module_cache: Option<PathBuf>,
    /// The `sigil` binary whose hidden `__compile` subcommand compiles
    /// modules in a child process with a memory limit ([`run_compiler`]).
    /// `None` compiles in this process (tests, benches), still after the
    /// size and function-count checks.
    pub compiler: Option<PathBuf>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_instances: DEFAULT_MAX_INSTANCES,
            module_cache: None,
            compiler: None,
        }
    }
}

/// The settings that decide how modules are compiled, shared by the serving
/// engine and the compiler child so that both have the same
/// `precompile_compatibility_hash` and a module compiled by one loads in the
/// other. (Allocation settings such as the pooling allocator do not affect
/// compiled code and are added by [`Engine::new`] only.)
pub fn compile_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config
}

/// When the kernel supports it, reset a freed pool slot by rewriting only
/// the pages its request dirtied (found with the `PAGEMAP_SCAN` ioctl)
/// instead of `madvise(DONTNEED)`: no TLB-shootdown IPIs to the other
/// threads on every request, and no page faults on the next one. Both
/// engines (modules and components) use it.
pub(crate) fn reset_dirty_pages_only(pool: &mut PoolingAllocationConfig) {
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
    }
}

/// Start a thread named `name` that advances `engine`'s epoch every
/// [`EPOCH_TICK`] until the returned flag is set or the engine is gone.
pub(crate) fn spawn_epoch_ticker(
    engine: &wasmtime::Engine,
    name: &str,
) -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ticker, stopped) = (engine.weak(), stop.clone());
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match ticker.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
    Ok(stop)
}

/// The shared wasm engine.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<RequestState>,
    cache: cache::ModuleCache,
    compiler: Option<PathBuf>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Engine {
    /// Create the engine, its linker and the epoch ticker thread.
    pub fn new(settings: &EngineSettings) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        let n = settings.max_instances.max(1);
        pool.total_core_instances(n)
            .total_memories(n)
            .total_tables(n)
            .total_stacks(n)
            .max_memory_size((MAX_MEMORY_MB << 20) as usize);
        reset_dirty_pages_only(&mut pool);
        let mut config = compile_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // `SIGIL_PERF_MAP=1`: write /tmp/perf-<pid>.map so `perf` names the
        // workers' compiled functions (profiling only; costs nothing per call).
        if std::env::var_os("SIGIL_PERF_MAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = wasmtime::Engine::new(&config)?;
        let mut linker: Linker<RequestState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, RequestState::wasi)?;
        environ::add_to_linker(&mut linker)?;
        abi::add_to_linker(&mut linker)?;

        let stop_ticker = spawn_epoch_ticker(&engine, "sigil-epoch")?;
        let cache = cache::ModuleCache::new(settings.module_cache.clone(), &engine);
        Ok(Engine {
            engine,
            linker,
            cache,
            compiler: settings.compiler.clone(),
            stop_ticker,
        })
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }
}
