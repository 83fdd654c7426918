//! Process-wide metrics in the Prometheus text format (version 0.0.4).
//!
//! A small registry rather than a dependency: counters, gauges and
//! histograms keyed by label sets, rendered on the admin listener.

use dashmap::DashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

enum Series {
    Counter(AtomicU64),
    Gauge(AtomicU64),
    Histogram {
        buckets: [AtomicU64; LATENCY_BUCKETS.len()],
        sum_nanos: AtomicU64,
        count: AtomicU64,
    },
}

struct Family {
    help: &'static str,
    kind: &'static str,
    series: DashMap<String, Series>,
}

/// The registry.
#[derive(Default)]
pub struct Metrics {
    families: DashMap<&'static str, Family>,
}

/// The process-wide registry.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

fn label_string(labels: &[(&str, &str)]) -> String {
    let mut s = String::new();
    write_labels(&mut s, labels);
    s
}

fn write_labels(s: &mut String, labels: &[(&str, &str)]) {
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
}

impl Metrics {
    fn with_series(
        &self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: &[(&str, &str)],
        make: fn() -> Series,
        f: impl FnOnce(&Series),
    ) {
        let family = self.families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            series: DashMap::new(),
        });
        // The common case (an existing series) allocates nothing: the label
        // key is rendered into a reused per-thread buffer.
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        let found = KEY.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            write_labels(&mut buf, labels);
            match family.series.get(buf.as_str()) {
                Some(series) => {
                    f(&series);
                    None
                }
                None => Some((buf.clone(), f)),
            }
        });
        if let Some((key, f)) = found {
            let series = family.series.entry(key).or_insert_with(make);
            f(&series);
        }
    }

    /// Add 1 to counter `name{labels}`.
    pub fn inc(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) {
        self.with_series(
            name,
            help,
            "counter",
            labels,
            || Series::Counter(AtomicU64::new(0)),
            |s| {
                if let Series::Counter(c) = s {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            },
        );
    }

    /// Set gauge `name{labels}` to `value`.
    pub fn set(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], value: f64) {
        self.with_series(
            name,
            help,
            "gauge",
            labels,
            || Series::Gauge(AtomicU64::new(0)),
            |s| {
                if let Series::Gauge(g) = s {
                    g.store(value.to_bits(), Ordering::Relaxed);
                }
            },
        );
    }

    /// Remove every series of gauge `name` (before re-setting current values).
    pub fn clear(&self, name: &'static str) {
        if let Some(family) = self.families.get(name) {
            family.series.clear();
        }
    }

    /// Record `seconds` in histogram `name{labels}`.
    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        seconds: f64,
    ) {
        self.with_series(
            name,
            help,
            "histogram",
            labels,
            || Series::Histogram {
                buckets: Default::default(),
                sum_nanos: AtomicU64::new(0),
                count: AtomicU64::new(0),
            },
            |s| {
                if let Series::Histogram {
                    buckets,
                    sum_nanos,
                    count,
                } = s
                {
                    for (bound, bucket) in LATENCY_BUCKETS.iter().zip(buckets) {
                        if seconds <= *bound {
                            bucket.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sum_nanos.fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            },
        );
    }

    /// The current value of counter `name{labels}` (0 when absent).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let key = label_string(labels);
        self.families
            .get(name)
            .and_then(|f| {
                f.series.get(&key).map(|s| match &*s {
                    Series::Counter(c) => c.load(Ordering::Relaxed),
                    _ => 0,
                })
            })
            .unwrap_or(0)
    }

    /// Render every family in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut names: Vec<&'static str> = self.families.iter().map(|f| *f.key()).collect();
        names.sort_unstable();
        for name in names {
            let Some(family) = self.families.get(name) else {
                continue;
            };
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
            let mut series: Vec<_> = family.series.iter().collect();
            series.sort_by(|a, b| a.key().cmp(b.key()));
            for s in series {
                let labels = s.key();
                let braces = |extra: &str| {
                    let joined = match (labels.is_empty(), extra.is_empty()) {
                        (true, true) => String::new(),
                        (true, false) => extra.to_string(),
                        (false, true) => labels.clone(),
                        (false, false) => format!("{labels},{extra}"),
                    };
                    if joined.is_empty() {
                        String::new()
                    } else {
                        format!("{{{joined}}}")
                    }
                };
                match s.value() {
                    Series::Counter(c) => {
                        let _ = writeln!(out, "{name}{} {}", braces(""), c.load(Ordering::Relaxed));
                    }
                    Series::Gauge(g) => {
                        let _ = writeln!(
                            out,
                            "{name}{} {}",
                            braces(""),
                            f64::from_bits(g.load(Ordering::Relaxed))
                        );
                    }
                    Series::Histogram {
                        buckets,
                        sum_nanos,
                        count,
                    } => {
                        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(buckets) {
                            let le = format!("le=\"{bound}\"");
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {}",
                                braces(&le),
                                bucket.load(Ordering::Relaxed)
                            );
                        }
                        let n = count.load(Ordering::Relaxed);
                        let _ = writeln!(out, "{name}_bucket{} {n}", braces("le=\"+Inf\""));
                        let sum = sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                        let _ = writeln!(out, "{name}_sum{} {sum}", braces(""));
                        let _ = writeln!(out, "{name}_count{} {n}", braces(""));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.inc("t_total", "help", &[("worker", "a\"b")]);
        m.inc("t_total", "help", &[("worker", "a\"b")]);
        m.observe("t_seconds", "help", &[], 0.003);
        let text = m.render();
        assert!(text.contains("t_total{worker=\"a\\\"b\"} 2"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"0.001\"} 0"), "{text}");
        assert!(text.contains("t_seconds_count 1"), "{text}");
        assert_eq!(m.counter("t_total", &[("worker", "a\"b")]), 2);
    }
}
