//! What the reload poller compares: each file's size and modification
//! time ([`FileStamp`]), and the stamps a generation was built from —
//! taken *before* a reload reads the files, so that a file replaced while
//! the reload runs (a certificate rotated during a slow compile) is seen
//! as changed afterwards instead of being taken for what was loaded.

use crate::state::FileStamp;
use std::path::{Path, PathBuf};

/// The stamp of `path` now (`None` when it cannot be read).
pub fn stamp(path: &Path) -> FileStamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// The stamps of `paths` now.
pub fn stamps(paths: &[PathBuf]) -> Vec<(PathBuf, FileStamp)> {
    paths.iter().map(|p| (p.clone(), stamp(p))).collect()
}

/// The stamps a generation built from `files` was loaded with: for a file
/// stamped in `before` (taken before its build started), that stamp; for a
/// file the build read for the first time, its stamp now.
pub fn loaded_with(
    files: &[PathBuf],
    before: &[(PathBuf, FileStamp)],
) -> Vec<(PathBuf, FileStamp)> {
    files
        .iter()
        .map(|f| match before.iter().find(|(p, _)| p == f) {
            Some((_, s)) => (f.clone(), *s),
            None => (f.clone(), stamp(f)),
        })
        .collect()
}

/// Whether any of `seen` differs from its file now.
pub fn changed(seen: &[(PathBuf, FileStamp)]) -> bool {
    seen.iter().any(|(p, s)| stamp(p) != *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_taken_before_a_build_are_kept_for_the_files_it_read() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.pem"), dir.path().join("b.pem"));
        std::fs::write(&a, "one").unwrap();
        let before = stamps(std::slice::from_ref(&a));
        // Replaced while the build runs (a different size: mtimes can tie).
        std::fs::write(&a, "three").unwrap();
        std::fs::write(&b, "new").unwrap();
        let seen = loaded_with(&[a.clone(), b.clone()], &before);
        assert_eq!(seen[0], before[0], "the stamp from before the build");
        assert_eq!(seen[1], (b.clone(), stamp(&b)));
        assert!(changed(&seen), "a.pem changed after it was stamped");
        assert!(!changed(&seen[1..]));
        let missing = dir.path().join("missing.pem");
        let gone = stamps(std::slice::from_ref(&missing));
        assert_eq!(gone[0].1, None);
        assert!(!changed(&gone));
        std::fs::write(&missing, "here").unwrap();
        assert!(changed(&gone), "a file that appears is a change");
    }
}
