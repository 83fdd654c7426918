//! `baseline`: run one baseline server standalone, print its address and the
//! PEM files to point `loadgen` at, and serve until Ctrl-C.

/// The `sigil` command's allocator (see `sigil_runtime::allocator`), so that
/// a comparison of the two measures the servers, not their allocators.
#[global_allocator]
static ALLOCATOR: sigil_runtime::allocator::ProcessAllocator =
    sigil_runtime::allocator::ProcessAllocator;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sigil_bench::baseline::bare_proxy::{self, BareProxyConfig};
use sigil_bench::baseline::bare_server::{self, BareServerConfig};
use sigil_bench::baseline::mtls_origin::{self, MtlsOriginConfig};
use sigil_bench::pki::{self, TestPki};

/// Baseline servers for Sigil's benchmarks. A throwaway PKI is generated
/// and written to --pki-dir (default: a new temp dir).
#[derive(Parser, Debug)]
#[command(name = "baseline", version)]
struct Args {
    /// Where to write ca.pem, server.pem/.key and client-<cn>.pem/.key.
    #[arg(long, global = true)]
    pki_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, global = true, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Bare hyper + rustls mTLS server answering "hello".
    BareServer {
        /// Hostnames served (SNI) besides localhost.
        #[arg(long, default_value = "pay.alpha.example")]
        hostname: Vec<String>,
        /// Extra hostnames h<i>.extra.bench.example in the SNI map.
        #[arg(long, default_value_t = 0)]
        extra_hostnames: usize,
        /// Give every extra hostname its own key and certificate.
        #[arg(long)]
        distinct_certs: bool,
    },
    /// Bare proxy: TLS (mTLS) in, one reqwest client with one identity out.
    /// Starts its own in-process origin.
    BareProxy {
        /// Offer HTTP/1.1 only to the origin (default: h2 + http/1.1).
        #[arg(long)]
        origin_http1: bool,
        /// reqwest pool_max_idle_per_host.
        #[arg(long, default_value_t = 32)]
        pool: usize,
    },
    /// Loopback mTLS origin counting handshakes and client CNs.
    Origin,
}

#[tokio::main]
async fn main() -> Result<()> {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let args = Args::parse();
    let names: Vec<String> = match &args.cmd {
        Cmd::BareServer { hostname, .. } => hostname.clone(),
        _ => vec!["pay.alpha.example".into()],
    };
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pki = TestPki::generate(&name_refs, &["bench-client", "proxy-client"])?;
    let dir = args
        .pki_dir
        .clone()
        .unwrap_or_else(|| pki::temp_dir("sigil-bench-pki"));
    let files = pki.write_to(&dir)?;
    println!("pki: {}", files.dir.display());
    println!("  --ca {}", files.ca.display());
    for (cn, cert, key) in &files.clients {
        println!(
            "  client {cn}: --cert {} --key {}",
            cert.display(),
            key.display()
        );
    }

    match args.cmd {
        Cmd::BareServer {
            extra_hostnames,
            distinct_certs,
            ..
        } => {
            let mut cfg = BareServerConfig::from_pki(&pki, &name_refs).with_extra_hostnames(
                &pki,
                extra_hostnames,
                distinct_certs,
            )?;
            cfg.listen = args.listen;
            let server = bare_server::start(cfg).await?;
            println!(
                "bare-server listening on {} ({} hostnames)",
                server.addr(),
                server.hostnames()
            );
            wait().await?;
            server.shutdown().await;
        }
        Cmd::BareProxy { origin_http1, pool } => {
            let origin = mtls_origin::start(MtlsOriginConfig::from_pki(&pki)).await?;
            let mut cfg = BareProxyConfig::from_pki(&pki, &origin.url(), "proxy-client")?;
            cfg.listen = args.listen;
            cfg.origin_http2 = !origin_http1;
            cfg.pool_max_idle_per_host = pool;
            let proxy = bare_proxy::start(cfg).await?;
            println!("origin listening on {}", origin.addr());
            println!("bare-proxy listening on {}", proxy.addr());
            wait().await?;
            println!("origin counters: {:?}", origin.counters());
            proxy.shutdown().await;
            origin.shutdown().await;
        }
        Cmd::Origin => {
            let mut cfg = MtlsOriginConfig::from_pki(&pki);
            cfg.listen = args.listen;
            let origin = mtls_origin::start(cfg).await?;
            println!("origin listening on {}", origin.addr());
            wait().await?;
            println!("origin counters: {:?}", origin.counters());
            origin.shutdown().await;
        }
    }
    Ok(())
}

async fn wait() -> Result<()> {
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
}
