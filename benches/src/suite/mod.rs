//! The benchmark suite behind `cargo run --release -p sigil-bench --bin suite`:
//! every scenario of issues 7 and 13 next to its baseline, in the same run,
//! interleaved over several rounds, with the ratio and the target.
//!
//! | id       | what                                                        | target            |
//! |----------|-------------------------------------------------------------|-------------------|
//! | `h1`     | hello worker, inbound mTLS, HTTP/1.1 keep-alive vs bare     | server CPU/response ≤ 3.0× bare, req/s ≥ 0.5×, p99.9 ≤ 10 ms |
//! | `h2-1`   | new mTLS connection per request, 1 hostname, vs bare        | ≥ 0.95× bare handshakes/s |
//! | `h2-10k` | same with 10,000 hostnames configured on both sides         | ≥ 0.95× bare handshakes/s |
//! | `s1`     | subrequest through a binding to an mTLS origin vs bare proxy | server CPU/response ≤ 2.0×, req/s ≥ 0.7×, 0 origin handshakes after warm-up |
//! | `c1`     | `Engine::invoke` of hello in a loop (instantiate + call)    | ≤ 8 µs median     |
//! | `c2`     | start with 1,000 workers (cold, cached); RSS per worker; 10k certificates + 10k hostnames | ≤ 2 s cached, ≤ 1 MiB/worker |
//! | `r1`     | reload with 10,000 hostnames, one changed; RSS over 20 reloads | ≤ 1 s, ≤ 1.10× |
//!
//! In the load scenarios (`h1`, `h2-*`, `s1`) every server — Sigil, the bare
//! server, the bare proxy and S1's origin — runs in a process of its own
//! ([`crate::child`]) and the load generator runs in this one, so each
//! figure's CPU is one process's `utime + stime` over the measured window
//! divided by the responses of that window ([`crate::procstat`]). Req/s
//! ratios understate a slow server when the load generator shares the
//! cores (a slow server keeps waking an idle client), so the server's CPU
//! per response is the headline figure and the load generator's own CPU
//! per response is reported beside it.
//!
//! Everything listens on `127.0.0.1:0`; every run is bounded in time.

mod c1;
mod c2;
mod load;
mod measure;
mod r1;
mod summary;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

pub use c2::child_main as c2_child_main;
pub use r1::child_main as r1_child_main;
pub use summary::{LoadLine, SideFigures, load_header, load_lines};

/// Every scenario id, in the order they run.
pub const SCENARIOS: [&str; 7] = ["h1", "h2-1", "h2-10k", "s1", "c1", "c2", "r1"];

/// How long and how often to measure.
#[derive(Clone, Debug, Serialize)]
pub struct Options {
    /// Short runs (for a smoke check; the figures are noisier).
    pub quick: bool,
    /// Rounds per comparison (baseline and Sigil alternate in each round).
    pub rounds: usize,
    /// Warm-up before each measured load run.
    pub warmup: Duration,
    /// Measured phase of each load run.
    pub measure: Duration,
    /// Load generator concurrency for keep-alive and proxy scenarios.
    pub concurrency: usize,
    /// Load generator concurrency for the new-connection scenarios.
    pub handshake_concurrency: usize,
    /// Hostnames configured in the `h2-10k` scenario.
    pub many_hostnames: usize,
    /// C1: iterations per measurement, after `c1_warmup` iterations.
    pub c1_iterations: usize,
    /// C1: warm-up iterations.
    pub c1_warmup: usize,
    /// C2: number of workers.
    pub c2_workers: usize,
    /// C2: number of certificates and of hostnames for the memory figure.
    pub c2_certs: usize,
    /// Scenario ids to run (all when empty).
    pub only: Vec<String>,
}

impl Options {
    /// The full run (about four minutes on two cores) or the quick one.
    pub fn new(quick: bool) -> Self {
        Options {
            quick,
            rounds: 3,
            warmup: if quick {
                Duration::from_millis(300)
            } else {
                Duration::from_secs(1)
            },
            measure: if quick {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(4)
            },
            concurrency: 16,
            handshake_concurrency: 8,
            many_hostnames: 10_000,
            c1_iterations: if quick { 3_000 } else { 20_000 },
            c1_warmup: if quick { 500 } else { 2_000 },
            c2_workers: 1_000,
            c2_certs: 10_000,
            only: Vec::new(),
        }
    }

    /// Whether scenario `id` is selected (`h2` selects `h2-1` and `h2-10k`).
    pub fn selected(&self, id: &str) -> bool {
        self.only.is_empty()
            || self
                .only
                .iter()
                .any(|o| o == id || (id.starts_with(o.as_str()) && id[o.len()..].starts_with('-')))
    }
}

/// One line of the final table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Scenario id (`h1`, `s1`, ...).
    pub id: String,
    /// What is measured.
    pub measure: String,
    /// Unit of `baseline` and `sigil`.
    pub unit: String,
    /// The baseline's median, if the figure has a baseline.
    pub baseline: Option<f64>,
    /// Sigil's median.
    pub sigil: f64,
    /// `sigil / baseline` (of the medians).
    pub ratio: Option<f64>,
    /// The target, as text (`>= 0.50x`, `<= 8 us`, or empty).
    pub target: String,
    /// Whether the target holds (`None`: no target).
    pub pass: Option<bool>,
    /// Extra detail (spread over rounds, errors, ...).
    pub note: String,
}

impl Row {
    fn info(id: &str, measure: &str, unit: &str, value: f64, note: String) -> Row {
        Row {
            id: id.into(),
            measure: measure.into(),
            unit: unit.into(),
            baseline: None,
            sigil: value,
            ratio: None,
            target: String::new(),
            pass: None,
            note,
        }
    }

    fn at_most(id: &str, measure: &str, unit: &str, value: f64, max: f64, note: String) -> Row {
        Row {
            target: format!("<= {max} {unit}"),
            pass: Some(value <= max),
            ..Row::info(id, measure, unit, value, note)
        }
    }
}

/// What one scenario produced.
pub(crate) struct Outcome {
    /// Its summary rows.
    rows: Vec<Row>,
    /// Its load summary (load scenarios only).
    load: Vec<LoadLine>,
    /// Every individual measurement.
    detail: serde_json::Value,
}

impl From<(Vec<Row>, serde_json::Value)> for Outcome {
    fn from((rows, detail): (Vec<Row>, serde_json::Value)) -> Self {
        Outcome {
            rows,
            load: Vec::new(),
            detail,
        }
    }
}

/// Everything a run produced.
#[derive(Debug, Serialize)]
pub struct SuiteReport {
    /// The machine.
    pub machine: Machine,
    /// The options used.
    pub options: Options,
    /// The load scenarios: both sides' medians (req/s, server CPU per
    /// response, latency, the load generator's CPU) and their ratios.
    pub load: Vec<LoadLine>,
    /// The summary rows, each with its target, if any.
    pub rows: Vec<Row>,
    /// Every individual measurement, by scenario id.
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Scenarios that failed to run, with the error.
    pub failures: Vec<(String, String)>,
}

/// What the figures were measured on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs available.
    pub nproc: usize,
    /// CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` from `/proc/meminfo`, MiB.
    pub mem_total_mib: u64,
    /// `uname -r`-like kernel release, if readable.
    pub kernel: String,
}

impl Machine {
    /// Reads the machine description from `/proc`.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            mem_total_mib: crate::sigil::status_kib("/proc/meminfo", "MemTotal:").unwrap_or(0)
                / 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        }
    }
}

/// The median of `v` (mean of the middle two for an even count; NaN if empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Runs the selected scenarios and returns the report (also printing
/// progress and per-run lines to stdout as it goes).
pub async fn run(opts: Options) -> SuiteReport {
    let mut report = SuiteReport {
        machine: Machine::detect(),
        options: opts.clone(),
        load: Vec::new(),
        rows: Vec::new(),
        details: serde_json::Map::new(),
        failures: Vec::new(),
    };
    println!(
        "machine: {} logical CPUs, {}, {} MiB RAM, kernel {}",
        report.machine.nproc,
        report.machine.cpu_model,
        report.machine.mem_total_mib,
        report.machine.kernel
    );
    // Children inherit the environment, so they use the same allocator.
    println!(
        "allocator (every server of every scenario): {}",
        match sigil_runtime::allocator::in_use() {
            Some(sigil_runtime::allocator::Choice::Mimalloc) =>
                "mimalloc (SIGIL_ALLOCATOR=mimalloc)",
            Some(sigil_runtime::allocator::Choice::System) => "the C library's",
            None => "the C library's (not the ProcessAllocator)",
        }
    );
    if let Err(e) = crate::sigil::build_guests(&mut |l| println!("  {l}")) {
        report
            .failures
            .push(("guests".into(), format!("building the guests: {e:#}")));
        return report;
    }
    for id in SCENARIOS {
        if !opts.selected(id) {
            continue;
        }
        println!("\n=== {id} ===");
        match run_one(&opts, id).await {
            Ok(outcome) => {
                for l in &outcome.load {
                    println!("{}", load_header());
                    println!("{}", load_lines(l).join("\n"));
                }
                for r in &outcome.rows {
                    println!("{}", row_line(r));
                }
                report.load.extend(outcome.load);
                report.rows.extend(outcome.rows);
                report.details.insert(id.into(), outcome.detail);
            }
            Err(e) => {
                println!("{id} FAILED: {e:#}");
                report.failures.push((id.into(), format!("{e:#}")));
            }
        }
    }
    report
}

/// Runs scenario `id` and prints the machine's CPU use during it.
async fn run_one(opts: &Options, id: &str) -> Result<Outcome> {
    let cpu_before = cpu_times();
    let result = match id {
        "h1" => load::h1(opts).await,
        "h2-1" => load::h2(opts, 1).await,
        "h2-10k" => load::h2(opts, opts.many_hostnames).await,
        "s1" => load::s1(opts).await,
        "c1" => c1::run(opts).await.map(Outcome::from),
        "c2" => c2::run(opts).await.map(Outcome::from),
        "r1" => r1::run(opts).await.map(Outcome::from),
        _ => unreachable!("unknown scenario id"),
    };
    if let (Some(a), Some(b)) = (cpu_before, cpu_times()) {
        let total = (b.0 - a.0).max(1) as f64;
        println!(
            "{id}: CPU busy {:.0}%, steal {:.1}% of the machine during the scenario",
            100.0 * (b.1 - a.1) as f64 / total,
            100.0 * (b.2 - a.2) as f64 / total
        );
    }
    result
}

/// `(total, busy, steal)` jiffies of all CPUs from `/proc/stat`.
fn cpu_times() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    let steal = *v.get(7)?;
    Some((total, total - idle - steal, steal))
}

fn fmt_value(v: f64, unit: &str) -> String {
    if v.is_nan() {
        return "-".into();
    }
    match unit {
        "req/s" | "hs/s" => format!("{v:.0}"),
        "us" => format!("{v:.1}"),
        "count" => format!("{v:.0}"),
        "s" => format!("{v:.2}"),
        "MiB" | "KiB" => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

/// Column headers of [`row_line`].
pub fn row_header() -> String {
    format!(
        "{:<7} {:<44} {:>10} {:>10} {:>7} {:>10} {:<5} {}",
        "id", "measure", "baseline", "sigil", "ratio", "target", "ok", "note"
    )
}

/// One table line.
pub fn row_line(r: &Row) -> String {
    let measure = format!("{} [{}]", r.measure, r.unit);
    format!(
        "{:<7} {:<44} {:>10} {:>10} {:>7} {:>10} {:<5} {}",
        r.id,
        measure,
        r.baseline
            .map(|b| fmt_value(b, &r.unit))
            .unwrap_or_else(|| "-".into()),
        fmt_value(r.sigil, &r.unit),
        r.ratio
            .map(|x| format!("{x:.2}x"))
            .unwrap_or_else(|| "-".into()),
        r.target,
        match r.pass {
            Some(true) => "yes",
            Some(false) => "MISS",
            None => "",
        },
        r.note
    )
}

/// The summary as text: the load scenarios (each side's medians and their
/// ratios), then every row with its target.
pub fn table(report: &SuiteReport) -> String {
    let mut out = String::new();
    if !report.load.is_empty() {
        out.push_str(
            "load: medians over rounds; CPU = a process's utime+stime (10 ms ticks) over the measured window / responses\n",
        );
        out.push_str(&load_header());
        out.push('\n');
        for l in &report.load {
            for line in load_lines(l) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out.push('\n');
    }
    out.push_str(&row_header());
    out.push('\n');
    for r in &report.rows {
        out.push_str(&row_line(r));
        out.push('\n');
    }
    for (id, e) in &report.failures {
        out.push_str(&format!("{id:<7} FAILED: {e}\n"));
    }
    out
}

/// A fresh temporary directory for one scenario (removed on drop).
pub(crate) fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("sigil-bench-{prefix}-"))
        .tempdir()?)
}

/// A directory shared by the scenarios of one suite run for compiled modules.
pub(crate) fn module_cache_dir() -> PathBuf {
    crate::sigil::workspace_root().join("target/bench-module-cache")
}
