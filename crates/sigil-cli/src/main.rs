//! The `sigil` command: serve, check, build and develop workers; manage
//! development certificates.

mod commands;

use clap::{Parser, Subcommand, ValueEnum};
use commands::{build, certs, check, dev, new, serve, tokio_main};
use sigil_runtime::telemetry::logging;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The C library's allocator, or mimalloc under `SIGIL_ALLOCATOR=mimalloc`
/// (never in the `__compile` child): see
/// `sigil_runtime::allocator`.
#[global_allocator]
static ALLOCATOR: sigil_runtime::allocator::ProcessAllocator =
    sigil_runtime::allocator::ProcessAllocator;

#[derive(Parser)]
#[command(
    name = "sigil",
    version,
    about = "Sigil: WebAssembly edge workers whose subrequests present a client certificate chosen by name",
    long_about = "Sigil runs WebAssembly workers. Each worker's outbound fetch() can present a client \
certificate chosen by name (per worker or per request), so an origin can tell exactly which worker \
called it; inbound, each hostname has its own server certificate and client CA.\n\n\
Start with `sigil dev` in the repository to build the examples and serve them."
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the workers of a manifest until SIGTERM/SIGINT (reloads on SIGHUP and file changes).
    Serve {
        /// The manifest.
        #[arg(short = 'c', long = "config", default_value = "sigil.toml")]
        config: PathBuf,
        /// Seconds to let requests in flight finish on shutdown.
        #[arg(long, default_value_t = 30)]
        drain_secs: u64,
    },
    /// Check a manifest and every file it names (certificates, keys, CAs, CRLs, modules) without serving.
    Check {
        /// The manifest.
        #[arg(short = 'c', long = "config", default_value = "sigil.toml")]
        config: PathBuf,
    },
    /// Build the workers that declare `build = "<crate dir>"` into their `module` paths.
    Build {
        /// The manifest.
        #[arg(short = 'c', long = "config", default_value = "sigil.toml")]
        config: PathBuf,
    },
    /// Set up and serve for development: add the wasm32-wasip1 target if missing, create the
    /// development certificates if missing, build the workers, then serve.
    Dev {
        /// The manifest.
        #[arg(short = 'c', long = "config", default_value = "examples/sigil.toml")]
        config: PathBuf,
        /// Where the development certificates live.
        #[arg(long, default_value = "certs")]
        certs_dir: PathBuf,
    },
    /// Write a starter worker in `<name>/` (Rust with sigil-sdk, a Rust wasi:http component,
    /// JavaScript or Python) and add it to the manifest, ready for `sigil dev`.
    New {
        /// The worker's name (lower-case letters, digits, '-').
        name: String,
        /// Its language.
        #[arg(long, value_enum, default_value_t = new::NewLang::Rust)]
        lang: new::NewLang,
        /// The manifest to add it to (created when missing).
        #[arg(short = 'c', long = "config", default_value = "sigil.toml")]
        config: PathBuf,
    },
    /// Create, issue and inspect certificates (development PKI, CAs, client and server certificates).
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Internal: compile one worker module with the engine's settings, within a memory
    /// limit, and write the serialized module. The server runs it as a child process.
    #[command(name = "__compile", hide = true)]
    Compile {
        /// The module (`-` = stdin).
        #[arg(long = "in")]
        input: PathBuf,
        /// Where the compiled module goes (`-` = stdout).
        #[arg(long = "out")]
        output: PathBuf,
        /// Address space this process may add to what it has at start, in MiB.
        #[arg(long)]
        memory_mb: Option<u64>,
        /// The input is a component (`wasi:http/proxy`), not a core module.
        #[arg(long)]
        component: bool,
    },
}

fn main() -> ExitCode {
    sigil_runtime::install_crypto_provider();
    let cli = Cli::parse();
    if let Command::Compile {
        input,
        output,
        memory_mb,
        component,
    } = &cli.command
    {
        // No logging, no runtime: the parent reads stdout and the exit status.
        return match sigil_runtime::engine::run_compiler(input, output, *memory_mb, *component) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(e.code())
            }
        };
    }
    let log = logging::init(match cli.log_format {
        LogFormat::Text => logging::LogFormat::Text,
        LogFormat::Json => logging::LogFormat::Json,
    });
    let result = match cli.command {
        Command::Check { config } => check::check(&config),
        Command::Build { config } => build::build_workers(&config),
        Command::New { name, lang, config } => new::run(&name, lang, &config),
        Command::Certs(cmd) => certs::run(cmd),
        Command::Serve { config, drain_secs } => {
            tokio_main(serve::run(&config, Duration::from_secs(drain_secs)))
        }
        Command::Dev { config, certs_dir } => dev::run(&config, &certs_dir),
        Command::Compile { .. } => unreachable!("handled above"),
    };
    // Buffered log lines first, then the error after them.
    drop(log);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
