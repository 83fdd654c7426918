//! JavaScript and Python components for the tests, built from source by
//! the tests themselves with the same code as `sigil build`: componentize-js
//! installed with npm and componentize-py in a venv when missing (npm and
//! python3-venv installed with apt-get when missing, as for other peers).

use crate::{ensure_tool, workspace_root};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Where the language components are built.
pub fn dir() -> PathBuf {
    workspace_root().join("target/wasm/components")
}

/// Whether `module` was built after `source` last changed (a later test
/// run reuses it; CI starts from a clean tree and always builds).
fn fresh(module: &std::path::Path, source: &std::path::Path) -> bool {
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(module), modified(source)), (Some(m), Some(s)) if m > s)
}

fn built(key: &str, source: PathBuf, build: impl FnOnce(PathBuf) -> anyhow::Result<()>) -> String {
    static BUILT: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);
    let mut done = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let done = done.get_or_insert_with(HashMap::new);
    if let Some(path) = done.get(key) {
        return path.clone();
    }
    let module = dir().join(format!("{key}.wasm"));
    let started = std::time::Instant::now();
    if fresh(&module, &source) {
        let path = module.display().to_string();
        done.insert(key.to_string(), path.clone());
        return path;
    }
    build(module.clone()).unwrap_or_else(|e| panic!("building the {key} component: {e:#}"));
    eprintln!(
        "built {} in {:.1} s",
        module.display(),
        started.elapsed().as_secs_f64()
    );
    let path = module.display().to_string();
    done.insert(key.to_string(), path.clone());
    path
}

/// The JavaScript component built from `<source dir>/<entry>` (relative to
/// the repository root), e.g. `js_component("examples/js-tenants", "worker.js")`.
pub fn js_component(source_dir: &str, entry: &str) -> String {
    let key = format!("js-{}", source_dir.replace('/', "-"));
    let source = workspace_root().join(source_dir).join(entry);
    built(&key, source, |module| {
        ensure_tool("npm", "--version", "npm");
        let worker = sigil_build::js::JsWorker {
            entry: workspace_root().join(source_dir).join(entry),
            module,
        };
        sigil_build::js::build(&worker, &mut |l| eprintln!("{l}"))
    })
}

/// The Python component built from `<source dir>/<entry>` (relative to the
/// repository root), e.g. `python_component("examples/py-records", "app.py")`.
pub fn python_component(source_dir: &str, entry: &str) -> String {
    let key = format!("py-{}", source_dir.replace('/', "-"));
    let source = workspace_root().join(source_dir).join(entry);
    built(&key, source, |module| {
        ensure_tool("python3", "--version", "python3");
        ensure_venv();
        let worker = sigil_build::python::PyWorker {
            entry: workspace_root().join(source_dir).join(entry),
            module,
        };
        sigil_build::python::build(&worker, &mut |l| eprintln!("{l}"))
    })
}

/// Make sure `python3 -m venv` works, installing Debian's `python3-venv`
/// with apt-get (as root, saying so) when it does not.
fn ensure_venv() {
    let works = || {
        std::process::Command::new("python3")
            .args(["-c", "import ensurepip, venv"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works() {
        return;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "python3 cannot make virtual environments; install the Debian package python3-venv (apt-get install python3-venv)"
    );
    eprintln!(
        "python3 cannot make virtual environments; installing python3-venv with apt-get (one-time)"
    );
    let _ = std::process::Command::new("apt-get")
        .args(["update", "-qq"])
        .status();
    let installed = std::process::Command::new("apt-get")
        .args(["install", "-y", "-qq", "python3-venv"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    assert!(
        installed.is_ok_and(|s| s.success()) && works(),
        "installing python3-venv with apt-get failed; install it by hand (apt-get install python3-venv)"
    );
}
