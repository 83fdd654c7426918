//! The running configuration every layer reads: the current [`Generation`]
//! (swapped whole on reload) inside the [`Runtime`], and the data it is made
//! of — workers, routes, hostname policies, identities.
//!
//! This module holds data and the contracts between layers, not behaviour:
//! the engine implements [`WorkerHandler`], inbound builds
//! [`HostnamePolicy`]s, the supervisor assembles a generation. It imports
//! only [`crate::config`], `sigil-pki` and the leaf modules
//! ([`crate::headers`], [`crate::telemetry`]).

mod body;
mod connection;
mod generation;
mod hostnames;
mod router;
mod runtime;
mod worker;

pub use body::{BodyError, BodyFailure, WorkerBody};
pub use connection::ConnectionInfo;
pub use generation::{CertificateExpiry, FileStamp, Generation, IdentityEntry};
pub use hostnames::{HostnamePolicies, HostnamePolicy};
pub use router::Router;
pub use runtime::{ReloadRequest, Runtime};
pub use worker::{Worker, WorkerError, WorkerFuture, WorkerHandler, WorkerRequest};
