//! JavaScript workers: a script built into a `wasi:http/proxy` component
//! with `@bytecodealliance/componentize-js` (StarlingMonkey), installed with
//! npm into the worker's directory when missing. The script uses the
//! service-worker API (`addEventListener("fetch", …)`) and plain `fetch()`.

use crate::wit;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The npm package that builds JavaScript components.
pub const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js";

/// Its version, pinned: its StarlingMonkey speaks `wasi:http` 0.2.10.
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";

/// A JavaScript worker to build.
#[derive(Debug, Clone)]
pub struct JsWorker {
    /// The worker script.
    pub entry: PathBuf,
    /// Where the component must end up.
    pub module: PathBuf,
}

/// The version of componentize-js installed under `dir`, if any.
fn installed(dir: &Path) -> Option<String> {
    let manifest = dir
        .join("node_modules")
        .join(COMPONENTIZE_JS)
        .join("package.json");
    let text = std::fs::read_to_string(manifest).ok()?;
    let start = text.find("\"version\"")?;
    let rest = &text[start + "\"version\"".len()..];
    let value = rest.split('"').nth(1)?;
    Some(value.to_string())
}

/// Make sure componentize-js is installed in `dir/node_modules`, installing
/// the pinned version with npm when it is not.
pub fn ensure_componentize_js(dir: &Path, progress: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    if installed(dir).as_deref() == Some(COMPONENTIZE_JS_VERSION) {
        return Ok(());
    }
    let npm = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    if !npm.is_ok_and(|s| s.success()) {
        bail!(
            "JavaScript workers are built with {COMPONENTIZE_JS} from npm, and npm is not installed: install Node.js 18 or later with npm (Debian: apt-get install nodejs npm)"
        );
    }
    let spec = format!("{COMPONENTIZE_JS}@{COMPONENTIZE_JS_VERSION}");
    progress(&format!(
        "installing {spec} into {} with npm (one-time, about 30 s)",
        dir.join("node_modules").display()
    ));
    let status = Command::new("npm")
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
        ])
        .arg(dir)
        .arg(&spec)
        .status()
        .context("cannot run npm")?;
    if !status.success() || installed(dir).as_deref() != Some(COMPONENTIZE_JS_VERSION) {
        bail!(
            "`npm install --prefix {} {spec}` failed; run it by hand and try again",
            dir.display()
        );
    }
    progress(&format!("installed {spec}"));
    Ok(())
}

/// Build `worker` into its component, installing componentize-js first
/// when needed.
pub fn build(worker: &JsWorker, progress: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    if !worker.entry.is_file() {
        bail!(
            "{}: the worker script does not exist",
            worker.entry.display()
        );
    }
    let dir = std::path::absolute(crate::entry_dir(&worker.entry))?;
    ensure_componentize_js(&dir, progress)?;
    let wit_dir = dir.join(".sigil").join("wit-js");
    wit::write(&wit_dir, wit::World::Export)?;
    if let Some(parent) = worker.module.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    progress(&format!(
        "building {} with componentize-js {COMPONENTIZE_JS_VERSION}",
        worker.entry.display()
    ));
    let bin = dir
        .join("node_modules")
        .join(".bin")
        .join("componentize-js");
    let status = Command::new(&bin)
        .arg("--wit")
        .arg(&wit_dir)
        .args(["-n", wit::WORLD, "-o"])
        .arg(&worker.module)
        .arg(&worker.entry)
        .status()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !status.success() || !worker.module.is_file() {
        bail!(
            "componentize-js could not build {} (see its output above)",
            worker.entry.display()
        );
    }
    Ok(())
}
