//! The timestamp at the start of every log line, formatted as
//! `tracing-subscriber`'s default (`2026-11-26T20:43:42.123456Z`, UTC,
//! microseconds) but with the date and time of day worked out once per
//! second per thread instead of once per line: a worker that logs on every
//! request paid about a quarter of its log line's cost in calendar
//! arithmetic and `core::fmt` (issue 13).

use std::cell::Cell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// `YYYY-MM-DDTHH:MM:SS.` — the part of a timestamp that changes once a
/// second.
const PREFIX_LEN: usize = 20;

/// Formats log timestamps exactly as [`tracing_subscriber::fmt::time::SystemTime`]
/// does, caching the formatted second in each thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct CachedUtcTime;

thread_local! {
    /// The whole second last formatted by this thread and its text.
    static SECOND: Cell<Option<(u64, [u8; PREFIX_LEN])>> = const { Cell::new(None) };
}

impl FormatTime for CachedUtcTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let Ok(since_epoch) = SystemTime::now().duration_since(UNIX_EPOCH) else {
            // A clock before 1970: rare enough to format the slow way.
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let secs = since_epoch.as_secs();
        let prefix = match SECOND.with(Cell::get) {
            Some((cached, prefix)) if cached == secs => prefix,
            _ => match second_prefix(secs) {
                Some(prefix) => {
                    SECOND.with(|c| c.set(Some((secs, prefix))));
                    prefix
                }
                None => return tracing_subscriber::fmt::time::SystemTime.format_time(w),
            },
        };
        w.write_str(as_str(&prefix))?;
        let mut micros = *b"000000Z";
        write_digits(&mut micros[..6], since_epoch.subsec_micros());
        w.write_str(as_str(&micros))
    }
}

/// `bytes`, which this module fills with ASCII only, as text.
fn as_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// `value` as decimal digits filling `out`, zero-padded on the left (the
/// highest digits are dropped if it does not fit).
fn write_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` of `secs` seconds after the Unix epoch (UTC), or
/// `None` after the year 9999 (the default formatter's `+` form).
fn second_prefix(secs: u64) -> Option<[u8; PREFIX_LEN]> {
    let days = secs / 86_400;
    let of_day = (secs % 86_400) as u32;
    let (year, month, day) = civil_from_days(i64::try_from(days).ok()?);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut out = *b"0000-00-00T00:00:00.";
    write_digits(&mut out[0..4], year as u32);
    write_digits(&mut out[5..7], month);
    write_digits(&mut out[8..10], day);
    write_digits(&mut out[11..13], of_day / 3600);
    write_digits(&mut out[14..16], of_day / 60 % 60);
    write_digits(&mut out[17..19], of_day % 60);
    Some(out)
}

/// The proleptic Gregorian (year, month, day) of `days` after 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(secs: u64) -> String {
        as_str(&second_prefix(secs).unwrap()).to_string()
    }

    #[test]
    fn seconds_are_formatted_as_utc_calendar_dates() {
        // Values checked with `date -u -d @SECS +%FT%T`.
        assert_eq!(prefix(0), "1970-01-01T00:00:00.");
        assert_eq!(prefix(951_782_400), "2000-02-29T00:00:00.");
        assert_eq!(prefix(1_709_251_199), "2024-02-29T23:59:59.");
        assert_eq!(prefix(1_709_251_200), "2024-03-01T00:00:00.");
        assert_eq!(prefix(1_735_689_599), "2024-12-31T23:59:59.");
        assert_eq!(prefix(1_795_725_822), "2026-11-26T20:43:42.");
        assert_eq!(prefix(4_107_542_400), "2100-03-01T00:00:00.");
        assert_eq!(prefix(253_402_300_799), "9999-12-31T23:59:59.");
        assert_eq!(second_prefix(253_402_300_800), None);
    }

    #[test]
    fn every_day_of_four_centuries_matches_a_day_by_day_count() {
        let (mut year, mut month, mut day) = (1970_i64, 1_u32, 1_u32);
        for days in 0..(400 * 366) {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let len = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > len {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
            }
        }
    }

    /// The line timestamp has the default formatter's shape, and the same
    /// second as it, read around the same moment.
    #[test]
    fn timestamps_look_like_the_default_formatters() {
        let format = |timer: &dyn FormatTime| {
            let mut out = String::new();
            timer.format_time(&mut Writer::new(&mut out)).unwrap();
            out
        };
        for _ in 0..3 {
            let before = format(&tracing_subscriber::fmt::time::SystemTime);
            let ours = format(&CachedUtcTime);
            let after = format(&tracing_subscriber::fmt::time::SystemTime);
            assert_eq!(ours.len(), before.len(), "{ours} vs {before}");
            assert!(ours.ends_with('Z') && ours.as_bytes()[PREFIX_LEN - 1] == b'.');
            assert!(
                before <= ours && ours <= after,
                "{before} <= {ours} <= {after}"
            );
        }
    }
}
