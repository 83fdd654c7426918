//! # sigil-testkit
//!
//! What Sigil's end-to-end tests and benchmarks share: building the real
//! guest crates, a throwaway PKI per test, the real `sigil` binary on
//! loopback, a real recording mTLS origin, TLS clients, and real third-party
//! peers (nginx, Python's `ssl`).
#![allow(missing_docs)]

pub mod client;
pub mod handmade;
pub mod interop;
pub mod origin;
pub mod pki;
pub mod sigil;
pub mod stream_origin;
pub mod toolchains;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit is two levels below the repository root")
        .to_path_buf()
}

/// Where test and example guests are built.
pub fn wasm_dir() -> PathBuf {
    workspace_root().join("target/wasm/wasm32-wasip1/guest")
}

/// A build function of `sigil_build` (`build` or `build_components`).
type Builder = fn(&[sigil_build::GuestCrate], &mut dyn FnMut(&str)) -> anyhow::Result<()>;

/// Build `crates` (`(crate dir relative to the root, module name)`) into
/// `dir` with `build`, once per test process (`built` remembers it; cargo
/// makes later builds no-ops), and return `dir`.
fn build_once(
    built: &'static OnceLock<PathBuf>,
    dir: PathBuf,
    crates: &[(&str, &str)],
    build: Builder,
) -> PathBuf {
    built
        .get_or_init(|| {
            install_crypto_provider();
            let root = workspace_root();
            let crates: Vec<_> = crates
                .iter()
                .map(|(source, name)| sigil_build::GuestCrate {
                    dir: root.join(source),
                    module: dir.join(format!("{name}.wasm")),
                })
                .collect();
            build(&crates, &mut |l| eprintln!("{l}"))
                .unwrap_or_else(|e| panic!("building {}: {e:#}", dir.display()));
            dir
        })
        .clone()
}

/// Build every guest crate the tests use (once per test process; cargo makes
/// later builds no-ops) and return the directory holding the `.wasm` files.
pub fn guests() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let crates = [
        ("tests/guests/probe", "probe"),
        ("examples/hello", "hello"),
        ("examples/records", "records"),
        ("examples/tenants", "tenants"),
    ];
    build_once(&BUILT, wasm_dir(), &crates, sigil_build::build)
}

/// Where the Rust component guests are built.
pub fn component_dir() -> PathBuf {
    workspace_root().join("target/wasm/wasm32-wasip2/guest")
}

/// Build the Rust `wasi:http` component guests (once per test process),
/// adding the `wasm32-wasip2` target when it is missing, and return the
/// directory holding them.
pub fn components() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let crates = [
        ("tests/guests/component-probe", "component_probe"),
        ("tests/guests/not-a-proxy", "not-a-proxy"),
        ("examples/hello-component", "hello_component"),
    ];
    build_once(
        &BUILT,
        component_dir(),
        &crates,
        sigil_build::build_components,
    )
}

/// Path of a built Rust component guest, e.g. `component("component_probe")`.
pub fn component(name: &str) -> String {
    components()
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

/// Path of a built guest module, e.g. `module("probe")`.
pub fn module(name: &str) -> String {
    guests().join(format!("{name}.wasm")).display().to_string()
}

/// A module cache shared by the tests' sigil processes, so each module is
/// compiled once per test run rather than once per test.
pub fn module_cache() -> String {
    workspace_root()
        .join("target/wasm/module-cache")
        .display()
        .to_string()
}

/// A fresh temporary directory for one test.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sigil-test-")
        .tempdir()
        .expect("temp dir")
}

/// Make sure `binary` runs (`<binary> <version_arg>`); when it does not,
/// install Debian `package` with apt-get (as root, saying so), like
/// `sigil dev` adds the wasm target. Tests that need a real third-party peer
/// never skip: without a way to install it they fail saying what to install.
pub fn ensure_tool(binary: &str, version_arg: &str, package: &str) {
    use std::process::{Command, Stdio};
    use std::sync::Mutex;
    static INSTALLING: Mutex<()> = Mutex::new(());
    let runs = || {
        Command::new(binary)
            .arg(version_arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if runs() {
        return;
    }
    let _guard = INSTALLING.lock().unwrap_or_else(|p| p.into_inner());
    if runs() {
        return;
    }
    let root = rustix::process::geteuid().is_root();
    let apt = Command::new("apt-get")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    assert!(
        root && apt,
        "{binary} is needed as a real peer for this test and is not installed; install the Debian package `{package}` (apt-get install {package})"
    );
    eprintln!(
        "{binary} is not installed; installing the Debian package {package} with apt-get (one-time)"
    );
    let update = Command::new("apt-get").args(["update", "-qq"]).status();
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    assert!(
        update.is_ok() && install.is_ok_and(|s| s.success()) && runs(),
        "installing {package} with apt-get failed; install it by hand (apt-get install {package})"
    );
}

/// Install aws-lc-rs as the process-wide rustls crypto provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
