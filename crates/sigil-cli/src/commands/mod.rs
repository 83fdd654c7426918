//! One module per `sigil` command.

pub mod build;
pub mod certs;
pub mod check;
pub mod dev;
pub mod new;
pub mod serve;

use anyhow::Context as _;

/// How the `sigil` command loads a server: modules compile in a child
/// process (this binary's hidden `__compile`) with a memory limit.
pub fn load_options() -> sigil_runtime::LoadOptions {
    sigil_runtime::LoadOptions {
        compiler: std::env::current_exe().ok(),
        caller_prints_warnings: false,
    }
}

/// A progress line on stderr, prefixed `sigil:` (after the log lines
/// buffered so far, so the two stay in order).
pub fn progress(line: &str) {
    sigil_runtime::telemetry::log_writer::BatchedStderr::global().write_out();
    eprintln!("sigil: {line}");
}

/// Run `fut` on a multi-threaded tokio runtime.
pub fn tokio_main(
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // After a burst, each runtime thread gives back its allocator heap.
        .on_thread_park(sigil_runtime::allocator::on_thread_idle)
        .build()
        .context("cannot start the async runtime")?
        .block_on(fut)
}
