//! `sigil build`: build the workers that declare `build`: `sigil-sdk`
//! crates for `wasm32-wasip1`, Rust `wasi:http` components for
//! `wasm32-wasip2`, JavaScript with componentize-js and Python with
//! componentize-py, installing each toolchain first when it is missing.

use super::progress;
use anyhow::Context as _;
use sigil_runtime::config::{self, BuildSection, Lang};
use std::path::{Path, PathBuf};

/// What to build, by kind.
#[derive(Default)]
struct Plan {
    sdk: Vec<sigil_build::GuestCrate>,
    components: Vec<sigil_build::GuestCrate>,
    js: Vec<sigil_build::js::JsWorker>,
    python: Vec<sigil_build::python::PyWorker>,
}

impl Plan {
    fn add(&mut self, build: &BuildSection, module: PathBuf, base: &Path) {
        // Workers sharing a module build it once.
        let planned = self
            .js
            .iter()
            .map(|w| &w.module)
            .chain(self.python.iter().map(|w| &w.module));
        if planned.into_iter().any(|m| *m == module) {
            return;
        }
        let at = |p: &Path| base.join(p);
        match build {
            BuildSection::Crate(dir) => self.sdk.push(sigil_build::GuestCrate {
                dir: at(dir),
                module,
            }),
            BuildSection::Lang(l) => {
                let (dir, entry) = (l.dir.as_deref().map(at), l.entry.as_deref().map(at));
                match (l.lang, dir, entry) {
                    (Lang::Rust, Some(dir), _) => {
                        self.sdk.push(sigil_build::GuestCrate { dir, module })
                    }
                    (Lang::RustComponent, Some(dir), _) => self
                        .components
                        .push(sigil_build::GuestCrate { dir, module }),
                    (Lang::Js, _, Some(entry)) => {
                        self.js.push(sigil_build::js::JsWorker { entry, module })
                    }
                    (Lang::Python, _, Some(entry)) => self
                        .python
                        .push(sigil_build::python::PyWorker { entry, module }),
                    // `sigil check` names what is missing.
                    _ => {}
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.sdk.is_empty()
            && self.components.is_empty()
            && self.js.is_empty()
            && self.python.is_empty()
    }

    fn run(&self) -> anyhow::Result<()> {
        let mut report = |l: &str| progress(l);
        sigil_build::build(&self.sdk, &mut report)?;
        sigil_build::build_components(&self.components, &mut report)?;
        for w in &self.js {
            sigil_build::js::build(w, &mut report)?;
        }
        for w in &self.python {
            sigil_build::python::build(w, &mut report)?;
        }
        Ok(())
    }
}

/// Build every worker of the manifest at `config` that declares `build`.
pub fn build_workers(config: &Path) -> anyhow::Result<()> {
    let bytes = sigil_pki::fs::read_regular(config, sigil_pki::fs::MAX_MANIFEST_BYTES)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{}: not UTF-8 text", config.display()))?;
    // Parse without validating files: the modules do not exist yet.
    let parsed: config::Manifest = toml::from_str(&text)
        .with_context(|| format!("{}: not a valid manifest", config.display()))?;
    let base = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut plan = Plan::default();
    for w in &parsed.workers {
        if let Some(build) = &w.build {
            plan.add(build, base.join(&w.module), base);
        }
    }
    if plan.is_empty() {
        progress("no worker declares build = ...; nothing to build");
    }
    plan.run()
}
