//! Inbound traffic: listeners, per-hostname TLS policies chosen by SNI,
//! the client-certificate details workers see, the Host/SNI rule, and the
//! request service that hands requests to workers.

pub mod client_auth;
mod connection;
mod handshake;
pub mod host_rule;
pub mod listener;
pub mod service;
pub mod tls;

pub use listener::Protocol;
