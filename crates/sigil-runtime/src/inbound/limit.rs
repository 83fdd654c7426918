//! `max_connections`: open inbound connections counted across the HTTP and
//! HTTPS listeners, and the file-descriptor limit the default is derived
//! from.

use crate::telemetry::metrics::{CloseReason, Listener, ListenerLabel, metrics};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Linux's default ceiling for a descriptor limit (`fs.nr_open`), used when
/// the hard limit is unlimited and `/proc/sys/fs/nr_open` cannot be read.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NR_OPEN_DEFAULT)
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (Go's runtime does the
/// same at start; nginx with `worker_rlimit_nofile`) and return the soft
/// limit now in force.
pub fn raise_descriptor_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let ceiling = limit.maximum.unwrap_or_else(nr_open);
    let current = limit.current.unwrap_or(ceiling);
    if current >= ceiling {
        return current;
    }
    let raised = Rlimit {
        current: Some(ceiling),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => ceiling,
        Err(e) => {
            tracing::warn!(
                "cannot raise the file-descriptor limit from {current} to {ceiling}: {e}"
            );
            current
        }
    }
}

/// The open inbound connections, shared by the listeners.
#[derive(Debug)]
pub struct ConnectionLimit {
    open: AtomicU64,
    max: u64,
}

impl ConnectionLimit {
    /// A limit of `max` open connections.
    pub fn new(max: u64) -> Arc<ConnectionLimit> {
        Arc::new(ConnectionLimit {
            open: AtomicU64::new(0),
            max,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// A slot for a connection `listener` just accepted, or `None` when
    /// `max` are open (counted as refused at the limit).
    pub fn try_acquire(self: &Arc<Self>, listener: Listener) -> Option<ConnectionSlot> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            super::timeouts::count_closed(listener, CloseReason::connection_limit);
            return None;
        }
        metrics()
            .connections
            .inbound_connections
            .get_or_create(&ListenerLabel { listener })
            .inc();
        Some(ConnectionSlot {
            limit: self.clone(),
            listener,
        })
    }
}

/// One open connection; dropping it frees its slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    limit: Arc<ConnectionLimit>,
    listener: Listener,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.limit.open.fetch_sub(1, Ordering::AcqRel);
        metrics()
            .connections
            .inbound_connections
            .get_or_create(&ListenerLabel {
                listener: self.listener,
            })
            .dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_frees_slots_on_drop() {
        let limit = ConnectionLimit::new(2);
        let a = limit.try_acquire(Listener::http);
        let b = limit.try_acquire(Listener::https);
        assert!(a.is_some() && b.is_some());
        assert!(limit.try_acquire(Listener::http).is_none());
        drop(a);
        assert_eq!(limit.open(), 1);
        assert!(limit.try_acquire(Listener::http).is_some());
    }

    #[test]
    fn the_descriptor_limit_is_raised_to_the_hard_limit() {
        let soft = raise_descriptor_limit();
        let now = getrlimit(Resource::Nofile);
        assert_eq!(now.current, Some(soft));
        if let Some(hard) = now.maximum {
            assert_eq!(soft, hard);
        }
    }
}
