//! Where log lines go: standard error, in batches.
//!
//! Writing each line with its own `write(2)` cost a busy server about as much
//! as the rest of a request's handling. Here a line is appended to a shared
//! buffer (no system call, no wake-up of another thread); a flusher thread
//! writes the buffer out every [`FLUSH_EVERY`], and a thread that finds the
//! buffer over [`FLUSH_AT`] writes it out itself, so a flood of lines blocks
//! its writers instead of growing without bound. Lines keep their order.
//! Warnings and errors are rare and wanted at once: they are written out
//! together with whatever is buffered before them.
//!
//! [`LogGuard`] flushes when dropped (the end of `main`), and a panic flushes
//! before the panic message is printed, so no line is lost on the way out.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// How long a line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Buffered bytes at which the writing thread flushes at once.
pub const FLUSH_AT: usize = 64 << 10;

/// The shared buffer and the sink it drains into.
struct Shared {
    pending: Mutex<Vec<u8>>,
    /// Held while writing out, so batches reach the sink in order.
    sink: Mutex<Box<dyn Write + Send>>,
}

impl Shared {
    fn lock_pending(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, bytes: &[u8]) {
        let full = {
            let mut pending = self.lock_pending();
            pending.extend_from_slice(bytes);
            pending.len() >= FLUSH_AT
        };
        if full {
            self.flush();
        }
    }

    fn flush(&self) {
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let batch = std::mem::take(&mut *self.lock_pending());
        if batch.is_empty() {
            return;
        }
        // Nowhere to report a failing stderr; the lines are dropped.
        let _ = sink.write_all(&batch);
        let _ = sink.flush();
    }
}

/// A `tracing_subscriber` writer appending to the batch buffer.
#[derive(Clone)]
pub struct BatchedStderr {
    shared: Arc<Shared>,
    /// Write out after each line (warnings and errors).
    eager: bool,
}

impl BatchedStderr {
    /// The process-wide buffer in front of standard error, with its flusher
    /// thread (started on first use).
    pub fn global() -> BatchedStderr {
        static GLOBAL: OnceLock<BatchedStderr> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let writer = BatchedStderr::new(Box::new(io::stderr()));
                writer.spawn_flusher();
                flush_on_panic();
                writer
            })
            .clone()
    }

    /// A buffer in front of `sink`, without a flusher thread.
    fn new(sink: Box<dyn Write + Send>) -> BatchedStderr {
        BatchedStderr {
            shared: Arc::new(Shared {
                pending: Mutex::new(Vec::with_capacity(FLUSH_AT)),
                sink: Mutex::new(sink),
            }),
            eager: false,
        }
    }

    fn spawn_flusher(&self) {
        let shared = Arc::downgrade(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("sigil-log".into())
            .spawn(move || {
                while let Some(shared) = shared.upgrade() {
                    shared.flush();
                    drop(shared);
                    std::thread::sleep(FLUSH_EVERY);
                }
            });
        if spawned.is_err() {
            // Without the thread, lines are written out as the buffer fills
            // and at exit; say so once, directly.
            eprintln!("sigil: cannot start the log flusher thread; log lines may be delayed");
        }
    }

    /// The writer for a line at `level`: warnings and errors are written out
    /// at once, everything else waits for the next batch.
    fn for_level(&self, level: tracing::Level) -> BatchedStderr {
        BatchedStderr {
            shared: self.shared.clone(),
            eager: level <= tracing::Level::WARN,
        }
    }

    /// Write out everything buffered so far.
    pub fn write_out(&self) {
        self.shared.flush();
    }
}

impl Write for BatchedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.append(buf);
        if self.eager {
            self.shared.flush();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Lines are written out in batches; `write_out` forces one.
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedStderr {
    type Writer = BatchedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        self.for_level(*meta.level())
    }
}

/// Flushes the process-wide buffer when dropped.
#[must_use = "dropping the guard flushes the log; keep it until the end of main"]
pub struct LogGuard(pub(crate) BatchedStderr);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.0.write_out();
    }
}

/// Flush buffered lines before a panic message is printed.
fn flush_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        BatchedStderr::global().write_out();
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink recording each `write_all` batch.
    #[derive(Clone, Default)]
    struct Batches(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Batches {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_wait_for_a_flush_and_a_full_buffer_flushes_itself() {
        let batches = Batches::default();
        let mut w = BatchedStderr::new(Box::new(batches.clone()));
        w.write_all(b"one\n").unwrap();
        w.write_all(b"two\n").unwrap();
        assert!(batches.0.lock().unwrap().is_empty(), "no write per line");
        w.flush().unwrap();
        assert!(batches.0.lock().unwrap().is_empty(), "io flush is a no-op");
        w.write_out();
        assert_eq!(*batches.0.lock().unwrap(), vec![b"one\ntwo\n".to_vec()]);
        let line = vec![b'x'; 1024];
        for _ in 0..FLUSH_AT / 1024 {
            w.write_all(&line).unwrap();
        }
        let written: usize = batches.0.lock().unwrap().iter().map(Vec::len).sum();
        assert_eq!(written, 8 + FLUSH_AT, "the writer flushed the full buffer");
        drop(LogGuard(w.clone()));
        w.write_out();
        assert_eq!(batches.0.lock().unwrap().len(), 2, "nothing left over");
    }

    #[test]
    fn warnings_and_errors_are_written_at_once() {
        use tracing_subscriber::fmt::MakeWriter;
        let batches = Batches::default();
        let w = BatchedStderr::new(Box::new(batches.clone()));
        let written = || batches.0.lock().unwrap().concat();
        w.make_writer().write_all(b"info\n").unwrap();
        assert!(written().is_empty());
        w.for_level(tracing::Level::WARN)
            .write_all(b"warn\n")
            .unwrap();
        assert_eq!(written(), b"info\nwarn\n", "in order, at once");
    }
}
