//! Compiled-component cache: in memory (a reload reuses unchanged
//! components) and on disk in `server.module_cache` (a restart, and every
//! test after the first, skips compiling: a 13 MB JavaScript component takes
//! seconds to compile and milliseconds to load).
//!
//! Disk entries are keyed by the SHA-256 of the component *and* a hash of
//! the engine's compilation settings and Sigil's version. As for modules,
//! an entry is loaded only from a directory and a file owned by this user
//! and writable by no one else (entries are written with mode 0600).

use crate::engine::ModuleError;
use crate::engine::cache::{private_dir, trusted};
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

    /// The compiled component of `bytes` and its digest; `compile` makes it
    /// when neither the memory nor the disk cache has it.
    pub(super) fn get_or_compile(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
        compile: impl FnOnce() -> Result<Component, ModuleError>,
    ) -> Result<(Component, String), ModuleError> {
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
                let c = compile()?;
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

/// The disk entry at `path` when it can be trusted: a regular file, not a
/// symbolic link, owned by this user and writable by no one else.
fn trusted_entry(path: &Path) -> Result<Option<()>, String> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let meta = std::fs::File::from(fd)
        .metadata()
        .map_err(|e| e.to_string())?;
    trusted(&meta, "entry")?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    if let Some(dir) = path.parent() {
        let dir_meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
        trusted(&dir_meta, "directory")?;
    }
    Ok(Some(()))
}

// Loading precompiled machine code, as the module cache does.
#[allow(unsafe_code)]
fn load_from_disk(engine: &wasmtime::Engine, path: &Path) -> Option<Component> {
    match trusted_entry(path) {
        Ok(Some(())) => {}
        Ok(None) => return None,
        Err(why) => {
            tracing::warn!(path = %path.display(), "ignoring component cache entry: {why}");
            return None;
        }
    }
    // SAFETY: `trusted_entry` found a regular file (not a link) owned by
    // this user and not writable by group or others, in a directory of the
    // same kind, so only this user (who can already run code as Sigil) can
    // have written it; `store_on_disk` wrote it with `Component::serialize`
    // under this engine configuration (its name carries the engine key, a
    // hash of `precompile_compatibility_hash` and the Sigil version).
    // wasmtime also checks the header and refuses artifacts of another
    // configuration.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring unusable component cache entry: {e}");
            None
        }
    }
}

/// The component `sigil __compile --component` wrote for bytes this process
/// gave it.
#[allow(unsafe_code)]
pub(super) fn from_compiler_child(
    engine: &wasmtime::Engine,
    serialized: &[u8],
) -> anyhow::Result<Component> {
    // SAFETY: the bytes are what `sigil __compile --component` (this same
    // binary, started by this process, compiling with `compile_config()`,
    // the compilation settings of the component engine) wrote with
    // `precompile_component` to the stdout pipe only this process reads, for
    // the component bytes this process wrote to its stdin; the child exited
    // successfully. wasmtime also checks the artifact's header and settings.
    Ok(unsafe { Component::deserialize(engine, serialized) }?)
}

fn store_on_disk(component: &Component, path: &Path) {
    let result = (|| -> anyhow::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        if let Some(dir) = path.parent() {
            private_dir(dir).map_err(|why| anyhow::anyhow!("{}: {why}", dir.display()))?;
        }
        let bytes = component.serialize()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), "cannot write the component cache: {e:#}");
    }
}
