//! Per-worker resource limits: defaults, manifest overrides, and the error a
//! request gets when it exceeds one.

use serde::Deserialize;
use std::time::Duration;

/// Limit overrides as written in the manifest (`[limits]` and `[workers.limits]`).
/// Every field is optional; unset fields inherit from the level above.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// CPU time one request may spend running wasm, in milliseconds.
    pub cpu_ms: Option<u64>,
    /// Linear memory one instance may grow to, in MiB.
    pub memory_mb: Option<u64>,
    /// Largest inbound request body, in bytes.
    pub max_request_body: Option<u64>,
    /// Largest response body (from the worker, and from each subrequest), in bytes.
    pub max_response_body: Option<u64>,
    /// Subrequests one inbound request may make.
    pub subrequests: Option<u32>,
    /// Wall-clock time for one request including subrequests, in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// The limits in force for one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU time one request may spend running wasm.
    pub cpu: Duration,
    /// Linear memory one instance may grow to, in bytes.
    pub memory_bytes: u64,
    /// Largest inbound request body, in bytes.
    pub max_request_body: u64,
    /// Largest response body, in bytes.
    pub max_response_body: u64,
    /// Subrequests one inbound request may make.
    pub subrequests: u32,
    /// Wall-clock time for one request.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu: Duration::from_millis(50),
            memory_bytes: 64 << 20,
            max_request_body: 1 << 20,
            max_response_body: 8 << 20,
            subrequests: 50,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The most memory any worker may be given (the pooling allocator reserves
/// address space for this much per instance slot).
pub const MAX_MEMORY_MB: u64 = 1024;

impl Limits {
    /// These limits with `o`'s set fields applied on top.
    pub fn with(self, o: &LimitOverrides) -> Limits {
        Limits {
            cpu: o.cpu_ms.map(Duration::from_millis).unwrap_or(self.cpu),
            memory_bytes: o.memory_mb.map(|m| m << 20).unwrap_or(self.memory_bytes),
            max_request_body: o.max_request_body.unwrap_or(self.max_request_body),
            max_response_body: o.max_response_body.unwrap_or(self.max_response_body),
            subrequests: o.subrequests.unwrap_or(self.subrequests),
            timeout: o
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(self.timeout),
        }
    }
}

/// Check overrides for values that cannot work; returns one message per problem.
pub fn check_overrides(o: &LimitOverrides) -> Vec<String> {
    let mut problems = Vec::new();
    if o.cpu_ms == Some(0) {
        problems.push("cpu_ms must be at least 1".to_string());
    }
    if let Some(m) = o.memory_mb
        && (m == 0 || m > MAX_MEMORY_MB)
    {
        problems.push(format!(
            "memory_mb must be between 1 and {MAX_MEMORY_MB}, not {m}"
        ));
    }
    if o.timeout_ms == Some(0) {
        problems.push("timeout_ms must be at least 1".to_string());
    }
    problems
}

/// Which limit a request exceeded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The worker ran wasm for longer than its CPU budget.
    #[error("exceeded its CPU time limit of {limit_ms} ms (limits.cpu_ms)")]
    Cpu {
        /// The limit in milliseconds.
        limit_ms: u64,
    },
    /// The worker tried to grow its memory beyond its limit.
    #[error("exceeded its memory limit of {limit_mb} MiB (limits.memory_mb)")]
    Memory {
        /// The limit in MiB.
        limit_mb: u64,
    },
    /// The request took longer than the wall-clock limit.
    #[error("exceeded its wall-clock limit of {limit_ms} ms (limits.timeout_ms)")]
    Timeout {
        /// The limit in milliseconds.
        limit_ms: u64,
    },
    /// The worker's response body was too large.
    #[error(
        "returned a body of {size} bytes, over its limit of {limit} bytes (limits.max_response_body)"
    )]
    ResponseBody {
        /// Size returned.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_on_top() {
        let l = Limits::default().with(&LimitOverrides {
            cpu_ms: Some(10),
            ..Default::default()
        });
        assert_eq!(l.cpu, Duration::from_millis(10));
        assert_eq!(l.memory_bytes, Limits::default().memory_bytes);
    }

    #[test]
    fn impossible_values_are_reported() {
        let o = LimitOverrides {
            memory_mb: Some(0),
            cpu_ms: Some(0),
            ..Default::default()
        };
        assert_eq!(check_overrides(&o).len(), 2);
    }
}
