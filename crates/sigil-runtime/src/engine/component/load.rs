//! Loading a component worker: compiled once (or taken from the cache),
//! checked to export `wasi:http/incoming-handler`, and pre-linked, so each
//! request only instantiates.

use super::cache::from_compiler_child;
use super::engine::ComponentEngine;
use super::state::ComponentState;
use crate::engine::ModuleError;
use crate::engine::compile::{Artifact, ChildFailure, CompileLimits, in_child};
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::Component;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// The export every component worker must have.
pub const INCOMING_HANDLER: &str = "wasi:http/incoming-handler";

/// A compiled component worker, ready to instantiate without relinking.
#[derive(Clone)]
pub struct ComponentModule {
    pub(super) pre: ProxyPre<ComponentState>,
    /// SHA-256 of the component bytes (hex).
    pub digest: Arc<str>,
    /// The component's size in bytes.
    pub size: usize,
}

/// A list of export names, for messages.
fn names(exports: &[String]) -> String {
    if exports.is_empty() {
        return "nothing".into();
    }
    exports
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ComponentEngine {
    /// Compile (or load from the cache) the component read from `path`,
    /// check its exports and pre-link it. It compiles in the compiler child
    /// (`sigil __compile --component`) within `compile`'s memory and time
    /// limits when the engine has one, as modules do.
    pub fn load_component_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        compile: &CompileLimits,
    ) -> Result<ComponentModule, ModuleError> {
        let invalid = |message: String| ModuleError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let (component, digest) = self
            .cache
            .get_or_compile(&self.engine, bytes, || self.compile(path, bytes, compile))?;
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let handler = format!("{INCOMING_HANDLER}@0.2");
        if !exports.iter().any(|e| e.starts_with(&handler)) {
            return Err(invalid(format!(
                "a component worker must export {INCOMING_HANDLER} (the wasi:http/proxy world, 0.2.x); this component exports {} (a `wasm32-wasip2` binary with `fn main` exports wasi:cli/run: build a wasi:http component instead, see docs/components.md)",
                names(&exports)
            )));
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "cannot link: {e:#}; component workers may import WASI 0.2 and wasi:http 0.2.x only"
            ))
        })?;
        let pre = ProxyPre::new(pre).map_err(|e| {
            invalid(format!(
                "its {INCOMING_HANDLER} export does not match wasi:http 0.2: {e:#}"
            ))
        })?;
        Ok(ComponentModule {
            pre,
            digest: digest.into(),
            size: bytes.len(),
        })
    }

    /// Compile `bytes`: in the compiler child when there is one, else here.
    fn compile(
        &self,
        path: &Path,
        bytes: &[u8],
        limits: &CompileLimits,
    ) -> Result<Component, ModuleError> {
        let invalid = |message: String| ModuleError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let Some(compiler) = &self.compiler else {
            return Component::new(&self.engine, bytes)
                .map_err(|e| invalid(format!("not a valid component: {e:#}")));
        };
        let serialized =
            in_child(compiler, bytes, limits, Artifact::Component).map_err(|failure| {
                let message = failure.message(path, limits);
                match failure {
                    ChildFailure::Invalid(e) => invalid(format!("not a valid component: {e}")),
                    _ => ModuleError::Limit {
                        path: path.to_path_buf(),
                        message,
                    },
                }
            })?;
        from_compiler_child(&self.engine, &serialized)
            .map_err(|e| invalid(format!("the compiler's output does not load: {e:#}")))
    }
}
