//! `build` of a worker: how `sigil build` / `sigil dev` make its `module`
//! from source — a Cargo crate directory of a `sigil-sdk` worker (the
//! original form), or a table naming the language.

use serde::Deserialize;
use std::path::PathBuf;

/// `build = "<crate dir>"` or `build = { lang = "...", ... }`.
///
/// Read by hand rather than as an untagged enum, whose only error is "data
/// did not match any variant": a table gets the table's own errors (an
/// unknown `lang` lists the languages, an unknown key the keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildSection {
    /// A `sigil-sdk` worker crate, built for `wasm32-wasip1`.
    Crate(PathBuf),
    /// A worker in one of the supported languages.
    Lang(LangBuild),
}

impl<'de> Deserialize<'de> for BuildSection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> serde::de::Visitor<'de> for Form {
            type Value = BuildSection;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a crate directory (\"my-worker\") or a table such as { lang = \"js\", entry = \"worker.js\" }",
                )
            }

            fn visit_str<E: serde::de::Error>(self, dir: &str) -> Result<BuildSection, E> {
                Ok(BuildSection::Crate(PathBuf::from(dir)))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<BuildSection, A::Error> {
                LangBuild::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(BuildSection::Lang)
            }
        }
        deserializer.deserialize_any(Form)
    }
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
