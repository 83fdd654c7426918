//! # sigil-build
//!
//! Building Sigil workers from source, installing what the build needs
//! first when it is missing (with progress, or an error naming what to
//! install). Used by `sigil build`, `sigil dev`, the tests and the
//! benchmarks:
//!
//! - `sigil-sdk` workers: Rust crates built for `wasm32-wasip1` ([`build`]);
//! - `wasi:http` components: Rust crates built for `wasm32-wasip2`
//!   ([`build_components`]), JavaScript with componentize-js ([`js`]),
//!   Python with componentize-py ([`python`]).
//!
//! A Rust worker's `module` path says where the build puts it:
//! `<target-dir>/<target>/<profile>/<crate_name>.wasm`.

pub mod js;
pub mod python;
pub mod wit;

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm target `sigil-sdk` workers are built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

/// The wasm target Rust `wasi:http` components are built for.
pub const COMPONENT_TARGET: &str = "wasm32-wasip2";

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn target_installed(target: &str) -> bool {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .join("lib")
        .is_dir()
}

/// Make sure the `wasm32-wasip1` standard library is installed, adding it
/// with rustup when it is not.
pub fn ensure_wasm_target(progress: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    ensure_target(WASM_TARGET, progress)
}

/// Make sure the standard library of `target` is installed, adding it with
/// rustup when it is not.
pub fn ensure_target(target: &str, progress: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    if target_installed(target) {
        return Ok(());
    }
    progress(&format!(
        "the {target} target is not installed; adding it with `rustup target add {target}` (one-time download)"
    ));
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .with_context(|| {
            format!("cannot run rustup; install the target by hand: rustup target add {target}")
        })?;
    if !status.success() || !target_installed(target) {
        bail!("`rustup target add {target}` failed; run it by hand and try again");
    }
    progress(&format!("added the {target} target"));
    Ok(())
}

/// One worker crate to build.
#[derive(Debug, Clone)]
pub struct GuestCrate {
    /// The crate directory (with `Cargo.toml`).
    pub dir: PathBuf,
    /// Where the module must end up.
    pub module: PathBuf,
}

struct Layout {
    target_dir: PathBuf,
    profile: String,
}

fn layout(module: &Path, target: &str) -> Option<Layout> {
    let profile_dir = module.parent()?;
    let target_triple_dir = profile_dir.parent()?;
    if target_triple_dir.file_name()? != target {
        return None;
    }
    Some(Layout {
        target_dir: target_triple_dir.parent()?.to_path_buf(),
        profile: profile_dir.file_name()?.to_string_lossy().into_owned(),
    })
}

fn package_name(dir: &Path) -> anyhow::Result<String> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "{}: cannot read the worker crate's Cargo.toml",
            manifest.display()
        )
    })?;
    let value: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", manifest.display()))?;
    value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .with_context(|| format!("{}: no [package] name", manifest.display()))
}

/// The directory a worker's entry file (`worker.js`, `app.py`) is in: where
/// its toolchain is installed and its build state kept.
pub(crate) fn entry_dir(entry: &Path) -> PathBuf {
    entry
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// Build the `sigil-sdk` worker `crates` for `wasm32-wasip1` (grouped by
/// target dir and profile, one cargo call per group) so that each module
/// appears at its `module` path.
pub fn build(crates: &[GuestCrate], progress: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    build_for(WASM_TARGET, crates, progress)
}

/// Build the Rust `wasi:http` component `crates` (the `wasi` crate) for
/// `wasm32-wasip2`, like [`build`].
pub fn build_components(
    crates: &[GuestCrate],
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    build_for(COMPONENT_TARGET, crates, progress)
}

fn build_for(
    target: &str,
    crates: &[GuestCrate],
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    if crates.is_empty() {
        return Ok(());
    }
    ensure_target(target, progress)?;
    // (target dir, profile, [(package name, crate)])
    type Group<'a> = (PathBuf, String, Vec<(String, &'a GuestCrate)>);
    let mut groups: Vec<Group<'_>> = Vec::new();
    for c in crates {
        let Some(l) = layout(&c.module, target) else {
            bail!(
                "{}: to be built by sigil, a module path must look like <target-dir>/{target}/<profile>/<crate>.wasm",
                c.module.display()
            );
        };
        let name = package_name(&c.dir)?;
        if groups
            .iter()
            .any(|(_, _, m)| m.iter().any(|(n, _)| *n == name))
        {
            continue;
        }
        match groups
            .iter_mut()
            .find(|(t, p, _)| *t == l.target_dir && *p == l.profile)
        {
            Some(g) => g.2.push((name, c)),
            None => groups.push((l.target_dir, l.profile, vec![(name, c)])),
        }
    }
    for (target_dir, profile, members) in groups {
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        progress(&format!(
            "building {} for {target} ({profile} profile)",
            names.join(", ")
        ));
        let mut cmd = Command::new(cargo());
        cmd.arg("build")
            .arg("--manifest-path")
            .arg(members[0].1.dir.join("Cargo.toml"))
            .args(["--target", target, "--profile", &profile, "--target-dir"])
            .arg(&target_dir);
        for n in &names {
            cmd.args(["-p", n]);
        }
        // Nested inside `cargo test`/`cargo run`: never inherit the outer build's target.
        cmd.env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET");
        let status = cmd.status().context("cannot run cargo")?;
        if !status.success() {
            bail!(
                "building {} failed (see the cargo output above)",
                names.join(", ")
            );
        }
        for (name, c) in &members {
            if !c.module.exists() {
                bail!(
                    "{}: the build of {name} did not produce this file; is the crate a cdylib (crate-type = [\"cdylib\"]) named to match?",
                    c.module.display()
                );
            }
        }
    }
    Ok(())
}
