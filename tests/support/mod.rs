//! Shared harness for the end-to-end tests: builds the real guest crates,
//! generates a throwaway PKI per test, starts the real `sigil` binary on
//! loopback, and provides a real mTLS origin and TLS clients.
#![allow(dead_code)]

pub mod client;
pub mod origin;
pub mod pki;
pub mod sigil;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime/ has a parent")
        .to_path_buf()
}

/// Where test and example guests are built.
pub fn wasm_dir() -> PathBuf {
    workspace_root().join("target/wasm/wasm32-wasip1/guest")
}

/// Build every guest crate the tests use (once per test process; cargo makes
/// later builds no-ops) and return the directory holding the `.wasm` files.
pub fn guests() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            sigil_runtime::install_crypto_provider();
            let root = workspace_root();
            let crates: Vec<_> = [
                ("tests/guests/probe", "probe"),
                ("examples/hello", "hello"),
                ("examples/records", "records"),
                ("examples/tenants", "tenants"),
            ]
            .iter()
            .map(|(dir, name)| sigil_runtime::guest_build::GuestCrate {
                dir: root.join(dir),
                module: wasm_dir().join(format!("{name}.wasm")),
            })
            .collect();
            sigil_runtime::guest_build::build(&crates, &mut |l| eprintln!("{l}"))
                .expect("building the guest crates");
            wasm_dir()
        })
        .clone()
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
