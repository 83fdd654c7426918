//! `sigil new <name> --lang rust|rust-component|js|python`: a working
//! starter worker in `<name>/`, and its `[[workers]]` and `[[routes]]`
//! entries appended to the manifest (created when missing), ready for
//! `sigil dev`.

use super::progress;
use anyhow::{Context as _, bail};
use std::path::Path;

/// The languages `sigil new` writes starters for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NewLang {
    /// A `sigil-sdk` worker (Rust, `wasm32-wasip1`).
    Rust,
    /// A `wasi:http` component in Rust (the `wasi` crate, `wasm32-wasip2`).
    RustComponent,
    /// A JavaScript component (componentize-js).
    Js,
    /// A Python component (componentize-py).
    Python,
}

/// Where `sigil-sdk` lives (the repository this `sigil` was built from).
fn sdk_path() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sigil-sdk")
        .canonicalize()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "../crates/sigil-sdk".into())
}

fn cargo_toml(name: &str, dependency: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\n{dependency}\n\n\
         # Its own workspace, wherever it is created.\n[workspace]\n\n\
         [profile.release]\nopt-level = \"s\"\nstrip = true\n"
    )
}

/// The files of the starter and its manifest entry (`module`, `build`).
fn starter(name: &str, lang: NewLang) -> (Vec<(&'static str, String)>, String, String) {
    let fill = |t: &str| t.replace("{{name}}", name);
    let krate = name.replace('-', "_");
    match lang {
        NewLang::Rust => (
            vec![
                (
                    "Cargo.toml",
                    cargo_toml(
                        name,
                        &format!("sigil-sdk = {{ path = \"{}\" }}", sdk_path()),
                    ),
                ),
                ("src/lib.rs", fill(include_str!("new/rust.lib.rs"))),
            ],
            format!("{name}/target/wasm32-wasip1/release/{krate}.wasm"),
            format!("{{ lang = \"rust\", dir = \"{name}\" }}"),
        ),
        NewLang::RustComponent => (
            vec![
                (
                    "Cargo.toml",
                    cargo_toml(
                        name,
                        "wasi = { version = \"0.14.7\", features = [\"std\"] }",
                    ),
                ),
                ("src/lib.rs", fill(include_str!("new/component.lib.rs"))),
            ],
            format!("{name}/target/wasm32-wasip2/release/{krate}.wasm"),
            format!("{{ lang = \"rust-component\", dir = \"{name}\" }}"),
        ),
        NewLang::Js => (
            vec![("worker.js", fill(include_str!("new/worker.js")))],
            format!("{name}/{name}.wasm"),
            format!("{{ lang = \"js\", entry = \"{name}/worker.js\" }}"),
        ),
        NewLang::Python => (
            vec![("app.py", fill(include_str!("new/app.py")))],
            format!("{name}/{name}.wasm"),
            format!("{{ lang = \"python\", entry = \"{name}/app.py\" }}"),
        ),
    }
}

/// Write the starter `name` in `lang` next to `config`, and add it there.
pub fn run(name: &str, lang: NewLang, config: &Path) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !valid {
        bail!("\"{name}\": a worker name for `sigil new` is lower-case letters, digits and '-'");
    }
    let base = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let existing = read_manifest(config)?;
    if let Some(text) = &existing {
        check_room_for(name, config, text)?;
    }
    let dir = base.join(name);
    if dir.exists() {
        bail!(
            "{} already exists; choose another name or remove it",
            dir.display()
        );
    }
    let (files, module, build) = starter(name, lang);
    let mut manifest =
        existing.unwrap_or_else(|| "[server]\nhttp = \"127.0.0.1:8080\"\n".to_string());
    if !manifest.ends_with('\n') {
        manifest.push('\n');
    }
    manifest.push_str(&format!(
        "\n[[workers]]\nname = \"{name}\"\nmodule = \"{module}\"\nbuild = {build}\n\n\
         [[routes]]\nhost = \"{name}.localhost\"\nworker = \"{name}\"\n"
    ));
    // What is appended must leave a manifest that still loads (a manifest
    // that declares `workers = [...]` inline cannot take a `[[workers]]`).
    if let Err(errors) = sigil_runtime::config::parse(config, &manifest) {
        bail!(
            "{errors}\nadding worker \"{name}\" to {} as [[workers]] and [[routes]] tables would leave it invalid (does it declare workers or routes as inline arrays?); add the worker by hand",
            config.display()
        );
    }
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap_or(&dir))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        progress(&format!("wrote {}", path.display()));
    }
    std::fs::write(config, manifest)
        .with_context(|| format!("cannot write {}", config.display()))?;
    progress(&format!("added worker \"{name}\" to {}", config.display()));
    progress(&format!(
        "next: sigil dev -c {} and curl --resolve {name}.localhost:8080:127.0.0.1 http://{name}.localhost:8080/",
        config.display()
    ));
    Ok(())
}

/// The manifest's text, or `None` when there is none yet (a new one is
/// started).
fn read_manifest(config: &Path) -> anyhow::Result<Option<String>> {
    // As `check` and `serve` read it: a regular file of bounded size (a
    // device would be read without end, a FIFO would block).
    match sigil_pki::fs::read_regular(config, sigil_pki::fs::MAX_MANIFEST_BYTES) {
        Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|e| {
            anyhow::anyhow!("{}: the manifest is not UTF-8 text: {e}", config.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!(
            "{}: cannot read the manifest: {e} (pass another with -c FILE)",
            config.display()
        )),
    }
}

/// Refuse to add `name` to a manifest that is already invalid, or that has
/// a worker of that name or a route for `<name>.localhost/` (the manifest
/// would stop loading).
fn check_room_for(name: &str, config: &Path, text: &str) -> anyhow::Result<()> {
    let loaded = sigil_runtime::config::parse(config, text).map_err(|errors| {
        anyhow::anyhow!(
            "{errors}\n{} is not a valid manifest, so `sigil new` adds nothing to it: fix it first (sigil check -c {})",
            config.display(),
            config.display()
        )
    })?;
    let m = &loaded.manifest;
    if m.workers.iter().any(|w| w.name.eq_ignore_ascii_case(name)) {
        bail!(
            "{}: worker \"{name}\" is already declared; choose another name",
            config.display()
        );
    }
    let host = format!("{name}.localhost");
    if m.routes.iter().any(|r| {
        r.host
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(&host))
            && r.path.as_deref().unwrap_or("/") == "/"
    }) {
        bail!(
            "{}: a route for {host}/ is already declared; choose another name",
            config.display()
        );
    }
    Ok(())
}
