//! The `sigil` command: serve, check, build and develop workers; manage
//! development certificates.

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use sigil_runtime::{certs, guest_build, manifest, server};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

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
    /// Create, issue and inspect certificates (development PKI, CAs, client and server certificates).
    #[command(subcommand)]
    Certs(certs::CertsCommand),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn progress(line: &str) {
    eprintln!("sigil: {line}");
}

fn build_workers(config: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    // Parse without validating files: the modules do not exist yet.
    let parsed: manifest::Manifest = toml::from_str(&text)
        .with_context(|| format!("{}: not a valid manifest", config.display()))?;
    let base = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let crates: Vec<guest_build::GuestCrate> = parsed
        .workers
        .iter()
        .filter_map(|w| {
            w.build.as_ref().map(|dir| guest_build::GuestCrate {
                dir: base.join(dir),
                module: base.join(&w.module),
            })
        })
        .collect();
    if crates.is_empty() {
        progress("no worker declares build = \"...\"; nothing to build");
    }
    guest_build::build(&crates, &mut |l| progress(l))
}

/// `examples/../certs/x.pem` → `certs/x.pem`, for display.
fn tidy(path: &Path) -> String {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect::<PathBuf>().display().to_string()
}

fn print_try_urls(loaded: &manifest::LoadedManifest, bound: &server::BoundAddresses) {
    let m = &loaded.manifest;
    println!(
        "sigil: listening{}{}{}",
        bound.http.map(|a| format!(" http={a}")).unwrap_or_default(),
        bound
            .https
            .map(|a| format!(" https={a}"))
            .unwrap_or_default(),
        bound
            .admin
            .map(|a| format!(" admin={a}"))
            .unwrap_or_default()
    );
    let mut lines = Vec::new();
    for r in &m.routes {
        let host = r.host.as_deref().unwrap_or("*");
        let path = r.path.as_deref().unwrap_or("/");
        let protected = |name: &str| {
            m.hostnames.iter().any(|h| {
                h.name.eq_ignore_ascii_case(name) && h.client_cert != manifest::ClientCertMode::Off
            })
        };
        if let Some(a) = bound.http
            && !protected(host)
        {
            let (name, resolve) = if host == "*" {
                (a.ip().to_string(), String::new())
            } else {
                (
                    host.to_string(),
                    format!(" --resolve {host}:{}:{}", a.port(), a.ip()),
                )
            };
            lines.push(format!(
                "  {:<10} curl{resolve} http://{name}:{}{path}",
                r.worker,
                a.port()
            ));
        }
        let Some(a) = bound.https else { continue };
        for h in m
            .hostnames
            .iter()
            .filter(|h| host == "*" || h.name.eq_ignore_ascii_case(host))
        {
            // The development PKI keeps the issuing CA next to the certificate.
            let ca = h.cert.with_file_name("server-ca.pem");
            let cacert = if ca.exists() {
                format!(" --cacert {}", tidy(&ca))
            } else {
                " --cacert <server CA>".to_string()
            };
            let client = match h.client_cert {
                manifest::ClientCertMode::Off => String::new(),
                mode => format!(
                    " --cert <client.pem> --key <client.key>   ({} a certificate from {})",
                    if mode == manifest::ClientCertMode::Require {
                        "requires"
                    } else {
                        "accepts"
                    },
                    h.client_ca
                        .iter()
                        .map(|p| tidy(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            lines.push(format!(
                "  {:<10} curl --resolve {name}:{port}:{ip}{cacert} https://{name}:{port}{path}{client}",
                r.worker,
                name = h.name,
                port = a.port(),
                ip = a.ip()
            ));
        }
    }
    if !lines.is_empty() {
        println!("sigil: try");
        for l in lines {
            println!("{l}");
        }
    }
    if let Some(a) = bound.admin {
        println!("sigil: metrics at http://{a}/metrics");
    }
}

async fn run_serve(config: &Path, drain: Duration) -> anyhow::Result<()> {
    let (runtime, loaded) = match server::load(config) {
        Ok(x) => x,
        Err(errors) => anyhow::bail!("the configuration is not valid:\n{errors}"),
    };
    server::serve(
        runtime,
        &loaded,
        drain,
        |bound| print_try_urls(&loaded, bound),
        server::shutdown_signal(),
    )
    .await
}

fn check(config: &Path) -> anyhow::Result<()> {
    match server::load(config) {
        Ok((runtime, loaded)) => {
            let g = runtime.current();
            for w in &g.warnings {
                println!("warning: {w}");
            }
            println!(
                "{}: ok ({} workers, {} hostnames, {} certificates, {} routes)",
                config.display(),
                g.workers.len(),
                g.hostnames.len(),
                loaded.manifest.certificates.len(),
                loaded.manifest.routes.len()
            );
            Ok(())
        }
        Err(errors) => anyhow::bail!("{} problem(s):\n{errors}", errors.0.len()),
    }
}

fn main() -> ExitCode {
    sigil_runtime::install_crypto_provider();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Check { config } => check(&config),
        Command::Build { config } => build_workers(&config),
        Command::Certs(cmd) => certs::certs_cli(cmd),
        Command::Serve { config, drain_secs } => {
            tokio_main(run_serve(&config, Duration::from_secs(drain_secs)))
        }
        Command::Dev { config, certs_dir } => (|| {
            progress(&format!(
                "checking development certificates in {}",
                certs_dir.display()
            ));
            certs::dev_pki::init_dev_pki(&certs_dir, false, &mut |l| progress(l))?;
            build_workers(&config)?;
            progress(&format!("starting {}", config.display()));
            tokio_main(run_serve(&config, Duration::from_secs(5)))
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn tokio_main(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(fut)
}
