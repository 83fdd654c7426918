//! Instantiating a module once at load, in a throwaway store with the
//! worker's request limits: data and element segments must fit, a start
//! function must finish within the CPU, memory and time limits without
//! trapping, and `sigil_abi_version` must return the ABI this runtime speaks.
//! This replaces calling `sigil_abi_version` on every request.

use super::compile::Shape;
use super::cpu::Metered;
use super::module::WorkerModule;
use super::{CallContext, Engine, SubrequestFuture, Subrequests};
use crate::config::{LimitExceeded, Limits};
use sigil_sdk::wire::{ABI_VERSION, FetchError};
use sigil_sdk::wire_ref::FetchRequestView;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Subrequests while a module loads: there are none to make.
struct NoSubrequests;

impl Subrequests for NoSubrequests {
    fn start(
        &self,
        _: FetchRequestView<'_>,
        _: &CallContext,
        _: &super::HeldBytes,
    ) -> Result<SubrequestFuture, FetchError> {
        Err(FetchError::InvalidRequest {
            reason: "subrequests cannot be made while the module loads".into(),
        })
    }
}

/// Which step of the probe failed.
enum Step {
    Instantiate,
    Version,
}

impl Engine {
    /// Instantiate `module` once within `limits` and check its ABI version;
    /// the error says what failed, in words.
    pub(super) fn check_instantiation(
        &self,
        path: &Path,
        module: &WorkerModule,
        limits: &Limits,
        shape: Shape,
    ) -> Result<(), String> {
        // A thread of its own with its own runtime: loads run on the loader
        // thread, in `sigil check`, or inside the serving runtime at start.
        let outcome = std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start a runtime to check the module: {e}"))?;
                runtime.block_on(self.probe(path, module, limits, shape))
            })
            .join()
        });
        outcome.unwrap_or_else(|_| {
            Err("checking the module panicked (a bug: please report it)".into())
        })
    }

    async fn probe(
        &self,
        path: &Path,
        module: &WorkerModule,
        limits: &Limits,
        shape: Shape,
    ) -> Result<(), String> {
        let name = path
            .file_name()
            .unwrap_or(path.as_os_str())
            .to_string_lossy();
        let call = CallContext {
            worker: name.as_ref().into(),
            request_id: "load".into(),
            limits: *limits,
            subrequests: Arc::new(NoSubrequests),
            forward: None,
            deadline: Instant::now() + limits.timeout,
            hop: crate::headers::Hop::default(),
            vars: Arc::from([]),
        };
        let mut store = self.new_store(call);
        let meter = store.data().cpu.clone();
        let mut step = Step::Instantiate;
        let run = async {
            let instance = module.pre.instantiate_async(&mut store).await?;
            step = Step::Version;
            let version = instance
                .get_module_export(&mut store, &module.exports.abi_version)
                .and_then(|e| e.into_func())
                .ok_or_else(|| wasmtime::format_err!("`sigil_abi_version` is not a function"))?
                .typed::<(), u32>(&store)?
                .call_async(&mut store, ())
                .await?;
            wasmtime::Result::Ok(version)
        };
        let outcome = tokio::time::timeout(limits.timeout, Metered::new(run, meter)).await;
        let what = match (&step, shape.has_start) {
            (Step::Instantiate, true) => "instantiating it (its start function)",
            (Step::Instantiate, false) => "instantiating it (its data and element segments)",
            (Step::Version, _) => "calling `sigil_abi_version`",
        };
        let err = match outcome {
            Ok(Ok(version)) if version == ABI_VERSION => return Ok(()),
            Ok(Ok(version)) => {
                return Err(format!(
                    "the export `sigil_abi_version` returned {version}; this runtime speaks ABI version {ABI_VERSION} (rebuild the worker against this sigil-sdk)"
                ));
            }
            Err(_) => format!(
                "did not finish within the wall-clock limit of {} ms (limits.timeout_ms)",
                limits.timeout.as_millis()
            ),
            Ok(Err(e)) => failure(&e, store.data().memory.refused, limits),
        };
        Err(format!(
            "{what} at load failed: {err}; every request would fail the same way, so the module is refused"
        ))
    }
}

/// What went wrong, in words: a limit, or the trap without its backtrace.
fn failure(err: &wasmtime::Error, memory_refused: bool, limits: &Limits) -> String {
    if let Some(limit) = err.downcast_ref::<LimitExceeded>() {
        return limit.to_string();
    }
    if memory_refused {
        return LimitExceeded::Memory {
            limit_mb: limits.memory_bytes >> 20,
        }
        .to_string();
    }
    let root = err.root_cause().to_string();
    crate::telemetry::logging::escape_controls(&root).into_owned()
}
