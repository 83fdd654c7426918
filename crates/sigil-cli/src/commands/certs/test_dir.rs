//! A temporary directory for the unit tests, removed on drop.

use std::path::{Path, PathBuf};

/// A temporary directory for one test.
pub(crate) struct TempDir(tempfile::TempDir);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("sigil-cli-{tag}-"))
            .tempdir()
            .expect("create temp dir");
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }

    /// Write `contents` to `name` in the directory and return its path.
    pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}
