//! An example HTTPS origin for Sigil workers (scenario S1): a tiny records
//! API that requires client certificates and lets only named writers append.
//!
//! * [`config`] — command line and loading of certificates, keys and CAs;
//! * [`authz`] — who the caller is and whether they may write;
//! * [`server`] — the TLS listener and the HTTP handlers.
//!
//! The binary is `sigil-example-origin`; run it with `--help`.

#![warn(missing_docs)]

pub mod authz;
pub mod config;
pub mod server;
