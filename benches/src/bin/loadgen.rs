//! `loadgen`: drive HTTPS load at a server and print one table line (or JSON).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use sigil_bench::loadgen::{self, ClientTls, LoadConfig, LoadReport, Mode, Stop};

/// HTTPS load generator (hyper + tokio-rustls) for Sigil and its baselines.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version)]
struct Args {
    /// Target URL (https). Its host is the SNI and Host unless --server-name.
    #[arg(long)]
    url: String,
    /// Connect to this address instead of resolving the URL's host.
    #[arg(long)]
    connect: Option<SocketAddr>,
    /// SNI and Host override (e.g. pay.alpha.example).
    #[arg(long)]
    server_name: Option<String>,
    /// CA bundle (PEM) that verifies the server.
    #[arg(long)]
    ca: PathBuf,
    /// Client certificate chain (PEM).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// h1 (keep-alive), h2 (multiplexed) or new-conn (full handshake per request).
    #[arg(long, default_value = "h1")]
    mode: Mode,
    /// Concurrent workers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// HTTP/2 connections shared by the workers (h2 mode).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Measured duration (e.g. 10s, 500ms, 2m); default 5s.
    #[arg(long, value_parser = parse_duration, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Number of requests to issue instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Warm-up before measuring.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    warmup: Duration,
    /// Per-request timeout.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    timeout: Duration,
    /// Allow TLS session resumption (off: new-conn does full handshakes).
    #[arg(long)]
    resumption: bool,
    /// Label for the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> Result<()> {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let args = Args::parse();
    let tls = ClientTls::from_files(&args.ca, args.cert.as_deref(), args.key.as_deref())?;
    let mut cfg = LoadConfig::new(&args.url, tls)?;
    cfg.label = args.label;
    cfg.connect = args.connect;
    cfg.server_name = args.server_name;
    cfg.mode = args.mode;
    cfg.concurrency = args.concurrency;
    cfg.h2_connections = args.connections;
    cfg.stop = match (args.duration, args.requests) {
        (_, Some(n)) => Stop::Requests(n),
        (Some(d), None) => Stop::Duration(d),
        (None, None) => Stop::Duration(Duration::from_secs(5)),
    };
    cfg.warmup = args.warmup;
    cfg.request_timeout = args.timeout;
    cfg.tls_resumption = args.resumption;
    let report = loadgen::run(&cfg).await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", LoadReport::table_header());
        println!("{}", report.table_row());
        if !report.errors_by_kind.is_empty() {
            println!("errors: {:?}", report.errors_by_kind);
        }
    }
    Ok(())
}
