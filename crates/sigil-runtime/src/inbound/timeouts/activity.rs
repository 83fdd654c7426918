//! What one connection is doing, recorded as it happens: requests in flight,
//! the first byte of a new request head, output the client is not taking.
//! The socket wrapper, the service and the response bodies write it; the
//! watchdog reads it. Times are milliseconds since the connection started.

use crate::telemetry::metrics::Listener;
use http::Version;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::Instant;

/// A moment, or none: milliseconds since the connection started, plus one
/// (0 means unset).
#[derive(Default)]
struct Stamp(AtomicU64);

impl Stamp {
    fn get(&self) -> Option<u64> {
        self.0.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Set it to `ms` unless it is already set.
    fn set_if_unset(&self, ms: u64) {
        let _ = self
            .0
            .compare_exchange(0, ms + 1, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn clear(&self) {
        if self.0.load(Ordering::Relaxed) != 0 {
            self.0.store(0, Ordering::Relaxed);
        }
    }
}

/// The record of one connection's activity.
pub(crate) struct Activity {
    origin: Instant,
    listener: Listener,
    in_flight: AtomicUsize,
    served: AtomicBool,
    h2: AtomicBool,
    idle_since: AtomicU64,
    head_started: Stamp,
    write_blocked: Stamp,
    unflushed: AtomicBool,
    /// Response bodies whose last chunk has not been taken yet: (id, since).
    waiting: Mutex<Vec<(u64, u64)>>,
    next_body: AtomicU64,
    close_requested: AtomicBool,
    close_wanted: Notify,
}

/// The activity at one moment, for working out the next deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Requests whose response has not been handed over whole.
    pub in_flight: usize,
    /// Whether any request has started on this connection.
    pub served: bool,
    /// Whether the connection speaks HTTP/2.
    pub h2: bool,
    /// When the connection last became idle (its start, at first).
    pub idle_since: u64,
    /// When the first byte of a new HTTP/1 request head arrived while idle.
    pub head_started: Option<u64>,
    /// Since when the socket has refused our output.
    pub write_blocked: Option<u64>,
    /// Whether output was written and not yet flushed.
    pub unflushed: bool,
    /// Since when the oldest waiting response chunk has been waiting.
    pub oldest_waiting: Option<u64>,
}

impl Activity {
    /// A fresh record for a connection accepted by `listener`, starting now.
    pub fn new(listener: Listener) -> Arc<Activity> {
        Arc::new(Activity {
            origin: Instant::now(),
            listener,
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            head_started: Stamp::default(),
            write_blocked: Stamp::default(),
            unflushed: AtomicBool::new(false),
            waiting: Mutex::new(Vec::new()),
            next_body: AtomicU64::new(0),
            close_requested: AtomicBool::new(false),
            close_wanted: Notify::new(),
        })
    }

    /// The listener that accepted the connection.
    pub fn listener(&self) -> Listener {
        self.listener
    }

    /// Milliseconds since the connection started.
    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// The instant `ms` milliseconds after the connection started.
    pub fn instant(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    /// Completes after the next [`request_close`](Self::request_close).
    /// (Nothing else wakes the watchdog: see [`Watchdog`](super::Watchdog).)
    pub fn close_wanted(&self) -> Notified<'_> {
        self.close_wanted.notified()
    }

    /// Bytes arrived from the client.
    pub fn on_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.served.load(Ordering::Relaxed)
            && !self.h2.load(Ordering::Relaxed)
            && self.head_started.get().is_none()
        {
            self.head_started.set_if_unset(self.now_ms());
        }
    }

    /// The socket took some of our output.
    pub fn on_write_progress(&self) {
        self.write_blocked.clear();
        if !self.unflushed.load(Ordering::Relaxed) {
            self.unflushed.store(true, Ordering::Relaxed);
        }
    }

    /// The socket refused our output for now.
    pub fn on_write_blocked(&self) {
        if self.write_blocked.get().is_none() {
            self.write_blocked.set_if_unset(self.now_ms());
        }
    }

    /// All our output reached the socket.
    pub fn on_flushed(&self) {
        self.write_blocked.clear();
        if self.unflushed.swap(false, Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
        {
            self.idle_since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// A request's head arrived; the guard ends it when dropped (with the
    /// response body, once that is handed over whole).
    pub fn request_started(self: &Arc<Self>, version: Version) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if !self.served.load(Ordering::Relaxed) {
            self.served.store(true, Ordering::Relaxed);
        }
        if version == Version::HTTP_2 && !self.h2.load(Ordering::Relaxed) {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.head_started.clear();
        RequestGuard(self.clone())
    }

    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle_since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// A new id for a response body.
    pub fn body_id(&self) -> u64 {
        self.next_body.fetch_add(1, Ordering::Relaxed)
    }

    fn waiting(&self) -> MutexGuard<'_, Vec<(u64, u64)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Response body `id` handed over a chunk and waits to be asked for more.
    pub fn response_waiting(&self, id: u64) {
        let now = self.now_ms();
        let mut waiting = self.waiting();
        match waiting.iter_mut().find(|(i, _)| *i == id) {
            Some(entry) => entry.1 = now,
            None => waiting.push((id, now)),
        }
    }

    /// Response body `id` is no longer waiting (it was asked for more, or it ended).
    pub fn response_not_waiting(&self, id: u64) {
        let mut waiting = self.waiting();
        if let Some(pos) = waiting.iter().position(|(i, _)| *i == id) {
            waiting.swap_remove(pos);
        }
    }

    /// Ask the connection to close once its requests in flight are answered.
    pub fn request_close(&self) {
        self.close_requested.store(true, Ordering::Relaxed);
        self.close_wanted.notify_one();
    }

    /// Whether [`request_close`](Self::request_close) was called.
    pub fn close_requested(&self) -> bool {
        self.close_requested.load(Ordering::Relaxed)
    }

    /// The activity now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            served: self.served.load(Ordering::Relaxed),
            h2: self.h2.load(Ordering::Relaxed),
            idle_since: self.idle_since.load(Ordering::Relaxed),
            head_started: self.head_started.get(),
            write_blocked: self.write_blocked.get(),
            unflushed: self.unflushed.load(Ordering::Relaxed),
            oldest_waiting: self.waiting().iter().map(|(_, since)| *since).min(),
        }
    }
}

/// One request in flight; dropping it ends the request.
pub(crate) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn records_requests_heads_and_blocked_writes() {
        let a = Activity::new(Listener::http);
        a.on_read();
        assert_eq!(
            a.snapshot().head_started,
            None,
            "the first head has its own deadline"
        );
        let guard = a.request_started(Version::HTTP_11);
        tokio::time::advance(Duration::from_millis(500)).await;
        a.on_write_blocked();
        assert_eq!(a.snapshot().write_blocked, Some(500));
        a.on_write_progress();
        drop(guard);
        let s = a.snapshot();
        assert_eq!((s.in_flight, s.idle_since, s.write_blocked), (0, 500, None));
        assert!(s.unflushed);
        tokio::time::advance(Duration::from_millis(100)).await;
        a.on_flushed();
        a.on_read();
        let s = a.snapshot();
        assert_eq!(
            (s.idle_since, s.head_started, s.unflushed),
            (600, Some(600), false)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tracks_the_oldest_waiting_response() {
        let a = Activity::new(Listener::https);
        let (x, y) = (a.body_id(), a.body_id());
        a.response_waiting(x);
        tokio::time::advance(Duration::from_millis(10)).await;
        a.response_waiting(y);
        assert_eq!(a.snapshot().oldest_waiting, Some(0));
        a.response_waiting(x);
        assert_eq!(a.snapshot().oldest_waiting, Some(10));
        a.response_not_waiting(x);
        a.response_not_waiting(y);
        assert_eq!(a.snapshot().oldest_waiting, None);
    }
}
