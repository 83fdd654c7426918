//! The engine components run on: its own wasmtime engine (a component holds
//! several core instances, memories and tables, so its pool is sized
//! differently from the SDK modules' pool), pre-linked against WASI 0.2 and
//! `wasi:http`, with its own epoch ticker. Created only when a manifest has a
//! component worker.

use super::cache::ComponentCache;
use super::state::ComponentState;
use crate::config::limits::MAX_MEMORY_MB;
use crate::engine::EngineSettings;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::component::Linker;
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Core instances one component may hold: componentize-py links about a
/// dozen core modules, componentize-js a few, Rust three.
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;

/// Elements of one table: SpiderMonkey's and CPython's indirect-call tables
/// are larger than wasmtime's default of 20,000.
const TABLE_ELEMENTS: usize = 64 * 1024;

/// The wasmtime engine and linker of component workers.
pub struct ComponentEngine {
    pub(super) engine: wasmtime::Engine,
    pub(super) linker: Linker<ComponentState>,
    pub(super) cache: ComponentCache,
    /// How many more instances may sit idle (reused workers) across all
    /// component workers: the pool has room for `max_instances` running
    /// instances and this many idle ones beside them.
    pub(super) idle_budget: Arc<std::sync::atomic::AtomicUsize>,
    /// The `sigil` binary that compiles in a child process (`None`: compile here).
    pub(super) compiler: Option<std::path::PathBuf>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for ComponentEngine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// The pooling allocator for `instances` component instances at once.
fn pool(instances: u32) -> PoolingAllocationConfig {
    let n = instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT / 4))
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(n.saturating_mul(2))
        .max_memories_per_component(8)
        .total_tables(n.saturating_mul(4))
        .max_tables_per_component(16)
        .max_tables_per_module(4)
        .table_elements(TABLE_ELEMENTS)
        .total_stacks(n)
        .max_memory_size((MAX_MEMORY_MB << 20) as usize);
    crate::engine::reset_dirty_pages_only(&mut pool);
    pool
}

/// The compilation settings of components (the on-disk cache is keyed by
/// their hash).
fn config(instances: u32) -> Config {
    // `compile_config()`: the compiler child compiles components with it.
    let mut config = crate::engine::compile_config();
    config
        .wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool(instances)));
    config
}

impl ComponentEngine {
    /// Create the engine, its linker (all of WASI 0.2, sockets denied, plus
    /// `wasi:http`) and its epoch ticker.
    pub fn new(settings: &EngineSettings) -> anyhow::Result<Self> {
        // Running instances are bounded by the worker slots (max_instances);
        // idle reused ones by the idle budget: room for both.
        let engine = wasmtime::Engine::new(&config(settings.max_instances.saturating_mul(2)))?;
        let mut linker: Linker<ComponentState> = Linker::new(&engine);
        // The full WASI 0.2 linker: componentize-js and componentize-py
        // import filesystem, sockets and cli interfaces beyond the proxy
        // world. Sockets are denied per store; all egress is `wasi:http`.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let stop_ticker = crate::engine::spawn_epoch_ticker(&engine, "sigil-epoch-components")?;
        let cache = ComponentCache::new(settings.module_cache.clone(), &engine);
        Ok(ComponentEngine {
            engine,
            linker,
            cache,
            compiler: settings.compiler.clone(),
            idle_budget: Arc::new(std::sync::atomic::AtomicUsize::new(
                settings.max_instances as usize,
            )),
            stop_ticker,
        })
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }
}
