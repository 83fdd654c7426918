//! Inbound traffic: listeners, per-hostname TLS policies chosen by SNI,
//! client-certificate verification and details, forwarding headers, and the
//! request service that hands requests to workers.

pub mod client_auth;
pub mod forward;
pub mod listener;
pub mod policy;
pub mod service;
pub mod verifier;
