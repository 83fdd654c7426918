//! `sigil dev`: set up and serve for development — add the wasm32-wasip1
//! target if missing, create the development certificates if missing,
//! build the workers, then serve.

use super::{build, progress, serve, tokio_main};
use std::path::Path;
use std::time::Duration;

/// Set up and serve `config` with the development PKI in `certs_dir`.
pub fn run(config: &Path, certs_dir: &Path) -> anyhow::Result<()> {
    progress(&format!(
        "checking development certificates in {}",
        certs_dir.display()
    ));
    super::certs::dev_pki::init_dev_pki(certs_dir, false, &mut |l| progress(l))?;
    build::build_workers(config)?;
    progress(&format!("starting {}", config.display()));
    tokio_main(serve::run(config, Duration::from_secs(5)))
}
