//! [`LogRate`]: at most so many lines a second from one place in the code
//! that outside clients can make log (failed TLS handshakes), the rest
//! counted and reported with the next line that is written.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A per-second allowance of log lines for one call site.
#[derive(Debug)]
pub struct LogRate {
    per_second: u32,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Option<Instant>,
    logged: u32,
    left_out: u64,
}

impl LogRate {
    /// At most `per_second` lines in any one-second window.
    pub const fn new(per_second: u32) -> Self {
        LogRate {
            per_second,
            state: Mutex::new(Window {
                started: None,
                logged: 0,
                left_out: 0,
            }),
        }
    }

    /// Whether to write a line now: `Some(n)` when it may be written, `n`
    /// being the lines left out since the last one written (say so in the
    /// line); `None` when the second's allowance is spent.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if w.started
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1))
        {
            w.started = Some(now);
            w.logged = 0;
        }
        if w.logged < self.per_second {
            w.logged += 1;
            Some(std::mem::take(&mut w.left_out))
        } else {
            w.left_out += 1;
            None
        }
    }
}

/// `" (n more like it not logged)"`, or nothing when `n` is 0.
pub fn left_out(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more like it not logged in the last second)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_allowance_are_counted_and_reported_later() {
        let rate = LogRate::new(3);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(rate.admit_at(at(0)), Some(0));
        assert_eq!(rate.admit_at(at(10)), Some(0));
        assert_eq!(rate.admit_at(at(20)), Some(0));
        for ms in 30..130 {
            assert_eq!(rate.admit_at(at(ms)), None);
        }
        assert_eq!(rate.admit_at(at(999)), None);
        assert_eq!(rate.admit_at(at(1000)), Some(101), "a new second");
        assert_eq!(rate.admit_at(at(1001)), Some(0));
        assert_eq!(left_out(0), "");
        assert_eq!(
            left_out(101),
            " (101 more like it not logged in the last second)"
        );
    }
}
