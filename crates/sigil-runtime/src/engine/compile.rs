//! Compiling a module within bounds.
//!
//! Before anything is compiled, the module's size and its number of
//! functions are checked against documented limits (`[server]
//! max_module_mb`, `max_module_functions`): compilation memory grows with
//! the number of functions, and a module with 100,000 tiny functions needs
//! more than half a GiB. Then, when the embedding says where the `sigil`
//! binary is, the module is compiled in a child process (`sigil __compile`,
//! [`run_compiler`]) whose address space is capped with `RLIMIT_AS`
//! (`compile_memory_mb`) and whose run time is capped (`compile_timeout_secs`):
//! a module that needs more is refused with a named error, and neither the
//! memory nor a crash of the compiler reaches the serving process. Without a
//! compiler binary (tests, benches) modules compile in-process after the same
//! checks.

use super::compile_config;
use crate::config::ServerSection;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Default of `[server] max_module_mb`.
pub const DEFAULT_MAX_MODULE_MB: u64 = 64;
/// Default of `[server] max_module_functions`.
pub const DEFAULT_MAX_MODULE_FUNCTIONS: u32 = 50_000;
/// Default of `[server] compile_memory_mb`.
pub const DEFAULT_COMPILE_MEMORY_MB: u64 = 1024;
/// Default of `[server] compile_timeout_secs`.
pub const DEFAULT_COMPILE_TIMEOUT_SECS: u64 = 60;

/// The child's exit status when the module is not valid wasm.
const EXIT_INVALID: i32 = 2;
/// The child's exit status when it ran out of its memory allowance.
const EXIT_NO_MEMORY: i32 = 3;
/// Most bytes of the child's stderr kept for an error message.
const STDERR_TAIL: usize = 4 << 10;

/// The limits a module is checked against before and while it compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    /// Largest module file, in bytes (`server.max_module_mb`).
    pub max_module_bytes: u64,
    /// Most functions a module may define (`server.max_module_functions`).
    pub max_functions: u32,
    /// Address space the compiler child may add to what it has at start, in
    /// MiB (`server.compile_memory_mb`).
    pub memory_mb: u64,
    /// Longest the compiler child may run (`server.compile_timeout_secs`).
    pub timeout: Duration,
}

impl Default for CompileLimits {
    fn default() -> Self {
        CompileLimits {
            max_module_bytes: DEFAULT_MAX_MODULE_MB << 20,
            max_functions: DEFAULT_MAX_MODULE_FUNCTIONS,
            memory_mb: DEFAULT_COMPILE_MEMORY_MB,
            timeout: Duration::from_secs(DEFAULT_COMPILE_TIMEOUT_SECS),
        }
    }
}

impl CompileLimits {
    /// The limits `[server]` sets, defaults for the keys it leaves out.
    pub fn from_server(server: &ServerSection) -> Self {
        let d = CompileLimits::default();
        CompileLimits {
            max_module_bytes: server
                .max_module_mb
                .map(|mb| mb.saturating_mul(1 << 20))
                .unwrap_or(d.max_module_bytes),
            max_functions: server.max_module_functions.unwrap_or(d.max_functions),
            memory_mb: server.compile_memory_mb.unwrap_or(d.memory_mb),
            timeout: server
                .compile_timeout_secs
                .map(Duration::from_secs)
                .unwrap_or(d.timeout),
        }
    }
}

/// What the checks before compiling learned about a module.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Shape {
    /// Functions the module defines (its code section entries).
    pub(super) functions: u32,
    /// Whether it has a start function (run by every instantiation).
    pub(super) has_start: bool,
}

/// Check `bytes` against `limits` without compiling: its size, that it is a
/// core module, and how many functions it defines.
pub(super) fn precheck(bytes: &[u8], limits: &CompileLimits) -> Result<Shape, String> {
    use wasmparser::{Encoding, Parser, Payload};
    if bytes.len() as u64 > limits.max_module_bytes {
        return Err(format!(
            "the module is {} bytes, over the limit of {} MiB (server.max_module_mb); refused before compiling",
            bytes.len(),
            limits.max_module_bytes >> 20
        ));
    }
    let too_many = |n: u32| {
        format!(
            "the module defines {n} functions, over the limit of {} (server.max_module_functions); refused before compiling",
            limits.max_functions
        )
    };
    let mut shape = Shape::default();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("not a valid wasm module: {e}"))?;
        match payload {
            Payload::Version {
                encoding: Encoding::Component,
                ..
            } => {
                return Err(
                    "not a valid wasm module: it is a WebAssembly component; Sigil runs core modules built with sigil-sdk for wasm32-wasip1".into(),
                );
            }
            Payload::FunctionSection(reader) if reader.count() > limits.max_functions => {
                return Err(too_many(reader.count()));
            }
            Payload::CodeSectionStart { count, .. } => {
                if count > limits.max_functions {
                    return Err(too_many(count));
                }
                shape.functions = count;
            }
            Payload::StartSection { .. } => shape.has_start = true,
            _ => {}
        }
    }
    Ok(shape)
}

/// What the compiler child compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::engine) enum Artifact {
    /// A core module (`precompile_module`).
    Module,
    /// A component (`precompile_component`).
    Component,
}

/// Why compiling in the child process failed.
#[derive(Debug)]
pub(in crate::engine) enum ChildFailure {
    /// The module is not valid wasm (the compiler's message).
    Invalid(String),
    /// The child ran out of its memory allowance or was killed.
    Memory(String),
    /// The child ran longer than its limit and was killed.
    Timeout,
    /// The child could not be started, or failed another way.
    Other(String),
}

impl ChildFailure {
    /// The message for the module at `path`, naming the limits.
    pub(in crate::engine) fn message(&self, path: &Path, limits: &CompileLimits) -> String {
        let file = path
            .file_name()
            .unwrap_or(path.as_os_str())
            .to_string_lossy();
        match self {
            ChildFailure::Invalid(e) => format!("not a valid wasm module: {e}"),
            ChildFailure::Memory(how) => format!(
                "compiling {file} needed more than {} MiB (server.compile_memory_mb; the compiler {how}); refused",
                limits.memory_mb
            ),
            ChildFailure::Timeout => format!(
                "compiling {file} took longer than {} s (server.compile_timeout_secs); refused",
                limits.timeout.as_secs()
            ),
            ChildFailure::Other(e) => format!("the compiler process failed: {e}"),
        }
    }
}

/// Compile `bytes` with `compiler __compile` in a child process bounded by
/// `limits`; returns the serialized module (as `Module::serialize` writes it).
pub(in crate::engine) fn in_child(
    compiler: &Path,
    bytes: &[u8],
    limits: &CompileLimits,
    kind: Artifact,
) -> Result<Vec<u8>, ChildFailure> {
    let mut command = Command::new(compiler);
    command
        // The C library's allocator, so that the address-space cap bounds
        // what compiling allocates (see `crate::allocator`).
        .env(crate::allocator::ALLOCATOR_ENV, "system")
        .args(["__compile", "--in", "-", "--out", "-", "--memory-mb"])
        .arg(limits.memory_mb.to_string());
    if kind == Artifact::Component {
        command.arg("--component");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ChildFailure::Other(format!("cannot start {}: {e}", compiler.display())))?;
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let outcome = std::thread::scope(|s| {
        // The child reads the whole module before writing anything, and the
        // pipes are drained on their own threads, so nothing can deadlock.
        s.spawn(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(bytes);
            }
        });
        let out = s.spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut o) = stdout {
                let _ = o.read_to_end(&mut buf);
            }
            buf
        });
        let err = s.spawn(move || stderr.map(tail).unwrap_or_default());
        let status = wait_within(&mut child, limits.timeout);
        (status, out.join(), err.join())
    });
    let (status, out, err) = outcome;
    let stderr = err.unwrap_or_default();
    match status {
        Ok(None) => Err(ChildFailure::Timeout),
        Ok(Some(status)) if status.success() => {
            out.map_err(|_| ChildFailure::Other("reading the compiled module failed".into()))
        }
        Ok(Some(status)) => Err(failure(status, stderr)),
        Err(e) => Err(ChildFailure::Other(format!(
            "waiting for the compiler: {e}"
        ))),
    }
}

/// Wait for `child` for up to `timeout`; kill it and return `None` after that.
fn wait_within(
    child: &mut std::process::Child,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    // A timeout past what the clock can hold means no timeout.
    let deadline = Instant::now().checked_add(timeout);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The last [`STDERR_TAIL`] bytes of a child's stderr, as text.
fn tail(mut stderr: std::process::ChildStderr) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut buf) {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * STDERR_TAIL {
            kept.drain(..kept.len() - STDERR_TAIL);
        }
    }
    let start = kept.len().saturating_sub(STDERR_TAIL);
    String::from_utf8_lossy(&kept[start..]).trim().to_string()
}

/// What a failed child's exit status and stderr mean.
fn failure(status: ExitStatus, stderr: String) -> ChildFailure {
    use std::os::unix::process::ExitStatusExt as _;
    let out_of_memory = stderr.contains("memory allocation of")
        || stderr.contains("Cannot allocate memory")
        || stderr.contains("out of memory");
    // Under a small address-space cap the compiler's worker threads cannot
    // get their stacks: rayon or std says so and the child panics.
    let no_threads =
        stderr.contains("ThreadPoolBuildError") || stderr.contains("failed to spawn thread");
    match (status.code(), status.signal()) {
        (Some(EXIT_INVALID), _) => ChildFailure::Invalid(stderr),
        _ if no_threads => {
            ChildFailure::Memory("could not start its threads within that address space".into())
        }
        (Some(EXIT_NO_MEMORY), _) => ChildFailure::Memory("ran out of memory".into()),
        (_, Some(signal)) => ChildFailure::Memory(format!(
            "was killed by signal {signal}{}",
            if out_of_memory {
                " after an allocation failed"
            } else {
                ""
            }
        )),
        _ if out_of_memory => ChildFailure::Memory("ran out of memory".into()),
        (code, _) => ChildFailure::Other(format!(
            "exit status {}: {}",
            code.unwrap_or(-1),
            crate::telemetry::logging::escape_controls(&stderr)
        )),
    }
}

/// Why [`run_compiler`] failed; [`CompilerExit::code`] is the process exit status.
#[derive(Debug, thiserror::Error)]
pub enum CompilerExit {
    /// The input could not be read or the output written.
    #[error("{0}")]
    Io(String),
    /// The module is not valid wasm.
    #[error("{0}")]
    Invalid(String),
    /// Compiling needed more memory than allowed.
    #[error("out of memory: {0}")]
    NoMemory(String),
}

impl CompilerExit {
    /// The exit status the parent reads.
    pub fn code(&self) -> u8 {
        match self {
            CompilerExit::Io(_) => 1,
            CompilerExit::Invalid(_) => EXIT_INVALID as u8,
            CompilerExit::NoMemory(_) => EXIT_NO_MEMORY as u8,
        }
    }
}

/// The hidden `sigil __compile` subcommand: cap this process's address space
/// at what it uses now plus `memory_mb` MiB (`RLIMIT_AS`), read a module from
/// `input` (`-` = stdin), compile it with [`compile_config`] and write the
/// serialized module to `output` (`-` = stdout). With `component`, the input
/// is a component (the component engine's compilation settings are the same
/// `compile_config()`).
pub fn run_compiler(
    input: &Path,
    output: &Path,
    memory_mb: Option<u64>,
    component: bool,
) -> Result<(), CompilerExit> {
    if let Some(mb) = memory_mb {
        if crate::allocator::in_use() == Some(crate::allocator::Choice::Mimalloc) {
            return Err(CompilerExit::Io(format!(
                "--memory-mb needs the C library's allocator (mimalloc reserves address space up front, so the cap would not bound compiling): run with {}=system",
                crate::allocator::ALLOCATOR_ENV
            )));
        }
        limit_address_space(mb).map_err(CompilerExit::Io)?;
    }
    let dash = Path::new("-");
    let mut bytes = Vec::new();
    let read = if input == dash {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::read(input).map(|b| bytes = b)
    };
    read.map_err(|e| CompilerExit::Io(format!("cannot read {}: {e}", input.display())))?;
    let engine = wasmtime::Engine::new(&compile_config())
        .map_err(|e| CompilerExit::Io(format!("cannot create the engine: {e:#}")))?;
    let compiled = if component {
        engine.precompile_component(&bytes)
    } else {
        engine.precompile_module(&bytes)
    };
    let compiled = compiled.map_err(|e| {
        let text = format!("{e:#}");
        if text.contains("os error 12") || text.contains("allocat") {
            CompilerExit::NoMemory(text)
        } else {
            CompilerExit::Invalid(text)
        }
    })?;
    drop(bytes);
    let written = if output == dash {
        let mut out = std::io::stdout().lock();
        out.write_all(&compiled).and_then(|()| out.flush())
    } else {
        std::fs::write(output, &compiled)
    };
    written.map_err(|e| CompilerExit::Io(format!("cannot write {}: {e}", output.display())))
}

/// Cap the address space at the current size plus `mb` MiB.
fn limit_address_space(mb: u64) -> Result<(), String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let now = current_address_space().unwrap_or(0);
    let cap = now.saturating_add(mb.saturating_mul(1 << 20));
    setrlimit(
        Resource::As,
        Rlimit {
            current: Some(cap),
            maximum: Some(cap),
        },
    )
    .map_err(|e| format!("cannot limit the compiler's memory to {mb} MiB: {e}"))
}

/// This process's address space in bytes (`VmSize` of `/proc/self/status`).
fn current_address_space() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{DefaultHasher, Hash, Hasher};

    #[test]
    fn a_compiler_without_threads_under_the_cap_ran_out_of_memory() {
        use std::os::unix::process::ExitStatusExt as _;
        // What `compile_memory_mb = 1` made the child print (before, the
        // operator saw this panic instead of the memory limit's message).
        let stderr = "thread 'main' (19814) panicked at rayon-core-1.13.0/src/registry.rs:171:10:\n\
            The global thread pool has not been initialized.: ThreadPoolBuildError { kind: \
            IOError(Os { code: 11, kind: WouldBlock, message: \"Resource temporarily unavailable\" }) }";
        let failure = failure(ExitStatus::from_raw(101 << 8), stderr.into());
        let limits = CompileLimits {
            memory_mb: 1,
            ..CompileLimits::default()
        };
        let message = failure.message(Path::new("/w/hello.wasm"), &limits);
        assert_eq!(
            message,
            "compiling hello.wasm needed more than 1 MiB (server.compile_memory_mb; the compiler \
             could not start its threads within that address space); refused"
        );
    }

    #[test]
    fn a_timeout_too_long_for_the_clock_waits_without_one() {
        // Before: `compile_timeout_secs = 18446744073709551615` panicked
        // adding the timeout to the clock.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let status = wait_within(&mut child, Duration::MAX).unwrap();
        assert!(status.is_some_and(|s| s.success()));
    }

    fn module_with_functions(n: usize) -> Vec<u8> {
        let mut wat = String::from("(module");
        for _ in 0..n {
            wat.push_str(" (func)");
        }
        wat.push(')');
        wat::parse_str(&wat).unwrap()
    }

    #[test]
    fn too_many_functions_are_refused_before_compiling() {
        let limits = CompileLimits {
            max_functions: 100,
            ..CompileLimits::default()
        };
        let shape = precheck(&module_with_functions(100), &limits).unwrap();
        assert_eq!(shape.functions, 100);
        let err = precheck(&module_with_functions(101), &limits).unwrap_err();
        assert!(
            err.contains(
                "defines 101 functions, over the limit of 100 (server.max_module_functions)"
            ),
            "{err}"
        );
    }

    #[test]
    fn an_oversized_module_is_refused_before_parsing() {
        let limits = CompileLimits {
            max_module_bytes: 1 << 20,
            ..CompileLimits::default()
        };
        let err = precheck(&vec![0u8; (1 << 20) + 1], &limits).unwrap_err();
        assert!(
            err.contains("over the limit of 1 MiB (server.max_module_mb)"),
            "{err}"
        );
        let err = precheck(b"not wasm", &limits).unwrap_err();
        assert!(err.starts_with("not a valid wasm module"), "{err}");
    }

    #[test]
    fn the_start_function_is_noticed() {
        let bytes = wat::parse_str("(module (func $s) (start $s))").unwrap();
        assert!(
            precheck(&bytes, &CompileLimits::default())
                .unwrap()
                .has_start
        );
    }

    #[test]
    fn the_compiler_child_and_the_serving_engine_agree() {
        // The serving engine adds only allocation settings, which do not
        // change the compiled code.
        let hash = |e: &wasmtime::Engine| {
            let mut h = DefaultHasher::new();
            e.precompile_compatibility_hash().hash(&mut h);
            h.finish()
        };
        let child = wasmtime::Engine::new(&compile_config()).unwrap();
        let serving = super::super::Engine::new(&super::super::EngineSettings {
            max_instances: 4,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(hash(&child), hash(serving.wasmtime()));
    }
}
