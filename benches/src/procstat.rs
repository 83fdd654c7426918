//! A process's CPU time and scheduling counters from `/proc`, and what one
//! process used over a measured window, per response.
//!
//! * CPU: `utime + stime` of the whole process (every thread, exited ones
//!   included) from `/proc/<pid>/stat`, in clock ticks (`getconf CLK_TCK`,
//!   100 on Linux: a resolution of 10 ms per reading, so a window should
//!   hold at least a few hundred milliseconds of CPU).
//! * Threads: `Threads:` of `/proc/<pid>/status`.
//! * Context switches: `voluntary_ctxt_switches` and
//!   `nonvoluntary_ctxt_switches` summed over `/proc/<pid>/task/*/status`
//!   (the process-level file counts only the main thread); threads that
//!   exited during a window are missed.

use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

/// One process's counters at one instant.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    /// When the counters were read.
    pub at: Instant,
    /// `utime + stime`, seconds.
    pub cpu_s: f64,
    /// Live threads.
    pub threads: u64,
    /// Voluntary context switches of the live threads.
    pub voluntary_cs: u64,
    /// Involuntary context switches of the live threads.
    pub involuntary_cs: u64,
}

/// Reads the counters of process `pid` (`std::process::id()` for this one).
pub fn sample(pid: u32) -> Result<ProcSample> {
    let at = Instant::now();
    let stat_path = format!("/proc/{pid}/stat");
    let stat =
        std::fs::read_to_string(&stat_path).with_context(|| format!("reading {stat_path}"))?;
    let ticks = cpu_ticks(&stat).with_context(|| format!("parsing {stat_path}"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let (voluntary_cs, involuntary_cs) = context_switches(pid);
    Ok(ProcSample {
        at,
        cpu_s: ticks as f64 / clock_ticks_per_sec(),
        threads: status_field(&status, "Threads:").unwrap_or(0),
        voluntary_cs,
        involuntary_cs,
    })
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line, in
/// clock ticks. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted after its last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is index 0
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A numeric field (`Threads:`, `voluntary_ctxt_switches:`) of a
/// `/proc/<pid>/status` text.
pub fn status_field(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Voluntary and involuntary context switches summed over the live threads.
fn context_switches(pid: u32) -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let (mut voluntary, mut involuntary) = (0, 0);
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        voluntary += status_field(&text, "voluntary_ctxt_switches:").unwrap_or(0);
        involuntary += status_field(&text, "nonvoluntary_ctxt_switches:").unwrap_or(0);
    }
    (voluntary, involuntary)
}

/// `CLK_TCK` (the unit of `utime` / `stime`), from `getconf` once; 100,
/// the value on every mainstream Linux architecture, if that fails.
pub fn clock_ticks_per_sec() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// What one process used over a window, normalised per response.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CpuUse {
    /// CPU seconds (`utime + stime`) over the window.
    pub cpu_s: f64,
    /// Length of the window between the two readings, seconds.
    pub window_s: f64,
    /// Share of one CPU used over the window (1.0 = one core busy).
    pub cores: f64,
    /// CPU microseconds per response.
    pub us_per_response: f64,
    /// Context switches (voluntary + involuntary) per response.
    pub cs_per_response: f64,
    /// Live threads at the end of the window.
    pub threads: u64,
}

impl CpuUse {
    /// The use between readings `a` and `b` of one process, while the load
    /// generator counted `responses_per_sec`. Both the CPU and the
    /// responses are taken as rates, so a reading a little late or early
    /// relative to the load generator's window does not bias the result.
    pub fn between(a: &ProcSample, b: &ProcSample, responses_per_sec: f64) -> CpuUse {
        let window_s = b.at.saturating_duration_since(a.at).as_secs_f64();
        let cpu_s = (b.cpu_s - a.cpu_s).max(0.0);
        let cs = (b.voluntary_cs + b.involuntary_cs)
            .saturating_sub(a.voluntary_cs + a.involuntary_cs) as f64;
        let per_response = |total: f64| {
            if window_s > 0.0 && responses_per_sec > 0.0 {
                total / window_s / responses_per_sec
            } else {
                f64::NAN
            }
        };
        CpuUse {
            cpu_s,
            window_s,
            cores: if window_s > 0.0 {
                cpu_s / window_s
            } else {
                f64::NAN
            },
            us_per_response: per_response(cpu_s) * 1e6,
            cs_per_response: per_response(cs),
            threads: b.threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (tokio (rt) x) S 1 2 3 0 -1 4194304 10 0 0 0 250 75 0 0 20 0 7 0 5 6 7";
        assert_eq!(cpu_ticks(line), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let a = sample(std::process::id()).expect("own /proc entry");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = sample(std::process::id()).expect("own /proc entry");
        assert!(b.threads >= 1);
        assert!(b.cpu_s >= a.cpu_s);
        let u = CpuUse::between(&a, &b, 1000.0);
        assert!(u.window_s > 0.0 && u.us_per_response >= 0.0);
    }
}
