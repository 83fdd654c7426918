//! Python workers: an app module built into a `wasi:http/proxy` component
//! with `componentize-py`, installed from PyPI into a virtual environment
//! under the worker's directory (`.sigil/venv`) when missing. The module
//! defines `class IncomingHandler(exports.IncomingHandler)`.

use crate::wit;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The PyPI package that builds Python components, and its pinned version.
pub const COMPONENTIZE_PY: &str = "componentize-py";

/// Its version, pinned: it speaks `wasi:http` 0.2.x as wasmtime 48 does.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// A Python worker to build.
#[derive(Debug, Clone)]
pub struct PyWorker {
    /// The app module (`app.py`).
    pub entry: PathBuf,
    /// Where the component must end up.
    pub module: PathBuf,
}

/// The virtual environment componentize-py is installed in.
pub fn venv(dir: &Path) -> PathBuf {
    dir.join(".sigil").join("venv")
}

fn componentize_py(dir: &Path) -> PathBuf {
    venv(dir).join("bin").join(COMPONENTIZE_PY)
}

/// Whether the pinned componentize-py runs from the venv under `dir`.
fn installed(dir: &Path) -> bool {
    Command::new(componentize_py(dir))
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(COMPONENTIZE_PY_VERSION))
}

/// Make sure componentize-py is installed in the venv under `dir`, making
/// the venv and installing the pinned version with pip when it is not.
pub fn ensure_componentize_py(dir: &Path, progress: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    if installed(dir) {
        return Ok(());
    }
    let venv = venv(dir);
    let spec = format!("{COMPONENTIZE_PY}=={COMPONENTIZE_PY_VERSION}");
    progress(&format!(
        "installing {spec} into the virtual environment {} (one-time)",
        venv.display()
    ));
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .stdout(Stdio::null())
        .status();
    if !made.is_ok_and(|s| s.success()) {
        bail!(
            "Python workers are built with {COMPONENTIZE_PY} from PyPI in a virtual environment, and `python3 -m venv` failed: install Python 3.10 or later with venv (Debian: apt-get install python3 python3-venv)"
        );
    }
    let pip = venv.join("bin").join("pip");
    let status = Command::new(&pip)
        .args(["install", "--quiet", &spec])
        .status()
        .with_context(|| format!("cannot run {}", pip.display()))?;
    if !status.success() || !installed(dir) {
        bail!(
            "`{} install {spec}` failed; run it by hand and try again",
            pip.display()
        );
    }
    progress(&format!("installed {spec}"));
    Ok(())
}

/// Build `worker` into its component, installing componentize-py first
/// when needed.
pub fn build(worker: &PyWorker, progress: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    let Some(name) = worker
        .entry
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|_| worker.entry.is_file())
    else {
        bail!("{}: the app module does not exist", worker.entry.display());
    };
    let dir = std::path::absolute(crate::entry_dir(&worker.entry))?;
    ensure_componentize_py(&dir, progress)?;
    let wit_dir = dir.join(".sigil").join("wit-py");
    wit::write(&wit_dir, wit::World::Proxy)?;
    if let Some(parent) = worker.module.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    progress(&format!(
        "building {} with componentize-py {COMPONENTIZE_PY_VERSION}",
        worker.entry.display()
    ));
    let module = std::path::absolute(&worker.module)?;
    let status = Command::new(componentize_py(&dir))
        .arg("-d")
        .arg(std::path::absolute(&wit_dir)?)
        .args(["-w", wit::WORLD, "componentize", name, "-o"])
        .arg(&module)
        .current_dir(&dir)
        .status()
        .context("cannot run componentize-py")?;
    if !status.success() || !module.is_file() {
        bail!(
            "componentize-py could not build {} (see its output above)",
            worker.entry.display()
        );
    }
    Ok(())
}
