//! Load generator and same-run baselines for Sigil's benchmarks.
//!
//! * [`loadgen`] drives HTTPS load (HTTP/1.1 keep-alive, HTTP/2, or a new TLS
//!   connection per request) and reports throughput and latency percentiles.
//! * [`baseline`] holds the bare servers Sigil is compared with in the same run:
//!   a bare hyper + rustls mTLS server, a bare reqwest proxy and an mTLS origin.
//! * [`pki`] generates a throwaway test PKI in memory with rcgen.
//! * [`report`] puts a scenario next to its baseline as ratios.
//! * [`sigil`] starts Sigil itself in-process (`server::load` + `server::serve`)
//!   on a manifest written to a temporary directory.
//! * [`child`] runs any of those servers in a child process of its own, and
//!   [`procstat`] reads a process's CPU time, so the suite can divide each
//!   server's CPU by the responses it served.
//! * [`suite`] is every scenario of the benchmark issue with its baseline,
//!   run by `cargo run --release -p sigil-bench --bin suite` (see
//!   `BENCHMARKS.md`).
//!
//! Every entry point expects the process-wide rustls crypto provider
//! (aws-lc-rs) to be installed; [`install_crypto_provider`] does that and is
//! safe to call more than once.
//!
//! A scenario and its baseline in one process:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use sigil_bench::baseline::bare_server::{self, BareServerConfig};
//! use sigil_bench::loadgen::{self, ClientTls, LoadConfig, Mode, Stop};
//! use sigil_bench::{pki::TestPki, report::Comparison};
//!
//! sigil_bench::install_crypto_provider();
//! let pki = TestPki::generate(&["pay.alpha.example"], &["device"])?;
//! let bare = bare_server::start(
//!     BareServerConfig::from_pki(&pki, &["pay.alpha.example"])
//!         .with_extra_hostnames(&pki, 10_000, false)?,
//! )
//! .await?;
//! let mut cfg = LoadConfig::new(
//!     "https://pay.alpha.example/hello",
//!     ClientTls::from_pem(pki.ca_pem(), pki.client("device")),
//! )?;
//! cfg.mode = Mode::H1KeepAlive;
//! cfg.concurrency = 32;
//! cfg.stop = Stop::Duration(std::time::Duration::from_secs(5));
//! cfg.connect = Some(bare.addr());
//! cfg.label = "bare hello".into();
//! let baseline = loadgen::run(&cfg).await?;
//! # let sigil_addr = bare.addr();
//! cfg.connect = Some(sigil_addr); // Sigil started with the same PKI
//! cfg.label = "sigil hello".into();
//! let subject = loadgen::run(&cfg).await?;
//! println!("{}", Comparison::new("hello, h1, c32", baseline, subject));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod baseline;
pub mod child;
pub mod loadgen;
pub mod pki;
pub mod procstat;
pub mod report;
pub mod sigil;
pub mod suite;
pub mod tls;

/// Installs aws-lc-rs as the process-wide rustls crypto provider.
///
/// Safe to call repeatedly (and from several tests): a provider that is
/// already installed is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
