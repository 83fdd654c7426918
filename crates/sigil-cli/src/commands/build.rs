//! `sigil build`: build the workers that declare `build = "<crate dir>"`.

use super::progress;
use anyhow::Context as _;
use sigil_runtime::config;
use std::path::Path;

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
    let crates: Vec<sigil_build::GuestCrate> = parsed
        .workers
        .iter()
        .filter_map(|w| {
            w.build.as_ref().map(|dir| sigil_build::GuestCrate {
                dir: base.join(dir),
                module: base.join(&w.module),
            })
        })
        .collect();
    if crates.is_empty() {
        progress("no worker declares build = \"...\"; nothing to build");
    }
    sigil_build::build(&crates, &mut |l| progress(l))
}
