//! The text log line, written without `core::fmt` where it can be.
//!
//! [`PlainText`] writes exactly what `tracing-subscriber`'s default
//! ("full") text format writes — `<time> <LEVEL> <target>: <message>
//! <name>=<value>…` — but for the common event (no enclosing span, no
//! colours, string fields and a message without terminal escapes) it
//! copies the pieces instead of formatting them through `core::fmt`'s
//! padding and `Debug` machinery: a worker that logs a line per request
//! paid about 3 % of the serving process's CPU in that machinery (issue
//! 13). Every other event (spans, colours, errors, `log` records, text
//! that the default format escapes) is handed to the default format
//! unchanged, and a test compares both outputs event by event.

use super::log_time::CachedUtcTime;
use std::cell::RefCell;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The text event format: the default full format, with a fast path for
/// plain events (see the module documentation).
#[derive(Debug, Clone)]
pub struct PlainText {
    default: Format<Full, CachedUtcTime>,
}

impl Default for PlainText {
    fn default() -> Self {
        PlainText {
            default: format::format().with_timer(CachedUtcTime),
        }
    }
}

thread_local! {
    /// The fields of the line being written (reused; see [`PlainFields`]).
    static FIELDS: RefCell<String> = const { RefCell::new(String::new()) };
}

#[cfg(test)]
thread_local! {
    /// Lines this thread wrote by the fast path.
    static FAST_LINES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<S, N> FormatEvent<S, N> for PlainText
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let plain = !writer.has_ansi_escapes()
            && ctx.event_scope().is_none()
            && !event.fields().any(|f| f.name().starts_with("log."));
        if plain {
            let written = FIELDS.try_with(|fields| {
                let Ok(mut fields) = fields.try_borrow_mut() else {
                    return None; // a field's `Debug` logged: not this path
                };
                fields.clear();
                let mut visitor = PlainFields {
                    out: &mut fields,
                    plain: true,
                };
                event.record(&mut visitor);
                visitor
                    .plain
                    .then(|| write_line(&mut writer, event, &fields))
            });
            if let Ok(Some(result)) = written {
                return result;
            }
        }
        self.default.format_event(ctx, writer, event)
    }
}

/// `<time> <LEVEL> <target>: <fields>\n`, as the default format writes it
/// without colours.
fn write_line(writer: &mut Writer<'_>, event: &Event<'_>, fields: &str) -> fmt::Result {
    #[cfg(test)]
    FAST_LINES.with(|n| n.set(n.get() + 1));
    if CachedUtcTime.format_time(writer).is_err() {
        writer.write_str("<unknown time>")?;
    }
    let level = match *event.metadata().level() {
        Level::TRACE => " TRACE ",
        Level::DEBUG => " DEBUG ",
        Level::INFO => "  INFO ",
        Level::WARN => "  WARN ",
        Level::ERROR => " ERROR ",
    };
    writer.write_str(level)?;
    writer.write_str(event.metadata().target())?;
    writer.write_str(": ")?;
    writer.write_str(fields)?;
    writer.write_char('\n')
}

/// Writes an event's fields as the default format's visitor does, and
/// gives up (`plain = false`) on what it would write differently: an
/// error (written with its sources) or a message with a character the
/// default format escapes.
struct PlainFields<'a> {
    out: &'a mut String,
    plain: bool,
}

impl PlainFields<'_> {
    fn pad(&mut self) {
        if !self.out.is_empty() {
            self.out.push(' ');
        }
    }

    fn name(&mut self, field: &Field) {
        let name = field.name();
        self.out.push_str(name.strip_prefix("r#").unwrap_or(name));
        self.out.push('=');
    }
}

/// Characters the default format escapes in a message (terminal control:
/// ESC, BEL, BS, FF, DEL and the C1 controls).
fn escaped_in_messages(c: char) -> bool {
    matches!(
        c,
        '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
    )
}

/// Whether `<str as Debug>` writes `text` as itself between quotes.
fn debug_is_verbatim(text: &str) -> bool {
    text.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for PlainFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.plain {
            return;
        }
        if field.name() == "message" {
            if value.chars().any(escaped_in_messages) {
                self.plain = false;
                return;
            }
            self.pad();
            self.out.push_str(value);
        } else if debug_is_verbatim(value) {
            self.pad();
            self.name(field);
            self.out.push('"');
            self.out.push_str(value);
            self.out.push('"');
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, _: &Field, _: &(dyn std::error::Error + 'static)) {
        self.plain = false;
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.plain {
            return;
        }
        self.pad();
        if field.name() == "message" {
            let start = self.out.len();
            let _ = write!(self.out, "{value:?}");
            if self.out[start..].chars().any(escaped_in_messages) {
                self.plain = false;
            }
        } else {
            self.name(field);
            let _ = write!(self.out, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        /// The lines written, each without its timestamp.
        fn lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| l.split_once(' ').expect("a timestamp").1.to_string())
                .collect()
        }
    }

    #[derive(Debug)]
    struct Failure(Option<Box<Failure>>);
    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(if self.0.is_some() { "outer" } else { "inner" })
        }
    }
    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.0.as_deref().map(|e| e as _)
        }
    }

    /// Every kind of event Sigil logs, and the ones the fast path must hand
    /// over: spans, errors, escapes, `r#` names, odd values.
    fn events() {
        let worker = "hello";
        let request_id = "0000000000000001";
        tracing::info!(message = "plain line from a worker", worker, request_id);
        tracing::info!(worker, request_id, message = "é ünïcode ✓ \\ \" quoted");
        tracing::warn!(worker, request_id, message = "escape \x1b[31m red \u{85}");
        tracing::error!(worker, request_id, "worker panicked: {}", "at src/lib.rs:3");
        tracing::debug!(worker = "wörker \"q\" \\ \n", "debug {} {:?}", 1, "two");
        tracing::trace!(n = 5u64, i = -3i64, b = true, f = 1.5f64, "numbers");
        tracing::warn!(r#type = "kind", "raw identifier");
        tracing::info!(addr = %"127.0.0.1:8443", dbg = ?vec![1, 2], "display and debug");
        tracing::error!(
            error = &Failure(Some(Box::new(Failure(None)))) as &(dyn std::error::Error + 'static),
            "error with sources"
        );
        tracing::info!("message only");
        tracing::info!(worker, "message {}", "\x07bell");
        tracing::info!(only = "fields");
        let span = tracing::info_span!("conn", peer = "127.0.0.1");
        span.in_scope(|| tracing::warn!(worker, "inside a span"));
    }

    /// Text with every character up to U+02FF and a few beyond (controls,
    /// quotes, backslashes, C1, line separators, combining marks, emoji),
    /// as a worker's message and as a field.
    fn every_character() {
        let extra = [
            '\u{2028}',
            '\u{2029}',
            '\u{feff}',
            '\u{301}',
            '\u{1f600}',
            '\u{10ffff}',
        ];
        for c in (0..0x300u32).filter_map(char::from_u32).chain(extra) {
            let text = format!("a{c}b");
            tracing::info!(message = text.as_str(), worker = text.as_str());
        }
    }

    fn run_with(plain: bool, events: fn()) -> Vec<String> {
        let out = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .with_writer(out.clone());
        let dispatch = if plain {
            tracing::Dispatch::new(builder.event_format(PlainText::default()).finish())
        } else {
            tracing::Dispatch::new(builder.with_timer(CachedUtcTime).finish())
        };
        tracing::dispatcher::with_default(&dispatch, events);
        out.lines()
    }

    /// The fast path writes, line for line, what the default format writes.
    #[test]
    fn lines_are_the_default_formats() {
        let (fast, default) = (run_with(true, events), run_with(false, events));
        // All but the escapes, the error and the span took the fast path.
        assert_eq!(FAST_LINES.with(|n| n.get()), 9);
        assert_eq!(fast.len(), 13, "{fast:#?}");
        assert_eq!(fast, default);
        assert_eq!(
            fast[0],
            " INFO sigil_runtime::telemetry::log_format::tests: \
             plain line from a worker worker=\"hello\" request_id=\"0000000000000001\""
        );
    }

    /// And so it does for any character in a message or a field.
    #[test]
    fn any_character_is_written_as_the_default_format_writes_it() {
        let (fast, default) = (
            run_with(true, every_character),
            run_with(false, every_character),
        );
        assert_eq!(fast.len(), default.len());
        for (fast, default) in fast.iter().zip(&default) {
            assert_eq!(fast, default);
        }
    }
}
