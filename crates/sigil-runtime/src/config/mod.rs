//! Configuration: the manifest (`sigil.toml`) read and checked for
//! structure, before any file it names is opened. Pure parsing and
//! validation: nothing here touches TLS or wasm.
//!
//! Every problem becomes a [`ManifestError`] naming the file, the item
//! (`worker "reader"`, `hostname "pay.alpha.example"`, ...) and what to do.
//! All problems are reported at once.

pub mod build;
pub mod connections;
mod findings;
pub mod limits;
mod model;
pub mod origins;
mod validate;

pub use build::{BuildSection, Lang, LangBuild};
pub use connections::ConnectionSettings;
pub use findings::{Findings, fingerprint};
pub use limits::{LimitExceeded, LimitOverrides, Limits};
pub use model::*;
pub use origins::{AllowedOrigin, parse_allowed_origin};

use std::path::{Path, PathBuf};

/// One problem in a manifest or a file it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file with the problem (the manifest, or a certificate/module it names).
    pub file: PathBuf,
    /// The manifest item concerned, e.g. `worker "reader"`.
    pub item: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.item.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.item,
                self.message
            )
        }
    }
}

/// Every problem found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl std::fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

/// A parsed manifest with its location; relative paths in it are resolved
/// against the manifest's directory.
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    /// Path of the manifest file.
    pub path: PathBuf,
    /// Directory relative paths are resolved against.
    pub base_dir: PathBuf,
    /// The manifest, with every path made absolute (or relative to the working directory).
    pub manifest: Manifest,
}

impl LoadedManifest {
    /// An error about `item` in this manifest.
    pub fn error(&self, item: impl Into<String>, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.path.clone(),
            item: item.into(),
            message: message.into(),
        }
    }
}

/// Read, parse and check the manifest at `path`.
pub fn load(path: &Path) -> Result<LoadedManifest, ManifestErrors> {
    let cannot = |message: String| {
        ManifestErrors(vec![ManifestError {
            file: path.to_path_buf(),
            item: String::new(),
            message,
        }])
    };
    let bytes =
        sigil_pki::fs::read_regular(path, sigil_pki::fs::MAX_MANIFEST_BYTES).map_err(|e| {
            cannot(format!(
                "cannot read the manifest: {e} (pass another with -c FILE)"
            ))
        })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| cannot(format!("the manifest is not UTF-8 text: {e}")))?;
    parse(path, &text)
}

/// Parse and check manifest `text` as if read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<LoadedManifest, ManifestErrors> {
    let mut manifest: Manifest = toml::from_str(text).map_err(|e| {
        let message = e.message().to_string();
        let location = e
            .span()
            .map(|span| {
                let line = text.as_bytes()[..span.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1;
                format!("line {line}: ")
            })
            .unwrap_or_default();
        ManifestErrors(vec![ManifestError {
            file: path.to_path_buf(),
            item: String::new(),
            message: format!("{location}{message}"),
        }])
    })?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    resolve_paths(&mut manifest, &base_dir);
    let loaded = LoadedManifest {
        path: path.to_path_buf(),
        base_dir,
        manifest,
    };
    let errors = validate::validate(&loaded);
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(ManifestErrors(errors))
    }
}

fn resolve_paths(m: &mut Manifest, base: &Path) {
    let fix = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    m.outbound.ca.iter_mut().for_each(fix);
    if let Some(id) = &mut m.identity {
        fix(&mut id.ca_cert);
        fix(&mut id.ca_key);
    }
    for c in &mut m.certificates {
        fix(&mut c.cert);
        fix(&mut c.key);
        if let Some(ca) = &mut c.ca {
            fix(ca);
        }
    }
    for h in &mut m.hostnames {
        fix(&mut h.cert);
        fix(&mut h.key);
        h.client_ca.iter_mut().for_each(fix);
        h.crl.iter_mut().for_each(fix);
    }
    for w in &mut m.workers {
        fix(&mut w.module);
        if let Some(b) = &mut w.build {
            b.paths_mut().into_iter().for_each(fix);
        }
    }
}
