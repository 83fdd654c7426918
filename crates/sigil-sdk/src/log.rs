//! Logging from a worker. Lines appear in the host's log, tagged with the
//! worker and the request id. (`println!` and `eprintln!` work too.)

use crate::abi;
use crate::wire::LogLevel;

/// Log `message` at `level`.
pub fn log(level: LogLevel, message: &str) {
    abi::log(level as i32, message);
}

/// Log at debug level.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message);
}

/// Log at info level.
pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

/// Log at warn level.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

/// Log at error level.
pub fn error(message: &str) {
    log(LogLevel::Error, message);
}
