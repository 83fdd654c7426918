//! Compiled-module cache: in memory (so a reload reuses unchanged modules)
//! and optionally on disk (so a restart skips compilation).
//!
//! Disk entries are keyed by the SHA-256 of the module bytes *and* a hash of
//! the engine's compilation settings and wasmtime version, so a changed module
//! or engine setting is never served stale.

use dashmap::DashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use wasmtime::Module;

pub(super) struct ModuleCache {
    memory: DashMap<String, Module>,
    dir: Option<PathBuf>,
    engine_key: String,
}

impl ModuleCache {
    pub(super) fn new(dir: Option<PathBuf>, engine: &wasmtime::Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        ModuleCache {
            memory: DashMap::new(),
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    pub(super) fn get_or_compile(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
    ) -> anyhow::Result<(Module, String)> {
        let digest = sigil_pki::fingerprint_sha256_hex(bytes);
        if let Some(m) = self.memory.get(&digest) {
            return Ok((m.clone(), digest));
        }
        let module = match self.disk_path(&digest) {
            Some(path) => match load_from_disk(engine, &path) {
                Some(m) => m,
                None => {
                    let m = Module::new(engine, bytes)?;
                    store_on_disk(&m, &path);
                    m
                }
            },
            None => Module::new(engine, bytes)?,
        };
        self.memory.insert(digest.clone(), module.clone());
        Ok((module, digest))
    }

    fn disk_path(&self, digest: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{digest}-{}.cwasm", self.engine_key)))
    }
}

// The one `unsafe` of the runtime: loading precompiled machine code.
#[allow(unsafe_code)]
fn load_from_disk(engine: &wasmtime::Engine, path: &PathBuf) -> Option<Module> {
    if !path.exists() {
        return None;
    }
    // SAFETY: the file was written by `store_on_disk` with `Module::serialize`
    // of this engine configuration (the name carries the engine key); wasmtime
    // also checks the header and refuses artifacts from another configuration.
    match unsafe { Module::deserialize_file(engine, path) } {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring unusable module cache entry: {e}");
            None
        }
    }
}

fn store_on_disk(module: &Module, path: &PathBuf) {
    let result = (|| -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = module.serialize()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), "cannot write the module cache: {e:#}");
    }
}
