//! The wasm engine: compiling worker modules once, and running each request
//! in a fresh instance from a pre-linked `InstancePre` with the pooling
//! allocator, epoch-based CPU limits and per-store memory limits.

mod abi;
mod cache;
mod invoke;
pub mod state;

pub use invoke::InvokeError;
pub use state::CallContext;

use crate::limits::MAX_MEMORY_MB;
use state::RequestState;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{
    Config, InstanceAllocationStrategy, InstancePre, Linker, Module, ModuleExport,
    PoolingAllocationConfig,
};

/// How often the epoch advances; the CPU limit is checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Bytes of each instance slot's linear memory (and table) kept resident
/// between requests when the kernel supports `PAGEMAP_SCAN`; only pages a
/// request actually wrote are reset, so idle slots cost what they touched.
const KEEP_RESIDENT: usize = 4 << 20;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Most instances alive at once (pool slots).
    pub max_instances: u32,
    /// Directory of the compiled-module cache, if any.
    pub module_cache: Option<PathBuf>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_instances: 1000,
            module_cache: None,
        }
    }
}

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The file could not be read.
    #[error(
        "{path}: cannot read the module: {source}; build it first (sigil build, or cargo build --target wasm32-wasip1)"
    )]
    Read {
        /// The module path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid wasm, or does not link against Sigil's imports.
    #[error("{path}: {message}")]
    Invalid {
        /// The module path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The shared wasm engine.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<RequestState>,
    cache: cache::ModuleCache,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// A compiled worker module, ready to instantiate without relinking.
#[derive(Clone)]
pub struct WorkerModule {
    pre: InstancePre<RequestState>,
    /// The ABI exports, looked up once at load instead of by name per request.
    exports: Arc<AbiExports>,
    /// SHA-256 of the module bytes (hex), for logs and change detection.
    pub digest: Arc<str>,
}

/// Indices of the exports every request uses (checked present at load).
pub(crate) struct AbiExports {
    pub(crate) memory: ModuleExport,
    pub(crate) abi_version: ModuleExport,
    pub(crate) alloc: ModuleExport,
    pub(crate) handle: ModuleExport,
}

impl AbiExports {
    fn of(module: &Module) -> Result<Self, String> {
        let get = |name: &str| {
            module.get_export_index(name).ok_or_else(|| {
                format!(
                    "the module does not export `{name}`; is it a Sigil worker? (export its handler with sigil_sdk::export_handler!)"
                )
            })
        };
        Ok(AbiExports {
            memory: get("memory")?,
            abi_version: get("sigil_abi_version")?,
            alloc: get("sigil_alloc")?,
            handle: get("sigil_handle")?,
        })
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
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            // Reset a freed slot by rewriting only the pages the request
            // dirtied (found with the PAGEMAP_SCAN ioctl) instead of
            // `madvise(DONTNEED)`: no TLB-shootdown IPIs to the other threads
            // on every request, and no page faults on the next one.
            pool.pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(KEEP_RESIDENT);
        }
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config)?;
        let mut linker: Linker<RequestState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| &mut s.wasi)?;
        abi::add_to_linker(&mut linker)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("sigil-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })?;
        let cache = cache::ModuleCache::new(settings.module_cache.clone(), &engine);
        Ok(Engine {
            engine,
            linker,
            cache,
            stop_ticker,
        })
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// Compile (or load from the cache) the module at `path` and pre-link it.
    pub fn load_module(&self, path: &Path) -> Result<WorkerModule, ModuleError> {
        let bytes = std::fs::read(path).map_err(|source| ModuleError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_module_bytes(path, &bytes)
    }

    /// Compile (or load from the cache) module `bytes` read from `path`.
    pub fn load_module_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<WorkerModule, ModuleError> {
        let invalid = |message: String| ModuleError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let (module, digest) = self
            .cache
            .get_or_compile(&self.engine, bytes)
            .map_err(|e| invalid(format!("not a valid wasm module: {e:#}")))?;
        let exports = AbiExports::of(&module).map_err(invalid)?;
        let pre = self.linker.instantiate_pre(&module).map_err(|e| {
            invalid(format!(
                "cannot link: {e:#}; workers may import only WASI preview 1 and sigil.* (build with sigil-sdk for wasm32-wasip1)"
            ))
        })?;
        Ok(WorkerModule {
            pre,
            exports: Arc::new(exports),
            digest: digest.into(),
        })
    }
}
