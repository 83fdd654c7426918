//! Inbound traffic: listeners, per-hostname TLS policies chosen by SNI,
//! the client-certificate details workers see, the Host/SNI rule, the
//! request service that hands requests to workers, and the limits and
//! timeouts every connection is served under.

pub mod accept;
pub mod client_auth;
mod connection;
mod handshake;
pub mod host_rule;
pub mod limit;
pub mod listener;
pub mod service;
mod streaming;
mod timeouts;
pub mod tls;

pub use listener::{Inbound, Protocol};
