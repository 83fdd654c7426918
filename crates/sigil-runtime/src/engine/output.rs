//! What a worker writes to the server log, bounded per request: its
//! `sigil.log` lines and its captured stdout/stderr share one budget of
//! lines and bytes; stdout and stderr keep only their first
//! [`OUTPUT_CAPTURE`] bytes (later writes are accepted and discarded, so the
//! worker's own writes never fail). Whatever is dropped is said once per
//! stream and request with a "truncated" line and counted in
//! `sigil_worker_output_truncated_total`. Every line is escaped
//! ([`escape_controls`]) so a worker cannot forge log lines.

use super::subrequest::CallContext;
use crate::telemetry::logging::escape_controls;
use crate::telemetry::metrics::{WorkerOutputLabels, WorkerStream as Stream, metrics};
use bytes::Bytes;
use std::borrow::Cow;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Most log lines one request may add to the server log (`sigil.log` calls
/// and stdout/stderr lines together).
pub const MAX_LOG_LINES: u32 = 1000;
/// Most bytes of log text one request may add to the server log.
pub const MAX_LOG_BYTES: usize = 256 << 10;
/// Bytes of stdout, and of stderr, kept per request.
pub const OUTPUT_CAPTURE: usize = 64 << 10;
/// Longest single line kept; longer lines are cut.
pub const MAX_LINE: usize = 16 << 10;

/// The log budget of one request.
#[derive(Debug)]
pub struct LogBudget {
    lines: u32,
    bytes: usize,
    /// Streams whose truncation was already reported.
    marked: [bool; 3],
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            lines: MAX_LOG_LINES,
            bytes: MAX_LOG_BYTES,
            marked: [false; 3],
        }
    }
}

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::log => 0,
        Stream::stdout => 1,
        Stream::stderr => 2,
    }
}

impl LogBudget {
    /// Whether a line of `len` bytes may still be logged; takes it from the
    /// budget when it may.
    pub fn admit(&mut self, len: usize) -> bool {
        if self.lines == 0 || len > self.bytes {
            self.lines = 0;
            return false;
        }
        self.lines -= 1;
        self.bytes -= len;
        true
    }

    /// Whether the budget is spent (nothing more will be logged).
    pub fn is_spent(&self) -> bool {
        self.lines == 0
    }

    /// Log the "truncated" line for `stream` (once per request and stream)
    /// and count it.
    pub fn mark_truncated(&mut self, call: &CallContext, stream: Stream, why: &str) {
        let seen = &mut self.marked[slot(stream)];
        if std::mem::replace(seen, true) {
            return;
        }
        tracing::warn!(
            worker = &*call.worker,
            request_id = &*call.request_id,
            stream = stream.as_str(),
            "worker output truncated: {why}; the rest of this request's {} is dropped",
            stream.as_str()
        );
        metrics()
            .worker_output_truncated
            .get_or_create(&WorkerOutputLabels {
                worker: call.worker.clone(),
                stream,
            })
            .inc();
    }

    /// The reason given when the shared budget runs out.
    pub fn exhausted() -> String {
        format!(
            "more than {MAX_LOG_LINES} lines or {} KiB of log output in one request",
            MAX_LOG_BYTES >> 10
        )
    }
}

/// `line` cut to [`MAX_LINE`] bytes (on a character boundary) and escaped.
pub fn clean_line(line: &str) -> String {
    cut_and_escape(line, line.len(), MAX_LINE)
}

/// `line` cut to `max` bytes (at most [`MAX_LINE`], on a character
/// boundary) and escaped, as [`clean_line`] does.
pub fn clean_line_within(line: &str, max: usize) -> String {
    cut_and_escape(line, line.len(), max.min(MAX_LINE))
}

/// `line` (the first bytes of a line `full` bytes long) cut to [`MAX_LINE`]
/// bytes on a character boundary and escaped; a line that lost bytes ends
/// with `[line cut: <full> bytes]`.
fn cut_and_escape(line: &str, full: usize, max: usize) -> String {
    let mut end = line.len().min(max);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = escape_controls(&line[..end]).into_owned();
    if end < line.len() || full > line.len() {
        out.push_str(&format!(" [line cut: {} bytes]", full.max(line.len())));
    }
    out
}

/// The text of a `sigil.log` line: `bytes` as the host read them from the
/// guest (at most [`MAX_LINE`] of the `full` bytes it passed), invalid UTF-8
/// replaced, cut and escaped as [`clean_line`] does, and marked with the
/// guest's length when it was cut. A character split by the read is dropped
/// rather than shown as a replacement character. A line that needs none of
/// that (a worker's usual line) is kept without another copy.
pub(crate) fn guest_log_line(mut bytes: Vec<u8>, full: usize) -> String {
    let read_cut = full > bytes.len();
    let line = match String::from_utf8(bytes) {
        Ok(line) => line,
        Err(invalid) => {
            let error = invalid.utf8_error();
            bytes = invalid.into_bytes();
            if read_cut && error.error_len().is_none() {
                // Only the read split the last character: drop its start.
                bytes.truncate(error.valid_up_to());
                return guest_log_line(bytes, full);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    if !read_cut && line.len() <= MAX_LINE && matches!(escape_controls(&line), Cow::Borrowed(_)) {
        return line;
    }
    cut_and_escape(&line, full, MAX_LINE)
}

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
}

/// A worker's stdout or stderr: keeps the first [`OUTPUT_CAPTURE`] bytes and
/// accepts and discards the rest, so writes past the cap succeed.
#[derive(Debug, Clone, Default)]
pub struct CappedPipe(Arc<Mutex<Captured>>);

impl CappedPipe {
    fn keep(&self, bytes: &[u8]) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let room = OUTPUT_CAPTURE.saturating_sub(c.kept.len());
        let n = room.min(bytes.len());
        c.kept.extend_from_slice(&bytes[..n]);
        c.dropped += (bytes.len() - n) as u64;
    }

    /// The bytes kept, and how many were discarded past the cap.
    pub fn take(&self) -> (Vec<u8>, u64) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (std::mem::take(&mut c.kept), std::mem::take(&mut c.dropped))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always room: what does not fit is discarded, never refused.
        Ok(1 << 20)
    }
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Log what the worker wrote to stdout and stderr during one request,
/// within the request's log budget.
pub fn log_captured(call: &CallContext, budget: &mut LogBudget, pipes: [(Stream, &CappedPipe); 2]) {
    for (stream, pipe) in pipes {
        let (bytes, dropped) = pipe.take();
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            let line = clean_line(line);
            if !budget.admit(line.len()) {
                budget.mark_truncated(call, stream, &LogBudget::exhausted());
                break;
            }
            tracing::info!(
                worker = &*call.worker,
                request_id = &*call.request_id,
                stream = stream.as_str(),
                "{line}"
            );
        }
        if dropped > 0 {
            let why = format!(
                "the worker wrote {} bytes to {}; the first {} KiB were kept",
                bytes.len() as u64 + dropped,
                stream.as_str(),
                OUTPUT_CAPTURE >> 10
            );
            budget.mark_truncated(call, stream, &why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_runs_out_by_lines_and_by_bytes() {
        let mut b = LogBudget::default();
        for _ in 0..MAX_LOG_LINES {
            assert!(b.admit(1));
        }
        assert!(!b.admit(1));
        let mut b = LogBudget::default();
        assert!(b.admit(MAX_LOG_BYTES - 10));
        assert!(!b.admit(11));
        assert!(!b.admit(1), "once refused, always refused");
    }

    #[test]
    fn the_pipe_accepts_everything_and_keeps_the_cap() {
        let mut p = CappedPipe::default();
        for _ in 0..100 {
            OutputStream::write(&mut p, Bytes::from(vec![b'x'; 10_000])).unwrap();
        }
        assert!(p.check_write().unwrap() > 0);
        let (kept, dropped) = p.take();
        assert_eq!(kept.len(), OUTPUT_CAPTURE);
        assert_eq!(kept.len() as u64 + dropped, 1_000_000);
    }

    #[test]
    fn lines_are_cut_and_escaped() {
        assert_eq!(clean_line("a\r\nb"), "a\\r\\nb");
        let long = "é".repeat(MAX_LINE);
        let cut = clean_line(&long);
        assert!(cut.len() < MAX_LINE + 40, "{}", cut.len());
        assert!(cut.ends_with(&format!("[line cut: {} bytes]", long.len())));
    }

    #[test]
    fn guest_log_lines_are_text_whatever_the_guest_passed() {
        assert_eq!(guest_log_line(b"plain line".to_vec(), 10), "plain line");
        assert_eq!(guest_log_line(b"a\xffb\n".to_vec(), 4), "a\u{fffd}b\\n");
        let read = vec![b'x'; MAX_LINE];
        let line = guest_log_line(read, MAX_LINE + 5);
        assert!(
            line.starts_with("xxx") && line.len() < MAX_LINE + 80,
            "{}",
            line.len()
        );
        assert!(
            line.ends_with(&format!("x [line cut: {} bytes]", MAX_LINE + 5)),
            "{}",
            &line[MAX_LINE - 10..]
        );
    }

    #[test]
    fn a_cut_guest_line_counts_the_bytes_the_guest_passed() {
        // A 1 MiB line: the host reads MAX_LINE bytes and says how long
        // the guest's line was (not how long the kept part is).
        let line = guest_log_line(vec![b'a'; MAX_LINE], 1 << 20);
        assert!(
            line.ends_with("a [line cut: 1048576 bytes]"),
            "{}",
            &line[MAX_LINE - 10..]
        );
        assert_eq!(line.len(), MAX_LINE + " [line cut: 1048576 bytes]".len());
        // A line of two-byte characters read cut in the middle of one:
        // the half character is dropped, not shown as U+FFFD.
        let mut read = "é".repeat(MAX_LINE / 2).into_bytes();
        read.push(0xc3);
        let line = guest_log_line(read, MAX_LINE + 3);
        assert!(!line.contains('\u{fffd}'), "a replacement character");
        assert!(line.ends_with(&format!("é [line cut: {} bytes]", MAX_LINE + 3)));
        // Escaping still applies to a cut line, and the count still holds.
        let line = guest_log_line(
            b"\x1b[31mred".repeat(MAX_LINE / 8)[..MAX_LINE].to_vec(),
            MAX_LINE * 2,
        );
        assert!(!line.contains('\x1b'), "an escape byte reached the log");
        assert!(line.ends_with(&format!(" [line cut: {} bytes]", MAX_LINE * 2)));
        // A short line with invalid bytes that the read did not cut keeps
        // its replacement characters and gets no mark.
        assert_eq!(guest_log_line(b"ok\xc3".to_vec(), 3), "ok\u{fffd}");
    }
}
