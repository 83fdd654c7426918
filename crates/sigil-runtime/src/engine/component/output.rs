//! A component's stdout and stderr: kept in memory up to a cap (beyond it,
//! output is dropped, never failing the guest's write), and taken after each
//! request to go to the log tagged with the worker and request.

use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// How much output is kept between two takes.
const CAPACITY: usize = 1 << 20;

/// One output stream of a component instance.
#[derive(Clone, Default)]
pub struct LogPipe(Arc<Mutex<BytesMut>>);

impl LogPipe {
    fn lock(&self) -> std::sync::MutexGuard<'_, BytesMut> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take what was written since the last take.
    pub fn take(&self) -> Bytes {
        self.lock().split().freeze()
    }
}

impl AsyncWrite for LogPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut kept = self.lock();
        let room = CAPACITY.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..buf.len().min(room)]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Log what a component printed, one line per log record.
pub fn log_output(worker: &str, request_id: &str, stream: &str, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    for line in String::from_utf8_lossy(bytes).lines() {
        tracing::info!(worker, request_id, stream, "{line}");
    }
}
