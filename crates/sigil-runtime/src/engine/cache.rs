//! Compiled-module cache: in memory (so a reload reuses unchanged modules)
//! and optionally on disk (so a restart skips compilation).
//!
//! In memory, the cache holds only weak references: a compiled module lives
//! as long as a generation's workers (or a request still running on an old
//! generation) use it, and is dropped with the last of them.
//!
//! On disk, loading a file means running the machine code in it, so the
//! cache trusts only what Sigil itself wrote: the directory is created `0700`
//! and refused when another user owns it or group/others may write to it;
//! an entry is opened without following symlinks and must be a regular file
//! owned by this user and writable by no one else; its header must name the
//! module's SHA-256, this engine's settings and the SHA-256 of the compiled
//! bytes that follow. Anything else is ignored (and recompiled).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use wasmtime::Module;

/// The first line of every cache entry.
const MAGIC: &[u8] = b"sigil-compiled-module 1\n";
/// Largest cache entry read (a compiled module is a few times its wasm).
const MAX_ENTRY: u64 = 1 << 30;

/// A compiled module, shared by every worker that loads the same bytes.
pub(super) struct Compiled {
    /// The module.
    pub(super) module: Module,
}

pub(super) struct ModuleCache {
    memory: Mutex<HashMap<String, Weak<Compiled>>>,
    dir: Option<PathBuf>,
    engine_key: String,
}

/// Where a compiled module's bytes come from; see the SAFETY comment of
/// [`deserialize`].
pub(super) enum Source {
    /// Written to our private pipe by the compiler child this process started.
    CompilerChild,
    /// A disk cache entry that passed [`ModuleCache::read_entry`].
    CheckedEntry,
}

impl ModuleCache {
    /// A cache for `engine`, on disk in `dir` when `dir` is (or can be made)
    /// a directory only this user may write to.
    pub(super) fn new(dir: Option<PathBuf>, engine: &wasmtime::Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        let dir = dir.and_then(|d| match private_dir(&d) {
            Ok(()) => Some(d),
            Err(why) => {
                tracing::warn!(
                    dir = %d.display(),
                    "not using the compiled-module cache directory: {why}; modules are compiled at every start"
                );
                None
            }
        });
        ModuleCache {
            memory: Mutex::new(HashMap::new()),
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The module compiled from bytes with SHA-256 `digest`, if a generation
    /// still uses it or a trusted disk entry holds it.
    pub(super) fn get(&self, engine: &wasmtime::Engine, digest: &str) -> Option<Arc<Compiled>> {
        let live = self.lock().get(digest).and_then(Weak::upgrade);
        if live.is_some() {
            return live;
        }
        let bytes = self.read_entry(digest)?;
        match deserialize(engine, &bytes, Source::CheckedEntry) {
            Ok(module) => Some(self.remember(digest, module)),
            Err(e) => {
                tracing::warn!(digest, "ignoring unusable module cache entry: {e:#}");
                None
            }
        }
    }

    /// Keep `module` (compiled from bytes with SHA-256 `digest`; `serialized`
    /// when the caller has its serialized form) in memory and on disk.
    pub(super) fn insert(
        &self,
        digest: &str,
        module: Module,
        serialized: Option<&[u8]>,
    ) -> Arc<Compiled> {
        if let Some(path) = self.entry_path(digest) {
            let bytes = match serialized {
                Some(b) => Ok(std::borrow::Cow::Borrowed(b)),
                None => module.serialize().map(std::borrow::Cow::Owned),
            };
            let written = bytes
                .map_err(anyhow::Error::from)
                .and_then(|b| self.write_entry(&path, digest, &b));
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), "cannot write the module cache: {e:#}");
            }
        }
        self.remember(digest, module)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Compiled>>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hold `module` weakly under `digest`, dropping entries no one uses.
    fn remember(&self, digest: &str, module: Module) -> Arc<Compiled> {
        let compiled = Arc::new(Compiled { module });
        let mut memory = self.lock();
        memory.retain(|_, m| m.strong_count() > 0);
        memory.insert(digest.to_string(), Arc::downgrade(&compiled));
        compiled
    }

    /// How many compiled modules are alive (for tests).
    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        let mut memory = self.lock();
        memory.retain(|_, m| m.strong_count() > 0);
        memory.len()
    }

    fn entry_path(&self, digest: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{digest}-{}.cwasm", self.engine_key)))
    }

    fn header(&self, digest: &str, payload: &[u8]) -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        for line in [
            digest,
            &self.engine_key,
            &sigil_pki::fingerprint_sha256_hex(payload),
        ] {
            h.extend_from_slice(line.as_bytes());
            h.push(b'\n');
        }
        h
    }

    /// The compiled bytes of the entry for `digest`, when it can be trusted
    /// (see the module docs); `None` (logged) otherwise.
    fn read_entry(&self, digest: &str) -> Option<Vec<u8>> {
        let path = self.entry_path(digest)?;
        match self.checked_entry(&path, digest) {
            Ok(bytes) => bytes,
            Err(why) => {
                tracing::warn!(path = %path.display(), "ignoring module cache entry: {why}");
                None
            }
        }
    }

    fn checked_entry(&self, path: &Path, digest: &str) -> Result<Option<Vec<u8>>, String> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(format!("cannot open it: {e}")),
        };
        let mut file = std::fs::File::from(fd);
        let meta = file.metadata().map_err(|e| e.to_string())?;
        trusted(&meta, "entry")?;
        if !meta.is_file() {
            return Err("it is not a regular file".into());
        }
        if meta.len() > MAX_ENTRY {
            return Err(format!(
                "it is {} bytes, larger than any module",
                meta.len()
            ));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        let mut lines = bytes[MAGIC.len().min(bytes.len())..].splitn(4, |b| *b == b'\n');
        let (named, key, sum) = (lines.next(), lines.next(), lines.next());
        let payload = lines.next().unwrap_or_default();
        if !bytes.starts_with(MAGIC) || sum.is_none() {
            return Err("it has no Sigil cache header".into());
        }
        if named != Some(digest.as_bytes()) || key != Some(self.engine_key.as_bytes()) {
            return Err("its header names another module or engine".into());
        }
        if sum != Some(sigil_pki::fingerprint_sha256_hex(payload).as_bytes()) {
            return Err("its contents do not match the SHA-256 in its header".into());
        }
        let start = bytes.len() - payload.len();
        bytes.drain(..start);
        Ok(Some(bytes))
    }

    fn write_entry(&self, path: &Path, digest: &str, payload: &[u8]) -> anyhow::Result<()> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tmp = path.with_extension(format!(
            "tmp{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&self.header(digest, payload))?;
            file.write_all(payload)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        let result = write();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(result?)
    }
}

/// Create `dir` (mode 0700) if missing and check that only this user may
/// write to it.
pub(in crate::engine) fn private_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create it: {e}"))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    trusted(&meta, "directory")
}

/// Owned by this user, and writable by no one else.
pub(in crate::engine) fn trusted(meta: &std::fs::Metadata, what: &str) -> Result<(), String> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "the {what} is owned by user {}, not by this user ({me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "the {what} is writable by its group or by others (mode {:o}); make it 0700 (chmod go-w)",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

// Loading precompiled machine code (the component cache has the same two
// cases for components, in `component/cache.rs`).
#[allow(unsafe_code)]
pub(super) fn deserialize(
    engine: &wasmtime::Engine,
    bytes: &[u8],
    source: Source,
) -> anyhow::Result<Module> {
    // The source is named by the caller for the condition below to be checked
    // at each call; it changes nothing at run time.
    let _ = source;
    // SAFETY: `Module::deserialize` requires bytes produced by
    // `Module::serialize`/`Engine::precompile_module` of a wasmtime with a
    // compatible configuration, not tampered with since. Every call here
    // holds one of two conditions (the `source` argument says which):
    // - `CompilerChild`: the bytes are what `sigil __compile` (this same
    //   binary, started by this process with `compile_config()`, the
    //   compilation settings of `engine`) wrote with `precompile_module` to
    //   the stdout pipe only this process reads, for the module bytes this
    //   process wrote to its stdin; the child exited successfully.
    // - `CheckedEntry`: the bytes come from a disk cache entry that
    //   `ModuleCache::checked_entry` accepted: the cache directory is owned by
    //   this user and not writable by group or others (`private_dir`), the
    //   entry was opened with O_NOFOLLOW and is a regular file owned by this
    //   user and not writable by group or others (`trusted`), so only this
    //   user (who can already run code as Sigil) can have written it; `insert`
    //   wrote it (mode 0600, via a rename) with a header naming the module's
    //   SHA-256, which equals the digest of the module being loaded, and this
    //   engine's key (a hash of `precompile_compatibility_hash` and the Sigil
    //   version), which equals ours; and the SHA-256 of the bytes matches the
    //   header, so they are whole and unchanged since `insert`.
    // On top of both, wasmtime checks the artifact's ELF header, wasmtime
    // version and compilation settings against `engine` and refuses a
    // mismatch.
    Ok(unsafe { Module::deserialize(engine, bytes) }?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn engine() -> wasmtime::Engine {
        wasmtime::Engine::new(&super::super::compile_config()).unwrap()
    }

    fn module(engine: &wasmtime::Engine) -> (Module, String) {
        let bytes = wat::parse_str("(module (func (export \"f\")))").unwrap();
        (
            Module::new(engine, &bytes).unwrap(),
            sigil_pki::fingerprint_sha256_hex(&bytes),
        )
    }

    #[test]
    fn memory_entries_live_only_while_used() {
        let engine = engine();
        let cache = ModuleCache::new(None, &engine);
        let (m, digest) = module(&engine);
        let kept = cache.insert(&digest, m, None);
        assert!(cache.get(&engine, &digest).is_some());
        assert_eq!(cache.live(), 1);
        drop(kept);
        assert_eq!(cache.live(), 0);
        assert!(cache.get(&engine, &digest).is_none());
    }

    #[test]
    fn disk_entries_round_trip_and_are_checked() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        let cache = ModuleCache::new(Some(cache_dir.clone()), &engine);
        let mode = std::fs::metadata(&cache_dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let (m, digest) = module(&engine);
        drop(cache.insert(&digest, m, None));
        assert!(cache.get(&engine, &digest).is_some(), "read back from disk");

        // A changed byte in the compiled code: refused.
        let path = cache.entry_path(&digest).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(cache.get(&engine, &digest).is_none());

        // An entry for another module under this one's name: refused.
        let (m, digest) = module(&engine);
        drop(cache.insert(&digest, m, None));
        let other = "0".repeat(64);
        std::fs::copy(&path, cache.entry_path(&other).unwrap()).unwrap();
        assert!(cache.get(&engine, &other).is_none());

        // A group-writable entry: refused. A symlink: refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(cache.get(&engine, &digest).is_none());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let real = dir.path().join("real.cwasm");
        std::fs::rename(&path, &real).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        assert!(cache.get(&engine, &digest).is_none());
    }

    #[test]
    fn a_directory_others_may_write_is_not_used() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let cache = ModuleCache::new(Some(shared.clone()), &engine);
        assert!(cache.dir.is_none());
        let (m, digest) = module(&engine);
        drop(cache.insert(&digest, m, None));
        assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
    }
}
