//! A scenario next to its baseline measured in the same run, as ratios.

use std::fmt;

use serde::Serialize;

use crate::loadgen::LoadReport;

/// Subject (e.g. Sigil) against baseline (e.g. the bare server), same load.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Scenario name.
    pub scenario: String,
    /// Subject throughput / baseline throughput (1.0 = as fast).
    pub throughput_ratio: f64,
    /// Subject p50 / baseline p50 (1.0 = same latency).
    pub p50_ratio: f64,
    /// Subject p99 / baseline p99.
    pub p99_ratio: f64,
    /// The baseline's report.
    pub baseline: LoadReport,
    /// The subject's report.
    pub subject: LoadReport,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

impl Comparison {
    /// Computes the ratios of `subject` over `baseline`.
    pub fn new(scenario: impl Into<String>, baseline: LoadReport, subject: LoadReport) -> Self {
        Comparison {
            scenario: scenario.into(),
            throughput_ratio: ratio(subject.requests_per_sec, baseline.requests_per_sec),
            p50_ratio: ratio(
                subject.latency_us.p50 as f64,
                baseline.latency_us.p50 as f64,
            ),
            p99_ratio: ratio(
                subject.latency_us.p99 as f64,
                baseline.latency_us.p99 as f64,
            ),
            baseline,
            subject,
        }
    }

    /// The comparison as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for Comparison {
    /// Both table rows followed by a ratio line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.baseline.table_row())?;
        writeln!(f, "{}", self.subject.table_row())?;
        write!(
            f,
            "{:<28} throughput x{:.3}  p50 x{:.3}  p99 x{:.3}",
            self.scenario, self.throughput_ratio, self.p50_ratio, self.p99_ratio
        )
    }
}
