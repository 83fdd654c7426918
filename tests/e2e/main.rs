//! Sigil's end-to-end tests, one module per area, in one binary (so wasmtime
//! is linked once). Every test runs the real `sigil` binary on loopback with
//! real guests built from `examples/` and `tests/guests/`, real TLS, and real
//! third-party peers (nginx, curl, Python's `ssl`) where the area needs them.

use sigil_testkit as support;

mod bad_modules;
mod blocked_networks;
mod certs_cli;
mod component_responses;
mod components;
mod components_lang;
mod edge_certs;
mod edge_hosts;
mod fuzz_corpora;
mod identity;
mod inbound;
mod live_ops;
mod manifest_errors;
mod new_worker;
mod operations;
mod outbound;
mod slow_clients;
mod starvation;
mod workers;
