//! # sigil-runtime
//!
//! The host side of Sigil: an edge-worker runtime in which every outbound
//! subrequest can carry a client certificate chosen by name, and every
//! inbound hostname has its own server certificate and client CA.
//!
//! Where things live:
//! - [`manifest`]: reading and checking `sigil.toml`;
//! - [`generation`]: loading the files a manifest names into a servable configuration;
//! - [`engine`]: compiling workers and running each request in a fresh wasm instance;
//! - [`inbound`]: listeners, per-hostname mTLS chosen by SNI, the request service;
//! - [`outbound`]: bindings, allowed hosts and identity-keyed connection pools;
//! - [`certs`]: loading, checking, issuing and inspecting certificates; worker identities;
//! - [`server`], [`admin`], [`metrics`]: the running process, its admin endpoint and metrics;
//! - [`guest_build`]: building worker crates for `wasm32-wasip1`.

pub mod admin;
pub mod certs;
pub mod engine;
pub mod generation;
pub mod guest_build;
pub mod inbound;
pub mod limits;
pub mod manifest;
pub mod metrics;
pub mod outbound;
pub mod routing;
pub mod server;

/// Install aws-lc-rs as the process-wide rustls crypto provider (idempotent).
/// Call it first thing in `main` and in tests.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
