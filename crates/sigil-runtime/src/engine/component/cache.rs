//! Compiled-component cache: in memory (a reload reuses unchanged
//! components) and on disk in `server.module_cache` (a restart, and every
//! test after the first, skips compiling: a 13 MB JavaScript component takes
//! seconds to compile and milliseconds to load).
//!
//! Disk entries are keyed by the SHA-256 of the component *and* a hash of
//! the engine's compilation settings and Sigil's version.

use dashmap::DashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

pub(super) struct ComponentCache {
    memory: DashMap<String, Component>,
    dir: Option<PathBuf>,
    engine_key: String,
}

impl ComponentCache {
    pub(super) fn new(dir: Option<PathBuf>, engine: &wasmtime::Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        ComponentCache {
            memory: DashMap::new(),
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The compiled component of `bytes` and its digest.
    pub(super) fn get_or_compile(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
    ) -> anyhow::Result<(Component, String)> {
        let digest = sigil_pki::fingerprint_sha256_hex(bytes);
        if let Some(c) = self.memory.get(&digest) {
            return Ok((c.clone(), digest));
        }
        let path = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{digest}-{}.component.cwasm", self.engine_key)));
        let component = match path.as_deref().and_then(|p| load_from_disk(engine, p)) {
            Some(c) => c,
            None => {
                let c = Component::new(engine, bytes)?;
                if let Some(p) = &path {
                    store_on_disk(&c, p);
                }
                c
            }
        };
        self.memory.insert(digest.clone(), component.clone());
        Ok((component, digest))
    }
}

// Loading precompiled machine code, as the module cache does.
#[allow(unsafe_code)]
fn load_from_disk(engine: &wasmtime::Engine, path: &Path) -> Option<Component> {
    if !path.is_file() {
        return None;
    }
    // SAFETY: the file was written by `store_on_disk` with
    // `Component::serialize` under this engine configuration (its name
    // carries the engine key); wasmtime also checks the header and refuses
    // artifacts of another configuration.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring unusable component cache entry: {e}");
            None
        }
    }
}

fn store_on_disk(component: &Component, path: &Path) {
    let result = (|| -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = component.serialize()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), "cannot write the component cache: {e:#}");
    }
}
