//! A compiled worker module: checked before compiling, compiled once (or
//! loaded from the cache), its ABI exports checked by kind and type,
//! pre-linked, and instantiated once with the request limits, so that a
//! module that cannot serve is refused at load (and a reload keeps the
//! previous generation) instead of failing every request.

use super::Engine;
use super::cache::{self, Compiled};
use super::compile::{self, CompileLimits};
use super::store::RequestState;
use crate::config::Limits;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::{ExternType, InstancePre, Module, ModuleExport, ValType};

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The file could not be read.
    #[error(
        "{path}: cannot read the module: {source}; build it first: `sigil build` builds every worker that has a `build` entry (`sigil dev` builds and serves)"
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
    /// The module is over a limit checked before compiling, or compiling it
    /// needed more memory or time than allowed.
    #[error("{path}: {message}")]
    Limit {
        /// The module path.
        path: PathBuf,
        /// Which limit, and by how much.
        message: String,
    },
    /// The module does not speak Sigil's ABI: an export is missing or has
    /// the wrong kind or type, the ABI version differs, or instantiating it
    /// (data segments, start function) fails within the request limits.
    #[error("{path}: {message}")]
    Abi {
        /// The module path.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
}

/// A compiled worker module, ready to instantiate without relinking.
#[derive(Clone)]
pub struct WorkerModule {
    pub(super) pre: InstancePre<RequestState>,
    /// The ABI exports, looked up once at load instead of by name per request.
    pub(super) exports: Arc<AbiExports>,
    /// Keeps the compiled module in the engine's cache while in use.
    _compiled: Arc<Compiled>,
    /// SHA-256 of the module bytes (hex), for logs and change detection.
    pub digest: Arc<str>,
}

/// Indices of the exports every request uses (checked at load).
pub(super) struct AbiExports {
    pub(super) memory: ModuleExport,
    pub(super) abi_version: ModuleExport,
    pub(super) alloc: ModuleExport,
    pub(super) handle: ModuleExport,
}

/// The ABI's function exports and their wasm types, as `sigil_sdk::export_handler!`
/// declares them (`u32`, `usize` and pointers are `i32` on wasm32, `u64` is `i64`).
const ABI_FUNCTIONS: [(&str, &str); 3] = [
    ("sigil_abi_version", "() -> i32"),
    ("sigil_alloc", "(i32) -> i32"),
    ("sigil_handle", "(i32, i32) -> i64"),
];

fn kind(ty: &ExternType) -> &'static str {
    match ty {
        ExternType::Func(_) => "a function",
        ExternType::Global(_) => "a global",
        ExternType::Table(_) => "a table",
        ExternType::Memory(_) => "a memory",
        ExternType::Tag(_) => "a tag",
    }
}

/// A function type written as `(i32, i32) -> i64`.
fn signature(ty: &wasmtime::FuncType) -> String {
    let list = |v: &mut dyn Iterator<Item = ValType>| {
        v.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    let results: Vec<ValType> = ty.results().collect();
    let results = match results.as_slice() {
        [one] => one.to_string(),
        _ => format!("({})", list(&mut results.into_iter())),
    };
    format!("({}) -> {results}", list(&mut ty.params()))
}

impl AbiExports {
    /// Look up the ABI exports, checking each one's kind and type.
    fn of(module: &Module) -> Result<Self, String> {
        let missing = |name: &str| {
            format!(
                "the module does not export `{name}`; is it a Sigil worker? (export its handler with sigil_sdk::export_handler!)"
            )
        };
        match module.get_export("memory") {
            None => return Err(missing("memory")),
            Some(ExternType::Memory(_)) => {}
            Some(other) => {
                return Err(format!(
                    "the export `memory` is {}; expected the module's linear memory",
                    kind(&other)
                ));
            }
        }
        for (name, expected) in ABI_FUNCTIONS {
            let found = match module.get_export(name) {
                None => return Err(missing(name)),
                Some(ExternType::Func(f)) => f,
                Some(other) => {
                    return Err(format!(
                        "the export `{name}` is {}; expected a function {expected} (export it with sigil_sdk::export_handler!)",
                        kind(&other)
                    ));
                }
            };
            let found = signature(&found);
            if found != expected {
                return Err(format!(
                    "the export `{name}` has type {found}; expected {expected} (build the worker with sigil_sdk::export_handler!)"
                ));
            }
        }
        let index = |name: &str| module.get_export_index(name).ok_or_else(|| missing(name));
        Ok(AbiExports {
            memory: index("memory")?,
            abi_version: index("sigil_abi_version")?,
            alloc: index("sigil_alloc")?,
            handle: index("sigil_handle")?,
        })
    }
}

/// The bytes of the worker module (or component) at `path`: a regular file
/// within `max_module_mb`, so a device or a FIFO named as the module cannot
/// hang the loader and a huge file cannot fill memory.
pub fn read_module(path: &Path, compile: &CompileLimits) -> Result<Vec<u8>, ModuleError> {
    sigil_pki::fs::read_regular(path, compile.max_module_bytes).map_err(|source| {
        if source.kind() == std::io::ErrorKind::InvalidData {
            ModuleError::Limit {
                path: path.to_path_buf(),
                message: format!("{source} (server.max_module_mb); refused before compiling"),
            }
        } else {
            ModuleError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

impl Engine {
    /// Load the module at `path`: check it against `compile` before
    /// compiling, compile it (or take it from the cache), check its ABI
    /// exports, pre-link it, and instantiate it once within `request`.
    pub fn load_module(
        &self,
        path: &Path,
        compile: &CompileLimits,
        request: &Limits,
    ) -> Result<WorkerModule, ModuleError> {
        let bytes = read_module(path, compile)?;
        self.load_module_bytes(path, &bytes, compile, request)
    }

    /// Like [`load_module`](Self::load_module), with the module `bytes` read from `path`.
    pub fn load_module_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        compile: &CompileLimits,
        request: &Limits,
    ) -> Result<WorkerModule, ModuleError> {
        let at = |make: fn(PathBuf, String) -> ModuleError| {
            move |message: String| make(path.to_path_buf(), message)
        };
        let invalid = at(|path, message| ModuleError::Invalid { path, message });
        let abi = at(|path, message| ModuleError::Abi { path, message });
        let shape = compile::precheck(bytes, compile).map_err(|message| {
            if message.starts_with("not a valid wasm module") {
                invalid(message)
            } else {
                ModuleError::Limit {
                    path: path.to_path_buf(),
                    message,
                }
            }
        })?;
        let digest = sigil_pki::fingerprint_sha256_hex(bytes);
        let compiled = match self.cache.get(&self.engine, &digest) {
            Some(c) => c,
            None => self.compile(path, bytes, &digest, compile)?,
        };
        let exports = AbiExports::of(&compiled.module).map_err(abi)?;
        let pre = self.linker.instantiate_pre(&compiled.module).map_err(|e| {
            invalid(format!(
                "cannot link: {e:#}; workers may import only WASI preview 1 and sigil.* (build with sigil-sdk for wasm32-wasip1)"
            ))
        })?;
        let module = WorkerModule {
            pre,
            exports: Arc::new(exports),
            _compiled: compiled,
            digest: digest.into(),
        };
        self.check_instantiation(path, &module, request, shape)
            .map_err(abi)?;
        Ok(module)
    }

    /// Compile `bytes` (already checked by `precheck`): in the compiler child
    /// when there is one, else in this process.
    fn compile(
        &self,
        path: &Path,
        bytes: &[u8],
        digest: &str,
        limits: &CompileLimits,
    ) -> Result<Arc<Compiled>, ModuleError> {
        let invalid = |message: String| ModuleError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let Some(compiler) = &self.compiler else {
            let module = Module::new(&self.engine, bytes)
                .map_err(|e| invalid(format!("not a valid wasm module: {e:#}")))?;
            return Ok(self.cache.insert(digest, module, None));
        };
        let serialized = compile::in_child(compiler, bytes, limits, compile::Artifact::Module)
            .map_err(|failure| {
                let message = failure.message(path, limits);
                match failure {
                    compile::ChildFailure::Invalid(_) => invalid(message),
                    _ => ModuleError::Limit {
                        path: path.to_path_buf(),
                        message,
                    },
                }
            })?;
        let module = cache::deserialize(&self.engine, &serialized, cache::Source::CompilerChild)
            .map_err(|e| invalid(format!("the compiler's output does not load: {e:#}")))?;
        Ok(self.cache.insert(digest, module, Some(&serialized)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineSettings;
    use std::sync::OnceLock;

    fn engine() -> &'static Engine {
        static ENGINE: OnceLock<Engine> = OnceLock::new();
        ENGINE.get_or_init(|| {
            Engine::new(&EngineSettings {
                max_instances: 8,
                ..Default::default()
            })
            .unwrap()
        })
    }

    /// A module with the ABI exports; `replace` swaps a piece of it.
    fn worker(replace: &[(&str, &str)]) -> Vec<u8> {
        let mut wat = r#"(module
            (memory (export "memory") 1)
            (func (export "sigil_abi_version") (result i32) i32.const 1)
            (func (export "sigil_alloc") (param i32) (result i32) i32.const 1024)
            (func (export "sigil_handle") (param i32 i32) (result i64) i64.const 0)
            ;; extra
        )"#
        .to_string();
        for (from, to) in replace {
            assert!(wat.contains(from), "{from}");
            wat = wat.replace(from, to);
        }
        wat::parse_str(&wat).unwrap()
    }

    fn load(bytes: &[u8]) -> Result<WorkerModule, String> {
        let limits = Limits {
            cpu: std::time::Duration::from_millis(50),
            ..Limits::default()
        };
        engine()
            .load_module_bytes(
                Path::new("/w/bad.wasm"),
                bytes,
                &CompileLimits::default(),
                &limits,
            )
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_module_speaking_the_abi_loads() {
        load(&worker(&[])).unwrap();
    }

    #[test]
    fn each_abi_mistake_is_refused_with_a_named_error() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (
                &[("i32.const 1)", "i32.const 99)")],
                "the export `sigil_abi_version` returned 99; this runtime speaks ABI version 1",
            ),
            (
                &[("(param i32 i32) (result i64)", "(param i32) (result i64)")],
                "the export `sigil_handle` has type (i32) -> i64; expected (i32, i32) -> i64",
            ),
            (
                &[(
                    r#"(func (export "sigil_handle") (param i32 i32) (result i64) i64.const 0)"#,
                    r#"(global (export "sigil_handle") i64 (i64.const 0))"#,
                )],
                "the export `sigil_handle` is a global; expected a function (i32, i32) -> i64",
            ),
            (
                &[(r#"(memory (export "memory") 1)"#, "(memory 1)")],
                "the module does not export `memory`",
            ),
            (
                &[(";; extra", "(func $s unreachable) (start $s)")],
                "instantiating it (its start function) at load failed: wasm trap: wasm `unreachable` instruction executed",
            ),
            (
                &[(";; extra", "(func $s (loop br 0)) (start $s)")],
                "instantiating it (its start function) at load failed: exceeded its CPU time limit of 50 ms (limits.cpu_ms)",
            ),
            (
                &[(";; extra", r#"(data (i32.const 65530) "0123456789")"#)],
                "instantiating it (its data and element segments) at load failed: wasm trap: out of bounds memory access",
            ),
        ];
        for (replace, expected) in cases {
            let err = load(&worker(replace))
                .err()
                .unwrap_or_else(|| panic!("loaded: {replace:?}"));
            assert!(err.starts_with("/w/bad.wasm: "), "{err}");
            assert!(err.contains(expected), "expected {expected:?} in\n{err}");
            assert!(!err.contains("wasm backtrace"), "{err}");
        }
    }
}
