//! `build` of a worker: how `sigil build` / `sigil dev` make its `module`
//! from source — a Cargo crate directory of a `sigil-sdk` worker (the
//! original form), or a table naming the language.

use serde::Deserialize;
use std::path::PathBuf;

/// `build = "<crate dir>"` or `build = { lang = "...", ... }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum BuildSection {
    /// A `sigil-sdk` worker crate, built for `wasm32-wasip1`.
    Crate(PathBuf),
    /// A worker in one of the supported languages.
    Lang(LangBuild),
}

/// The languages `sigil build` builds.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Lang {
    /// A `sigil-sdk` crate (`wasm32-wasip1` core module).
    Rust,
    /// A `wasi:http` component crate (the `wasi` crate, `wasm32-wasip2`).
    RustComponent,
    /// JavaScript with `@bytecodealliance/componentize-js`.
    Js,
    /// Python with `componentize-py`.
    Python,
}

/// `build = { lang = "js", entry = "worker.js" }` and the like.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LangBuild {
    /// `rust`, `rust-component`, `js` or `python`.
    pub lang: Lang,
    /// The crate directory (`rust`, `rust-component`).
    pub dir: Option<PathBuf>,
    /// The source file (`js`: the worker script; `python`: the app module).
    pub entry: Option<PathBuf>,
}

impl BuildSection {
    /// The language, `rust` for the crate-directory form.
    pub fn lang(&self) -> Lang {
        match self {
            BuildSection::Crate(_) => Lang::Rust,
            BuildSection::Lang(l) => l.lang,
        }
    }

    /// The paths it names, to resolve against the manifest's directory.
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            BuildSection::Crate(dir) => vec![dir],
            BuildSection::Lang(l) => l.dir.iter_mut().chain(l.entry.iter_mut()).collect(),
        }
    }

    /// What is missing for its language, if anything.
    pub fn problem(&self) -> Option<&'static str> {
        let BuildSection::Lang(l) = self else {
            return None;
        };
        match l.lang {
            Lang::Rust | Lang::RustComponent if l.dir.is_none() => Some(
                "build: lang = \"rust\" and \"rust-component\" need dir = \"<crate directory>\"",
            ),
            Lang::Js | Lang::Python if l.entry.is_none() => {
                Some("build: lang = \"js\" and \"python\" need entry = \"<source file>\"")
            }
            _ => None,
        }
    }
}
