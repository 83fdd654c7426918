//! What loading the files a manifest names found: errors (each naming the
//! file and the item), warnings, and the list of files read (for reload
//! polling). Every part of a generation reports into one [`Findings`].

use super::{LoadedManifest, ManifestError, ManifestErrors};
use std::path::PathBuf;

/// Problems and facts gathered while building a generation.
pub struct Findings<'m> {
    manifest: &'m LoadedManifest,
    /// Problems that make the manifest unusable.
    pub errors: Vec<ManifestError>,
    /// Problems worth telling the operator about (e.g. expiry soon).
    pub warnings: Vec<String>,
    /// Every file read, the manifest first.
    pub files: Vec<PathBuf>,
}

impl<'m> Findings<'m> {
    /// Start with nothing found but the manifest itself.
    pub fn new(manifest: &'m LoadedManifest) -> Self {
        Findings {
            manifest,
            errors: Vec::new(),
            warnings: Vec::new(),
            files: vec![manifest.path.clone()],
        }
    }

    /// The manifest being loaded.
    pub fn manifest(&self) -> &'m LoadedManifest {
        self.manifest
    }

    /// Record a problem with `item`.
    pub fn error(&mut self, item: &str, message: impl Into<String>) {
        self.errors.push(self.manifest.error(item, message));
    }

    /// Record a warning about `item`.
    pub fn warn(&mut self, item: &str, message: impl std::fmt::Display) {
        self.warnings.push(format!(
            "{}: {item}: {message}",
            self.manifest.path.display()
        ));
    }

    /// Note that `path` was read.
    pub fn read(&mut self, path: &std::path::Path) {
        self.files.push(path.to_path_buf());
    }

    /// The errors, if there were any.
    pub fn check(&mut self) -> Result<(), ManifestErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ManifestErrors(std::mem::take(&mut self.errors)))
        }
    }
}

/// SHA-256 over `settings` and the contents of `files` (a file that cannot
/// be read safely hashes as empty; loading it then reports why): what a part
/// of a generation was built from, so an unchanged part can be carried over
/// to the next generation.
pub fn fingerprint(settings: &str, files: &[PathBuf]) -> String {
    let mut bytes = settings.as_bytes().to_vec();
    for f in files {
        bytes.extend_from_slice(f.to_string_lossy().as_bytes());
        bytes.push(0);
        let contents = sigil_pki::fs::read_regular(f, sigil_pki::fs::MAX_CRL_BYTES);
        bytes.extend(contents.unwrap_or_default());
        bytes.push(0);
    }
    sigil_pki::fingerprint_sha256_hex(&bytes)
}
