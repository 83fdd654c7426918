//! Outbound subrequests: resolving a worker's bindings to client
//! certificates, checking allowed hosts, and sending through a connection
//! pool keyed by identity. Implements the engine's
//! [`Subrequests`](crate::engine::Subrequests) with [`WorkerOutbound`].
//!
//! Every certificate has its own [`ClientPool`], and connections without a
//! client certificate have another, so a connection authenticated as one
//! identity is never reused for a request that asked for another identity,
//! or for none.

pub mod blocking;
mod classify;
mod diagnose;
mod http;
pub mod in_flight;
mod pool;
pub mod pools;
mod send;
pub mod tls;
mod worker;

pub use pool::{ClientPool, OutboundSettings};
pub use pools::{PoolCache, Pools};
pub use worker::{WorkerOutbound, outcome};
