//! # sigil-sdk: write Sigil edge workers in Rust
//!
//! A worker is a `wasm32-wasip1` module that handles one HTTP request at a
//! time. It can call origins with [`fetch`], presenting a client certificate
//! chosen by name: the worker's default binding, one of its own
//! [`Binding`]s per request, or none at all. It can run subrequests in
//! parallel with [`fetch_all`] or [`Fetch::start`], and it can read the
//! inbound client certificate with [`Request::client_auth`].
//!
//! ```ignore
//! use sigil_sdk::{Request, Response, Fetch};
//!
//! fn handle(req: Request) -> Result<Response, sigil_sdk::Error> {
//!     let orders = Fetch::new("https://x.backend.example/orders").binding("TENANT_X").send()?;
//!     Ok(Response::ok(orders.text_body()))
//! }
//! sigil_sdk::export_handler!(handle);
//! ```
//!
//! Private keys never reach the guest: a binding is only a name, resolved by
//! the host against the worker's own bindings in `sigil.toml`.
//!
//! The [`wire`] types are shared with the host, which depends on this crate.

// The two audited places with `unsafe`: the raw host imports, and the glue
// the host calls through the module's exports. Each block states its
// preconditions in a SAFETY comment.
#[allow(unsafe_code)]
mod abi;
pub mod codec;
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod export;
mod fetch;
mod http;
pub mod log;
pub mod wire;
pub mod wire_ref;

pub use export::{Error, IntoHandlerOutput};
pub use fetch::{Binding, Fetch, PendingFetch, fetch, fetch_all};
pub use http::{Headers, Method, Request, Response};
pub use wire::{CertVerified, ClientAuth, FetchError};
