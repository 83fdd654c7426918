//! Accepting connections without spinning. When `accept` fails — EMFILE
//! when the process is out of file descriptors, ENFILE, ENOBUFS — the
//! connection stays in the kernel's backlog and the next call would fail at
//! once, so the loop sleeps with exponential backoff (10 ms doubling to 1 s)
//! instead. Every error is counted in `sigil_accept_errors_total`; the log
//! gets one line per 10 s with the number of errors since the last one.

use crate::telemetry::metrics::{AcceptErrorKind, AcceptErrorLabels, Listener, metrics};
use rustix::io::Errno;
use std::io;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// The first pause after a failed `accept`.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause between failed `accept`s.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval about failing `accept`s.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What kind of error `accept` returned.
pub fn classify(e: &io::Error) -> AcceptErrorKind {
    match Errno::from_io_error(e) {
        Some(Errno::MFILE) => AcceptErrorKind::process_descriptor_limit,
        Some(Errno::NFILE) => AcceptErrorKind::system_descriptor_limit,
        Some(Errno::NOBUFS | Errno::NOMEM) => AcceptErrorKind::out_of_memory,
        _ => match e.kind() {
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset => {
                AcceptErrorKind::connection_aborted
            }
            _ => AcceptErrorKind::other,
        },
    }
}

/// Exponential backoff between failed `accept`s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// How long to pause after an error of `kind`: nothing when only that
    /// one client gave up, else the next step of the backoff.
    pub fn after(&mut self, kind: AcceptErrorKind) -> Option<Duration> {
        if kind == AcceptErrorKind::connection_aborted {
            return None;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        Some(pause)
    }

    /// A connection was accepted: start again from [`BACKOFF_MIN`].
    pub fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

/// Logging failed `accept`s at most once per [`LOG_INTERVAL`], and the
/// recovery after a report once: a listener that flaps at the descriptor
/// limit (fail, accept, fail, ...) writes two lines per interval, not one per
/// flap.
#[derive(Debug, Default)]
struct ErrorLog {
    last: Option<Instant>,
    unlogged: u64,
    recovery_logged: bool,
}

impl ErrorLog {
    /// Counts a failure; logs it when the interval allows. True if it logged.
    fn failed(&mut self, listener: Listener, e: &io::Error, kind: AcceptErrorKind) -> bool {
        self.unlogged += 1;
        if self.last.is_some_and(|t| t.elapsed() < LOG_INTERVAL) {
            return false;
        }
        let hint = match kind {
            AcceptErrorKind::process_descriptor_limit
            | AcceptErrorKind::system_descriptor_limit => {
                " (out of file descriptors: raise the limit, e.g. LimitNOFILE= or ulimit -n, or lower server.max_connections)"
            }
            _ => "",
        };
        tracing::warn!(
            ?listener,
            errors = self.unlogged,
            "accept failed {} time(s) since the last report: {e}{hint}; backing off",
            self.unlogged
        );
        self.unlogged = 0;
        self.last = Some(Instant::now());
        self.recovery_logged = false;
        true
    }

    /// A connection was accepted; logs the first recovery after a report.
    /// True if it logged.
    fn accepted(&mut self, listener: Listener) -> bool {
        if self.last.is_none() || self.recovery_logged {
            return false;
        }
        tracing::info!(
            ?listener,
            "accepting again after {} more failed accept(s)",
            self.unlogged
        );
        self.unlogged = 0;
        self.recovery_logged = true;
        true
    }
}

/// A listener whose `accept` backs off on errors instead of spinning.
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    label: Listener,
    backoff: Backoff,
    log: ErrorLog,
}

impl Acceptor {
    /// Accept from `listener`, labelled `label` in metrics and logs.
    pub fn new(listener: TcpListener, label: Listener) -> Acceptor {
        Acceptor {
            listener,
            label,
            backoff: Backoff::default(),
            log: ErrorLog::default(),
        }
    }

    /// The next connection; errors are counted, logged and waited out.
    /// Cancel safe.
    pub async fn accept(&mut self) -> TcpStream {
        loop {
            let e = match self.listener.accept().await {
                Ok((stream, _peer)) => {
                    self.backoff.reset();
                    self.log.accepted(self.label);
                    return stream;
                }
                Err(e) => e,
            };
            let kind = classify(&e);
            metrics()
                .connections
                .accept_errors
                .get_or_create(&AcceptErrorLabels {
                    listener: self.label,
                    kind,
                })
                .inc();
            self.log.failed(self.label, &e, kind);
            if let Some(pause) = self.backoff.after(kind) {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_descriptor_exhaustion() {
        let emfile = io::Error::from_raw_os_error(Errno::MFILE.raw_os_error());
        assert_eq!(classify(&emfile), AcceptErrorKind::process_descriptor_limit);
        let enfile = io::Error::from_raw_os_error(Errno::NFILE.raw_os_error());
        assert_eq!(classify(&enfile), AcceptErrorKind::system_descriptor_limit);
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(classify(&aborted), AcceptErrorKind::connection_aborted);
    }

    #[test]
    fn backoff_doubles_to_a_ceiling_and_resets() {
        let mut b = Backoff::default();
        let kind = AcceptErrorKind::process_descriptor_limit;
        let pauses: Vec<_> = (0..9).filter_map(|_| b.after(kind)).collect();
        assert_eq!(pauses[0], BACKOFF_MIN);
        assert_eq!(pauses[1], BACKOFF_MIN * 2);
        assert_eq!(*pauses.last().unwrap(), BACKOFF_MAX);
        assert_eq!(b.after(AcceptErrorKind::connection_aborted), None);
        b.reset();
        assert_eq!(b.after(kind), Some(BACKOFF_MIN));
    }

    #[test]
    fn a_flapping_listener_logs_one_failure_and_one_recovery_per_interval() {
        let mut log = ErrorLog::default();
        let emfile = io::Error::from_raw_os_error(Errno::MFILE.raw_os_error());
        let kind = AcceptErrorKind::process_descriptor_limit;
        assert!(!log.accepted(Listener::http), "nothing to recover from");
        let mut lines = 0;
        for _ in 0..100 {
            lines += usize::from(log.failed(Listener::http, &emfile, kind));
            lines += usize::from(log.accepted(Listener::http));
        }
        assert_eq!(lines, 2);
        assert_eq!(log.unlogged, 99, "later failures wait for the next report");
    }
}
