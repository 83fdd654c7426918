//! Measured load runs against servers in their own processes: the load
//! generator (in this process) counts the responses of its measured
//! window, and around exactly that window the suite reads `utime + stime`
//! of the server's process, of its own process (the load generator's CPU)
//! and, in S1, of the origin's process, plus the origin's handshake count.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Options, cpu_times};
use crate::child::{ChildServer, Control};
use crate::loadgen::{self, LoadConfig, LoadReport, Stop};
use crate::procstat::{self, CpuUse, ProcSample};

/// The processes read around one side's measured window (besides this one).
#[derive(Clone)]
pub(super) struct Watch {
    /// The measured server's pid.
    server: u32,
    /// S1: the origin's pid and a handle to ask it for its counters.
    origin: Option<(u32, Control)>,
}

/// One side of a comparison: where to send the load, what to read.
pub(super) struct Side {
    addr: SocketAddr,
    watch: Watch,
}

impl Side {
    /// The server in `child`, nothing else watched.
    pub(super) fn of(child: &ChildServer) -> Side {
        Side {
            addr: child.addr(),
            watch: Watch {
                server: child.pid(),
                origin: None,
            },
        }
    }

    /// Also reads `origin`'s CPU and handshake count around each window.
    pub(super) fn with_origin(mut self, origin: &ChildServer) -> Side {
        self.watch.origin = Some((origin.pid(), origin.control()));
        self
    }
}

/// The readings at one end of a measured window.
struct Reading {
    server: ProcSample,
    client: ProcSample,
    origin: Option<ProcSample>,
    origin_handshakes: Option<u64>,
    /// `(total, busy, steal)` jiffies of the whole machine.
    machine: Option<(u64, u64, u64)>,
}

/// Reads everything `w` names (the origin's counters through its stdin).
async fn read(w: Watch) -> Result<Reading> {
    let server = procstat::sample(w.server).context("reading the server's /proc entry")?;
    let client = procstat::sample(std::process::id())?;
    let (origin, origin_handshakes) = match &w.origin {
        None => (None, None),
        Some((pid, control)) => {
            let sample = procstat::sample(*pid).context("reading the origin's /proc entry")?;
            let counters = control.counters().await?;
            let hs = counters["handshakes"]
                .as_u64()
                .context("origin counters without handshakes")?;
            (Some(sample), Some(hs))
        }
    };
    Ok(Reading {
        server,
        client,
        origin,
        origin_handshakes,
        machine: cpu_times(),
    })
}

/// The whole machine over a window, in CPUs busy on average.
#[derive(Clone, Copy, Debug, Serialize)]
pub(super) struct MachineUse {
    /// Busy CPUs, every process (steal excluded).
    pub busy_cores: f64,
    /// Of those, neither the measured server, the load generator nor the
    /// origin: other work on the machine competing for it.
    pub other_cores: f64,
    /// CPUs stolen by the hypervisor.
    pub steal_cores: f64,
}

impl MachineUse {
    /// From two `/proc/stat` readings `window_s` apart, of which
    /// `measured_cores` were the measured processes.
    fn between(
        a: (u64, u64, u64),
        b: (u64, u64, u64),
        window_s: f64,
        measured_cores: f64,
    ) -> MachineUse {
        let cores = |x: u64, y: u64| {
            y.saturating_sub(x) as f64 / procstat::clock_ticks_per_sec() / window_s
        };
        let busy_cores = cores(a.1, b.1);
        MachineUse {
            busy_cores,
            other_cores: (busy_cores - measured_cores).max(0.0),
            steal_cores: cores(a.2, b.2),
        }
    }
}

/// One measured run of one side.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Run {
    /// The load generator's report (requests, req/s, latency).
    pub report: LoadReport,
    /// The server's process over the window.
    pub server: CpuUse,
    /// This process (the load generator) over the window.
    pub loadgen: CpuUse,
    /// The origin's process over the window (S1).
    pub origin: Option<CpuUse>,
    /// TLS handshakes the origin accepted during the window (S1).
    pub origin_handshakes: Option<u64>,
    /// The whole machine over the window.
    pub machine: Option<MachineUse>,
}

impl Run {
    /// The run's line: the load generator's row, then the CPU figures.
    fn line(&self) -> String {
        let mut line = format!(
            "{}  srv {:.1} us/resp ({:.2} cores, {} thr, {:.2} cs/resp), loadgen {:.1} us/req",
            self.report.table_row(),
            self.server.us_per_response,
            self.server.cores,
            self.server.threads,
            self.server.cs_per_response,
            self.loadgen.us_per_response,
        );
        if let Some(o) = &self.origin {
            line.push_str(&format!(", origin {:.1} us/resp", o.us_per_response));
        }
        if let Some(hs) = self.origin_handshakes {
            line.push_str(&format!(", origin handshakes {hs}"));
        }
        if let Some(m) = &self.machine {
            line.push_str(&format!(
                "; machine busy {:.2} cores (other work {:.2}, steal {:.2})",
                m.busy_cores, m.other_cores, m.steal_cores
            ));
        }
        line
    }
}

/// One load run with its window read, bounded to four times its nominal
/// length + 60 s.
async fn measure(cfg: &LoadConfig, watch: &Watch) -> Result<Run> {
    let nominal = cfg.warmup
        + match cfg.stop {
            Stop::Duration(d) | Stop::First(d, _) => d,
            Stop::Requests(_) => Duration::from_secs(60),
        };
    let w = watch.clone();
    let windowed = tokio::time::timeout(
        nominal * 4 + Duration::from_secs(60),
        loadgen::run_with_window(cfg, move || read(w.clone())),
    )
    .await
    .with_context(|| format!("load run {} did not finish in time", cfg.label))??;
    let start = windowed
        .start
        .context("the window's first reading did not run")??;
    let end = windowed.end?;
    let rps = windowed.report.requests_per_sec;
    let origin = match (&start.origin, &end.origin) {
        (Some(a), Some(b)) => Some(CpuUse::between(a, b, rps)),
        _ => None,
    };
    let server = CpuUse::between(&start.server, &end.server, rps);
    let loadgen = CpuUse::between(&start.client, &end.client, rps);
    let measured = server.cores + loadgen.cores + origin.map_or(0.0, |o| o.cores);
    let machine = start
        .machine
        .zip(end.machine)
        .map(|(a, b)| MachineUse::between(a, b, server.window_s, measured));
    Ok(Run {
        server,
        loadgen,
        origin,
        origin_handshakes: end
            .origin_handshakes
            .zip(start.origin_handshakes)
            .map(|(e, s)| e.saturating_sub(s)),
        machine,
        report: windowed.report,
    })
}

/// Both sides of a comparison, round by round.
#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct Rounds {
    /// The baseline's runs.
    pub bare: Vec<Run>,
    /// Sigil's runs.
    pub sigil: Vec<Run>,
}

/// Primes a freshly started server before its first measured run: the
/// same load for `opts.warmup`, every request it started completed (a
/// measured run's own warm-up ends while its requests are in flight), so
/// a server's first connections — in S1 the pool's handshakes to the
/// origin — are done before any window opens, however slowly a cold
/// process on a busy machine makes them.
async fn prime(opts: &Options, label: &str, base: &LoadConfig, side: &Side) -> Result<()> {
    let mut cfg = base.clone();
    cfg.connect = Some(side.addr);
    cfg.label = format!("{label} (priming)");
    cfg.warmup = Duration::ZERO;
    cfg.stop = Stop::Duration(opts.warmup);
    let r = tokio::time::timeout(
        cfg.request_timeout * 2 + opts.warmup * 4,
        loadgen::run(&cfg),
    )
    .await
    .with_context(|| format!("{} did not finish in time", cfg.label))??;
    println!(
        "{}: {} requests, {} errors in {:.2} s",
        cfg.label, r.requests, r.errors, r.elapsed_s
    );
    Ok(())
}

/// Runs `base` against the baseline and Sigil, alternating which goes
/// first, `opts.rounds` times; prints every run and each round's ratios.
pub(super) async fn interleaved(
    opts: &Options,
    name: &str,
    base: &LoadConfig,
    bare: &Side,
    sigil: &Side,
) -> Result<Rounds> {
    let mut rounds = Rounds::default();
    for (label, side) in [("bare", bare), ("sigil", sigil)] {
        prime(opts, &format!("{label} {name}"), base, side).await?;
    }
    println!("{}", LoadReport::table_header());
    for round in 0..opts.rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for is_sigil in order {
            let side = if is_sigil { sigil } else { bare };
            let mut cfg = base.clone();
            cfg.connect = Some(side.addr);
            cfg.label = format!(
                "{} {name} r{}",
                if is_sigil { "sigil" } else { "bare" },
                round + 1
            );
            let run = measure(&cfg, &side.watch).await?;
            println!("{}", run.line());
            if is_sigil {
                rounds.sigil.push(run);
            } else {
                rounds.bare.push(run);
            }
        }
        let (b, s) = (&rounds.bare[round], &rounds.sigil[round]);
        println!(
            "{name} r{}: sigil/bare req/s x{:.3}, server CPU/resp x{:.3}, p99.9 x{:.3}",
            round + 1,
            s.report.requests_per_sec / b.report.requests_per_sec,
            s.server.us_per_response / b.server.us_per_response,
            s.report.latency_us.p999 as f64 / b.report.latency_us.p999 as f64,
        );
    }
    Ok(rounds)
}
