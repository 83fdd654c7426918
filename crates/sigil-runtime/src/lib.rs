//! # sigil-runtime
//!
//! The server side of Sigil: an edge-worker runtime in which every outbound
//! subrequest can carry a client certificate chosen by name, and every
//! inbound hostname has its own server certificate and client CA.
//!
//! Where things live (dependencies point down this list, never up):
//! - [`supervisor`]: loads the first generation, starts listeners, the admin
//!   endpoint, identity renewal and the reload loop; shutdown;
//! - [`admin`]: `/metrics`, `/healthz`, `POST /reload`;
//! - [`inbound`]: listeners, per-hostname TLS chosen by SNI, the Host/SNI
//!   rule, the request service;
//! - [`identity`]: the identity CA, worker identities and their renewal;
//! - [`outbound`]: bindings, allowed hosts and identity-keyed connection
//!   pools; implements the engine's [`engine::Subrequests`];
//! - [`engine`]: compiling workers and running each request in a fresh wasm
//!   instance;
//! - [`state`]: the [`state::Runtime`] and the generation it serves — the
//!   data every layer may read, and the contracts between layers;
//! - [`config`]: the manifest, parsed and checked (no TLS, no wasm);
//! - leaves used by every layer: [`authority`] (the one strict parser of
//!   SNI, `Host` and `:authority`), [`route_path`] (the normalised path a
//!   request is routed by, and route paths are checked against),
//!   [`headers`] (hop-by-hop and runtime-owned
//!   headers, client-certificate forwarding) and [`telemetry`] (metrics,
//!   logs). Certificates themselves are the `sigil-pki` crate;
//! - process-wide: [`allocator`] (the global allocator a binary opts into)
//!   and [`memory`] (giving memory back after a burst of connections).

pub mod admin;
pub mod allocator;
pub mod authority;
pub mod config;
pub mod engine;
pub mod fuzzing;
pub mod headers;
pub mod identity;
pub mod inbound;
pub mod memory;
pub mod outbound;
pub mod route_path;
pub mod state;
pub mod supervisor;
pub mod telemetry;

pub use supervisor::{BoundAddresses, LoadOptions, Server, shutdown_signal};

/// Install aws-lc-rs as the process-wide rustls crypto provider (idempotent).
/// Call it first thing in `main` and in tests.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
