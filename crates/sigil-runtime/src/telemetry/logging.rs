//! Log output: `tracing` lines on stderr (written in batches, see
//! [`super::log_writer`]), human-readable or JSON, filtered by `RUST_LOG`
//! (default `info`).

use super::log_format::PlainText;
use super::log_time::CachedUtcTime;
use super::log_writer::{BatchedStderr, LogGuard};
use std::io::IsTerminal as _;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal only).
    Text,
    /// One JSON object per line.
    Json,
}

/// Install the process-wide log subscriber, writing through the batched
/// standard error of [`super::log_writer`]. Keep the guard until the end of
/// `main`: dropping it writes out what is still buffered.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = BatchedStderr::global();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer.clone());
    match format {
        LogFormat::Text => builder.event_format(PlainText::default()).init(),
        LogFormat::Json => builder.with_timer(CachedUtcTime).json().init(),
    }
    LogGuard(writer)
}

/// `text` with every control character escaped, so text from a worker (log
/// lines, stdout, panic messages, names in wasm backtraces) can never start
/// a new log line or drive a terminal, whatever the log format: `\n`, `\r`
/// and `\t` as those escapes, other C0 and C1 controls, DEL and the Unicode
/// line and paragraph separators as `\u{..}`. Text without them is borrowed
/// unchanged.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let needs = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !text.chars().any(needs) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn controls_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(
            escape_controls("plain \\ text é"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_controls("a\r\nINFO forged\tx\u{1b}[31m\u{85}\u{2028}"),
            "a\\r\\nINFO forged\\tx\\u{1b}[31m\\u{85}\\u{2028}"
        );
    }
}
