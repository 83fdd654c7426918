//! The next deadline of a connection, from its [`Activity`], and a future
//! that completes when it passes, saying what to do.
//!
//! - No request has started yet: the first request head must arrive within
//!   `header_read_timeout` of the connection's start (after the TLS handshake).
//! - Idle between HTTP/1 requests: `keepalive_idle` from when it became idle,
//!   until the first byte of the next head; from that byte the head must be
//!   complete within `header_read_timeout`.
//! - Idle HTTP/2 (no stream in flight): `keepalive_idle`; frames such as
//!   PINGs do not count as requests.
//! - Output the client does not take — the socket refuses it, or a response
//!   chunk is not asked for — for `write_timeout`: the connection is dropped.
//!
//! A connection is not idle while a request is in flight or its output is
//! still being written.

use super::activity::{Activity, Snapshot};
use crate::config::ConnectionSettings;
use crate::telemetry::metrics::CloseReason;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Sleep;

/// How long a connection that is closing gracefully (idle timeout, a
/// request body timeout, shutdown) may stay idle before it is dropped.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What to do when a deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Drop the connection now, counting it under this reason.
    Drop(CloseReason),
    /// Idle for `keepalive_idle`: close it gracefully (HTTP/2 GOAWAY).
    Idle,
    /// A request asked for the connection to close after its response.
    CloseRequested,
    /// Closing gracefully took longer than [`CLOSE_GRACE`] while idle.
    GraceOver,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// The earliest deadline for `s`, and what it means; `None` when nothing
/// can expire until the activity changes. `closing_since` is when a
/// graceful close started.
pub(crate) fn next_deadline(
    s: &Snapshot,
    t: &ConnectionSettings,
    closing_since: Option<u64>,
) -> Option<(u64, Verdict)> {
    let write = ms(t.write_timeout);
    let dropped = Verdict::Drop(CloseReason::write_timeout);
    let blocked = s.write_blocked.map(|b| (b.saturating_add(write), dropped));
    let waiting = s.oldest_waiting.map(|w| (w.saturating_add(write), dropped));
    let idle = (s.in_flight == 0 && s.write_blocked.is_none() && !s.unflushed)
        .then(|| idle_deadline(s, t, closing_since));
    [blocked, waiting, idle]
        .into_iter()
        .flatten()
        .min_by_key(|(at, _)| *at)
}

/// The deadline of a connection with no request in flight and no output pending.
fn idle_deadline(
    s: &Snapshot,
    t: &ConnectionSettings,
    closing_since: Option<u64>,
) -> (u64, Verdict) {
    let header = ms(t.header_read_timeout);
    let header_timeout = Verdict::Drop(CloseReason::header_timeout);
    match (closing_since, s.head_started) {
        (Some(closing), _) => (
            s.idle_since.max(closing).saturating_add(ms(CLOSE_GRACE)),
            Verdict::GraceOver,
        ),
        _ if !s.served => (header, header_timeout),
        (None, Some(head)) if !s.h2 => (head.saturating_add(header), header_timeout),
        _ => (
            s.idle_since.saturating_add(ms(t.keepalive_idle)),
            Verdict::Idle,
        ),
    }
}

/// The shortest time from any event on a connection to a deadline it sets:
/// no event after a moment `t` can set a deadline before `t` plus this.
fn shortest_timeout(t: &ConnectionSettings, closing: bool) -> u64 {
    let mut shortest = ms(t.header_read_timeout)
        .min(ms(t.write_timeout))
        .min(ms(t.keepalive_idle));
    if closing {
        shortest = shortest.min(ms(CLOSE_GRACE));
    }
    shortest.max(1)
}

/// Watches one connection's deadlines.
///
/// It does not need to be told of every change: after looking at the
/// activity at time `t` it sleeps until the earliest deadline it saw, or
/// `t` plus the shortest timeout, whichever is sooner, since nothing that
/// happens after `t` can set a deadline earlier than that. So a request
/// costs the watchdog no wake-up and no timer change; only a close request
/// wakes it early.
pub(crate) struct Watchdog {
    activity: Arc<Activity>,
    settings: ConnectionSettings,
    closing_since: Option<u64>,
    sleep: Pin<Box<Sleep>>,
    /// When `sleep` is set to end (ms since the connection started).
    armed: Option<u64>,
}

impl Watchdog {
    /// A watchdog for the connection recorded in `activity`.
    pub fn new(activity: Arc<Activity>, settings: ConnectionSettings) -> Watchdog {
        let sleep = Box::pin(tokio::time::sleep_until(activity.instant(0)));
        Watchdog {
            activity,
            settings,
            closing_since: None,
            sleep,
            armed: None,
        }
    }

    /// The connection started closing gracefully: from now on an idle
    /// connection gets [`CLOSE_GRACE`], then [`Verdict::GraceOver`].
    pub fn closing(&mut self) {
        self.closing_since.get_or_insert(self.activity.now_ms());
    }

    /// Completes when a deadline passes (or a close is requested). Cancel
    /// safe: dropping it loses nothing.
    pub async fn expired(&mut self) -> Verdict {
        loop {
            let changed = self.activity.close_wanted();
            if self.closing_since.is_none() && self.activity.close_requested() {
                return Verdict::CloseRequested;
            }
            let now = self.activity.now_ms();
            let snapshot = self.activity.snapshot();
            let next = next_deadline(&snapshot, &self.settings, self.closing_since);
            if let Some((at, verdict)) = next
                && at <= now
            {
                return verdict;
            }
            let shortest = shortest_timeout(&self.settings, self.closing_since.is_some());
            let look_again = now.saturating_add(shortest);
            let wake_at = next.map_or(look_again, |(at, _)| at.min(look_again));
            if self.armed != Some(wake_at) {
                self.sleep.as_mut().reset(self.activity.instant(wake_at));
                self.armed = Some(wake_at);
            }
            tokio::select! {
                _ = self.sleep.as_mut() => {}
                _ = changed => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerSection;

    fn settings() -> ConnectionSettings {
        let server = ServerSection {
            header_read_timeout_ms: Some(1000),
            write_timeout_ms: Some(2000),
            keepalive_idle_secs: Some(5),
            ..Default::default()
        };
        ConnectionSettings::resolve(&server, 1024)
    }

    fn next(s: Snapshot) -> Option<(u64, Verdict)> {
        next_deadline(&s, &settings(), None)
    }

    #[test]
    fn the_first_head_is_timed_from_the_start_and_later_ones_from_their_first_byte() {
        let header = Verdict::Drop(CloseReason::header_timeout);
        assert_eq!(next(Snapshot::default()), Some((1000, header)));
        let idle = Snapshot {
            served: true,
            idle_since: 300,
            ..Default::default()
        };
        assert_eq!(next(idle), Some((5300, Verdict::Idle)));
        let head = Snapshot {
            head_started: Some(4000),
            ..idle
        };
        assert_eq!(next(head), Some((5000, header)));
        let h2 = Snapshot { h2: true, ..head };
        assert_eq!(
            next(h2),
            Some((5300, Verdict::Idle)),
            "h2 frames are not heads"
        );
    }

    #[test]
    fn output_in_progress_is_not_idle_and_stalled_output_is_dropped() {
        let write = Verdict::Drop(CloseReason::write_timeout);
        let busy = Snapshot {
            served: true,
            in_flight: 1,
            ..Default::default()
        };
        assert_eq!(
            next(busy),
            None,
            "a request in flight has no connection deadline"
        );
        let stalled = Snapshot {
            oldest_waiting: Some(100),
            ..busy
        };
        assert_eq!(next(stalled), Some((2100, write)));
        let tail = Snapshot {
            in_flight: 0,
            unflushed: true,
            ..busy
        };
        assert_eq!(next(tail), None, "the last response is still being written");
        let blocked = Snapshot {
            write_blocked: Some(50),
            ..tail
        };
        assert_eq!(next(blocked), Some((2050, write)));
    }

    #[test]
    fn no_event_can_set_a_deadline_before_the_shortest_timeout() {
        assert_eq!(shortest_timeout(&settings(), false), 1000);
        assert_eq!(shortest_timeout(&settings(), true), 1000);
        let quick = ConnectionSettings {
            write_timeout: Duration::from_millis(20),
            ..settings()
        };
        assert_eq!(shortest_timeout(&quick, false), 20);
        let slow = ConnectionSettings {
            header_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            keepalive_idle: Duration::from_secs(30),
            ..settings()
        };
        assert_eq!(shortest_timeout(&slow, true), 1000, "the close grace");
    }

    #[test]
    fn a_closing_connection_gets_a_short_grace_once_idle() {
        let idle = Snapshot {
            served: true,
            idle_since: 100,
            ..Default::default()
        };
        let at = next_deadline(&idle, &settings(), Some(700));
        assert_eq!(at, Some((1700, Verdict::GraceOver)));
    }
}
