//! The second worker kind: `wasi:http/proxy` components (0.2.x, as
//! `wasmtime-wasi-http` 48 implements it), written in any language.
//!
//! - [`WorkerKind`] tells an SDK module from a component by its header;
//! - [`ComponentEngine`] (`engine.rs`) compiles components once (with the
//!   compiled-component cache, `cache.rs`), pre-links them against WASI 0.2
//!   and `wasi:http` and checks that they export
//!   `wasi:http/incoming-handler` (`load.rs`);
//! - [`ComponentWorker`] (`worker.rs`) serves each request on a fresh
//!   instance (or, opted in, a reused one: `reuse.rs`) under the worker's
//!   limits (`state.rs`, `run.rs`), with the inbound client certificate as
//!   request headers (`inbound.rs`) and bodies streaming both ways
//!   (`body.rs`);
//! - every outgoing request goes through the embedder's send-request hook
//!   (`hooks.rs`) to the outbound layer's [`HttpSubrequests`]
//!   (`subrequests.rs`), which applies the worker's bindings, identity and
//!   policy; a `sigil-binding` request header chooses the binding.

mod body;
mod cache;
mod engine;
mod hooks;
mod inbound;
mod kind;
mod load;
mod output;
mod run;
mod state;
mod subrequests;
mod worker;

pub use engine::ComponentEngine;
pub use kind::WorkerKind;
pub use load::ComponentModule;
pub use subrequests::{HttpSubrequest, HttpSubrequestFuture, HttpSubrequests};
pub use worker::{ComponentWorker, InstanceReuse};
