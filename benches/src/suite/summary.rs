//! A load scenario's summary: each side's medians over the rounds (req/s,
//! server CPU per response, latency, the load generator's CPU), their
//! ratios, the table lines that show them and the rows that say whether
//! the targets hold.

use serde::Serialize;

use super::measure::{Rounds, Run};
use super::{Row, median};

/// One side's medians over the rounds of a load scenario.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SideFigures {
    /// Responses per second (in H2 also handshakes per second: one
    /// request per connection).
    pub rate: f64,
    /// The server process's CPU (utime + stime) per response, µs.
    pub server_cpu_us: f64,
    /// Latency percentiles, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// The load generator's (the suite process's) CPU per response, µs.
    pub loadgen_cpu_us: f64,
    /// The server's context switches per response.
    pub server_cs: f64,
    /// The server's live threads at the end of the window.
    pub server_threads: f64,
    /// The origin process's CPU per response, µs (S1 only).
    pub origin_cpu_us: Option<f64>,
    /// CPUs the rest of the machine kept busy during the window (neither
    /// the server, the load generator nor the origin): competing work.
    pub other_cores: f64,
}

impl SideFigures {
    /// Medians of `runs`, figure by figure.
    fn of(runs: &[Run]) -> SideFigures {
        let m = |f: &dyn Fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        let origin: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.origin.map(|o| o.us_per_response))
            .collect();
        SideFigures {
            rate: m(&|r| r.report.requests_per_sec),
            server_cpu_us: m(&|r| r.server.us_per_response),
            p50_us: m(&|r| r.report.latency_us.p50 as f64),
            p99_us: m(&|r| r.report.latency_us.p99 as f64),
            p999_us: m(&|r| r.report.latency_us.p999 as f64),
            loadgen_cpu_us: m(&|r| r.loadgen.us_per_response),
            server_cs: m(&|r| r.server.cs_per_response),
            server_threads: m(&|r| r.server.threads as f64),
            origin_cpu_us: (!origin.is_empty()).then(|| median(&origin)),
            other_cores: m(&|r| r.machine.map_or(f64::NAN, |x| x.other_cores)),
        }
    }

    /// `s / b`, figure by figure.
    fn ratio(s: &SideFigures, b: &SideFigures) -> SideFigures {
        SideFigures {
            rate: s.rate / b.rate,
            server_cpu_us: s.server_cpu_us / b.server_cpu_us,
            p50_us: s.p50_us / b.p50_us,
            p99_us: s.p99_us / b.p99_us,
            p999_us: s.p999_us / b.p999_us,
            loadgen_cpu_us: s.loadgen_cpu_us / b.loadgen_cpu_us,
            server_cs: s.server_cs / b.server_cs,
            server_threads: s.server_threads / b.server_threads,
            origin_cpu_us: s.origin_cpu_us.zip(b.origin_cpu_us).map(|(s, b)| s / b),
            other_cores: s.other_cores / b.other_cores,
        }
    }
}

/// A load scenario in the summary: both sides and the ratios of their
/// medians, with the spread of the per-round ratios.
#[derive(Clone, Debug, Serialize)]
pub struct LoadLine {
    /// Scenario id (`H1`, `H2-1`, `S1`, ...).
    pub id: String,
    /// What the load is.
    pub measure: String,
    /// Unit of `rate` (`req/s`, or `hs/s` for the new-connection runs).
    pub unit: String,
    /// The baseline's medians.
    pub baseline: SideFigures,
    /// Sigil's medians.
    pub sigil: SideFigures,
    /// Sigil's medians over the baseline's.
    pub ratio: SideFigures,
    /// Per round: Sigil's rate over the baseline's.
    pub rate_ratio_rounds: Vec<f64>,
    /// Per round: Sigil's server CPU per response over the baseline's.
    pub cpu_ratio_rounds: Vec<f64>,
    /// Failed requests over every run of both sides.
    pub errors: u64,
}

/// The targets for one load scenario.
pub(super) struct Targets {
    /// Sigil's rate over the baseline's, at least.
    pub min_rate_ratio: f64,
    /// Sigil's server CPU per response over the baseline's, at most.
    pub max_cpu_ratio: Option<f64>,
    /// Sigil's p99.9 latency under this load, at most (µs).
    pub max_p999_us: Option<f64>,
}

impl LoadLine {
    /// The summary of `rounds`.
    pub(super) fn new(id: &str, measure: &str, unit: &str, rounds: &Rounds) -> LoadLine {
        let (baseline, sigil) = (
            SideFigures::of(&rounds.bare),
            SideFigures::of(&rounds.sigil),
        );
        let per_round = |f: fn(&Run) -> f64| -> Vec<f64> {
            rounds
                .bare
                .iter()
                .zip(&rounds.sigil)
                .map(|(b, s)| f(s) / f(b))
                .collect()
        };
        LoadLine {
            id: id.into(),
            measure: measure.into(),
            unit: unit.into(),
            ratio: SideFigures::ratio(&sigil, &baseline),
            baseline,
            sigil,
            rate_ratio_rounds: per_round(|r| r.report.requests_per_sec),
            cpu_ratio_rounds: per_round(|r| r.server.us_per_response),
            errors: rounds
                .bare
                .iter()
                .chain(&rounds.sigil)
                .map(|r| r.report.errors)
                .sum(),
        }
    }

    /// The summary rows: throughput, server CPU per response, and p99.9
    /// when it has a target; each says whether its target holds.
    pub(super) fn rows(&self, t: &Targets) -> Vec<Row> {
        let mut rate_note = format!("rounds {}", spread(&self.rate_ratio_rounds));
        if self.errors > 0 {
            rate_note.push_str(&format!("; {} ERRORS", self.errors));
        }
        let rate = Row {
            target: format!(">= {:.2}x", t.min_rate_ratio),
            pass: Some(self.ratio.rate >= t.min_rate_ratio && self.errors == 0),
            ..self.row(&self.measure, &self.unit, |f| f.rate, rate_note)
        };
        let mut cpu = self.row(
            "server CPU per response",
            "us",
            |f| f.server_cpu_us,
            self.cpu_note(),
        );
        if let Some(max) = t.max_cpu_ratio {
            cpu.target = format!("<= {max:.2}x");
            cpu.pass = Some(self.ratio.server_cpu_us <= max);
        }
        let mut rows = vec![rate, cpu];
        if let Some(max) = t.max_p999_us {
            let note = format!(
                "p50 {:.0}/{:.0}, p99 {:.0}/{:.0} us (bare/sigil)",
                self.baseline.p50_us, self.sigil.p50_us, self.baseline.p99_us, self.sigil.p99_us
            );
            rows.push(Row {
                target: format!("<= {max:.0} us"),
                pass: Some(self.sigil.p999_us <= max),
                ..self.row("p99.9 latency under this load", "us", |f| f.p999_us, note)
            });
        }
        rows
    }

    /// A row of one figure: baseline, Sigil, ratio, no target.
    fn row(&self, measure: &str, unit: &str, f: fn(&SideFigures) -> f64, note: String) -> Row {
        Row {
            baseline: Some(f(&self.baseline)),
            ratio: Some(f(&self.ratio)),
            ..Row::info(&self.id, measure, unit, f(&self.sigil), note)
        }
    }

    /// The CPU row's note: round spread, the load generator's CPU, the origin's.
    fn cpu_note(&self) -> String {
        let mut note = format!(
            "rounds {}; loadgen {:.1}/{:.1} us/req (bare/sigil)",
            spread(&self.cpu_ratio_rounds),
            self.baseline.loadgen_cpu_us,
            self.sigil.loadgen_cpu_us
        );
        if let (Some(b), Some(s)) = (self.baseline.origin_cpu_us, self.sigil.origin_cpu_us) {
            note.push_str(&format!("; origin {b:.1}/{s:.1} us/resp"));
        }
        note
    }
}

/// `lo-hi x` of per-round ratios.
fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.2}-{hi:.2}x")
}

/// Column headers of [`load_lines`].
pub fn load_header() -> String {
    format!(
        "{:<7} {:<6} {:>9} {:>14} {:>8} {:>8} {:>9} {:>14} {:>10} {:>7} {:>7}",
        "id",
        "side",
        "rate/s",
        "srv CPU us/rsp",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "loadgen us/req",
        "srv cs/rsp",
        "srv thr",
        "others"
    )
}

/// A load scenario's three table lines: baseline, Sigil, ratio. `others`
/// is the CPUs the rest of the machine used meanwhile (no ratio).
pub fn load_lines(l: &LoadLine) -> [String; 3] {
    let line = |side: &str, f: &SideFigures, ratio: bool| {
        let v = |v: f64, decimals: usize| {
            if ratio {
                format!("{v:.2}x")
            } else {
                format!("{v:.decimals$}")
            }
        };
        let (threads, others) = if ratio {
            ("-".to_string(), "-".to_string())
        } else {
            (v(f.server_threads, 0), v(f.other_cores, 2))
        };
        format!(
            "{:<7} {:<6} {:>9} {:>14} {:>8} {:>8} {:>9} {:>14} {:>10} {:>7} {:>7}",
            l.id,
            side,
            v(f.rate, 0),
            v(f.server_cpu_us, 1),
            v(f.p50_us, 0),
            v(f.p99_us, 0),
            v(f.p999_us, 0),
            v(f.loadgen_cpu_us, 1),
            v(f.server_cs, 2),
            threads,
            others,
        )
    };
    [
        line("bare", &l.baseline, false),
        line("sigil", &l.sigil, false),
        line("ratio", &l.ratio, true),
    ]
}
