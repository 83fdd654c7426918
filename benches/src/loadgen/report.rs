//! The result of a load run.

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct LatencyUs {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl LatencyUs {
    /// Percentiles of a histogram recorded in microseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencyUs::default();
        }
        LatencyUs {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// The measured phase of a load run (warm-up excluded except where named).
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// Label from the config.
    pub label: String,
    /// Mode name (`h1`, `h2`, `new-conn`).
    pub mode: String,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Successful (2xx, body read) requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Failed requests by kind (`connect`, `tls`, `http-handshake`,
    /// `request`, `body`, `timeout`, `alpn`, `status-<code>`).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// TLS handshakes completed in the measured phase.
    pub handshakes: u64,
    /// Successful requests during warm-up.
    pub warmup_requests: u64,
    /// TLS handshakes completed during warm-up.
    pub warmup_handshakes: u64,
    /// Response body bytes read in the measured phase.
    pub body_bytes: u64,
    /// Length of the measured phase, seconds.
    pub elapsed_s: f64,
    /// `requests / elapsed_s`.
    pub requests_per_sec: f64,
    /// Latency of successful requests (connect + handshake included in
    /// new-conn mode and for a keep-alive connection's first request).
    pub latency_us: LatencyUs,
}

impl LoadReport {
    /// Column headers matching [`LoadReport::table_row`].
    pub fn table_header() -> String {
        format!(
            "{:<28} {:<8} {:>5} {:>9} {:>6} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
            "label",
            "mode",
            "conc",
            "requests",
            "errors",
            "hs",
            "req/s",
            "p50us",
            "p90us",
            "p99us",
            "p99.9us",
            "maxus",
            "secs"
        )
    }

    /// One table line.
    pub fn table_row(&self) -> String {
        format!(
            "{:<28} {:<8} {:>5} {:>9} {:>6} {:>8} {:>10.0} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7.2}",
            self.label,
            self.mode,
            self.concurrency,
            self.requests,
            self.errors,
            self.handshakes,
            self.requests_per_sec,
            self.latency_us.p50,
            self.latency_us.p90,
            self.latency_us.p99,
            self.latency_us.p999,
            self.latency_us.max,
            self.elapsed_s
        )
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.table_row())
    }
}
