//! Every benchmark scenario with its baseline, in one run:
//!
//! ```sh
//! cargo run --release -p sigil-bench --bin suite            # full run (~5 min)
//! cargo run --release -p sigil-bench --bin suite -- --quick # short run
//! cargo run --release -p sigil-bench --bin suite -- --only h1,c1 --json out.json
//! ```
//!
//! See `BENCHMARKS.md` and [`sigil_bench::suite`].

/// The `sigil` command's allocator (the C library's; `SIGIL_ALLOCATOR=mimalloc`
/// for mimalloc: see `sigil_runtime::allocator`). Sigil and its baselines run in
/// child processes of this binary, so both sides of every comparison use the
/// same allocator.
#[global_allocator]
static ALLOCATOR: sigil_runtime::allocator::ProcessAllocator =
    sigil_runtime::allocator::ProcessAllocator;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use sigil_bench::suite::{self, Options, SCENARIOS};

#[derive(Parser, Debug)]
#[command(about = "Sigil's benchmark scenarios, each with its same-run baseline")]
struct Args {
    /// Short runs (1 s measured per run instead of 4 s; fewer C1 iterations).
    #[arg(long)]
    quick: bool,
    /// Also write the whole report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Run only these scenarios (comma-separated): h1, h2 (= h2-1 and
    /// h2-10k), h2-1, h2-10k, s1, c1, c2, r1.
    #[arg(long, value_name = "NAME[,NAME]", value_delimiter = ',')]
    only: Vec<String>,
    /// Rounds per comparison (at least 1; default 3).
    #[arg(long)]
    rounds: Option<usize>,
    /// Internal: start Sigil on this manifest, report and exit (used by c2).
    #[arg(long, value_name = "MANIFEST", hide = true)]
    c2_child: Option<PathBuf>,
    /// Internal: serve and reload the manifest in this directory (used by r1).
    #[arg(long, value_name = "DIR", hide = true)]
    r1_child: Option<PathBuf>,
    /// Internal: run the server described by this JSON spec until stdin
    /// closes (every measured server of h1, h2 and s1 runs so).
    #[arg(long, value_name = "SPEC", hide = true)]
    serve_child: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(manifest) = &args.c2_child {
        return suite::c2_child_main(manifest);
    }
    if let Some(dir) = &args.r1_child {
        return suite::r1_child_main(dir);
    }
    if let Some(spec) = &args.serve_child {
        return sigil_bench::child::child_main(spec);
    }
    for o in &args.only {
        anyhow::ensure!(
            o == "h2" || SCENARIOS.contains(&o.as_str()),
            "unknown scenario {o:?}; expected one of h1, h2, {}",
            SCENARIOS[1..].join(", ")
        );
    }
    sigil_bench::install_crypto_provider();
    let mut opts = Options::new(args.quick);
    opts.only = args.only.clone();
    if let Some(r) = args.rounds {
        opts.rounds = r.max(1);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(suite::run(opts));
    println!("\n=== summary ===\n{}", suite::table(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {}", path.display());
    }
    if !report.failures.is_empty() {
        anyhow::bail!("{} scenario(s) failed", report.failures.len());
    }
    Ok(())
}
