//! A compiled worker module: compiled once (or loaded from the cache),
//! pre-linked, with the exports every request uses resolved up front.

use super::Engine;
use super::store::RequestState;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::{InstancePre, Module, ModuleExport};

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

/// A compiled worker module, ready to instantiate without relinking.
#[derive(Clone)]
pub struct WorkerModule {
    pub(super) pre: InstancePre<RequestState>,
    /// The ABI exports, looked up once at load instead of by name per request.
    pub(super) exports: Arc<AbiExports>,
    /// SHA-256 of the module bytes (hex), for logs and change detection.
    pub digest: Arc<str>,
}

/// Indices of the exports every request uses (checked present at load).
pub(super) struct AbiExports {
    pub(super) memory: ModuleExport,
    pub(super) abi_version: ModuleExport,
    pub(super) alloc: ModuleExport,
    pub(super) handle: ModuleExport,
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
