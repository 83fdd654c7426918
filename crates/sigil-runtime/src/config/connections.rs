//! Inbound connection limits and timeouts (`[server]`): their defaults, the
//! values in force once the manifest's overrides are applied, and the checks
//! that refuse values that cannot work.
//!
//! The defaults follow nginx's (`client_header_timeout`,
//! `client_body_timeout`, `send_timeout` 60 s, `keepalive_timeout` 75 s);
//! the TLS handshake keeps Sigil's earlier fixed 10 s.

use super::model::ServerSection;
use std::time::Duration;

/// Default `header_read_timeout_ms`: nginx's `client_header_timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `body_idle_timeout_ms`: nginx's `client_body_timeout`.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `write_timeout_ms`: nginx's `send_timeout`.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `keepalive_idle_secs`: nginx's `keepalive_timeout`.
pub const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(75);
/// Default `tls_handshake_timeout_ms`.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors kept back from inbound connections for everything else:
/// listeners, the admin endpoint, module and certificate files, logs.
pub const DESCRIPTOR_RESERVE: u64 = 128;
/// The longest timeout the manifest may set (one day).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The limits and timeouts every inbound connection is served under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// The whole request head must arrive within this, counted from the
    /// connection's start (first request) or from its first byte (later ones).
    pub header_read_timeout: Duration,
    /// A request body that sends nothing for this long fails with 408.
    pub body_idle_timeout: Duration,
    /// A connection whose pending output makes no progress for this long is dropped.
    pub write_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    pub keepalive_idle: Duration,
    /// The whole TLS handshake (client hello included) must finish within this.
    pub tls_handshake_timeout: Duration,
    /// Most inbound connections open at once, across the HTTP and HTTPS listeners.
    pub max_connections: u64,
}

/// The default `max_connections` for a process that may open `nofile`
/// descriptors: half of what is left after [`DESCRIPTOR_RESERVE`], so every
/// inbound connection can be matched by one outbound connection to an origin,
/// and at least 1. (HAProxy likewise derives its default `maxconn` from
/// `ulimit -n`.)
pub fn default_max_connections(nofile: u64) -> u64 {
    (nofile.saturating_sub(DESCRIPTOR_RESERVE) / 2).max(1)
}

fn millis(value: Option<u64>, default: Duration) -> Duration {
    value.map(Duration::from_millis).unwrap_or(default)
}

impl ConnectionSettings {
    /// The settings `server` asks for; `nofile` is the process's descriptor
    /// limit, from which the default `max_connections` is derived.
    pub fn resolve(server: &ServerSection, nofile: u64) -> ConnectionSettings {
        ConnectionSettings {
            header_read_timeout: millis(server.header_read_timeout_ms, DEFAULT_HEADER_READ_TIMEOUT),
            body_idle_timeout: millis(server.body_idle_timeout_ms, DEFAULT_BODY_IDLE_TIMEOUT),
            write_timeout: millis(server.write_timeout_ms, DEFAULT_WRITE_TIMEOUT),
            keepalive_idle: server
                .keepalive_idle_secs
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_KEEPALIVE_IDLE),
            tls_handshake_timeout: millis(
                server.tls_handshake_timeout_ms,
                DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            ),
            max_connections: server
                .max_connections
                .unwrap_or_else(|| default_max_connections(nofile)),
        }
    }
}

/// Problems with the connection keys of `server`, as (key, message) pairs.
pub fn check_connection_settings(server: &ServerSection) -> Vec<(&'static str, String)> {
    let max_ms = MAX_TIMEOUT.as_millis() as u64;
    let mut problems = Vec::new();
    for (key, value) in [
        ("header_read_timeout_ms", server.header_read_timeout_ms),
        ("body_idle_timeout_ms", server.body_idle_timeout_ms),
        ("write_timeout_ms", server.write_timeout_ms),
        ("tls_handshake_timeout_ms", server.tls_handshake_timeout_ms),
    ] {
        if let Some(v) = value
            && (v == 0 || v > max_ms)
        {
            problems.push((
                key,
                format!("must be between 1 and {max_ms} milliseconds (one day), not {v}"),
            ));
        }
    }
    if let Some(v) = server.keepalive_idle_secs
        && (v == 0 || v > MAX_TIMEOUT.as_secs())
    {
        problems.push((
            "keepalive_idle_secs",
            format!(
                "must be between 1 and {} seconds (one day), not {v}",
                MAX_TIMEOUT.as_secs()
            ),
        ));
    }
    if server.max_connections == Some(0) {
        problems.push((
            "max_connections",
            "must be at least 1 (leave it out to derive it from the file-descriptor limit)".into(),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_nginx_like_and_the_limit_leaves_a_reserve() {
        let s = ConnectionSettings::resolve(&ServerSection::default(), 20_000);
        assert_eq!(s.header_read_timeout, Duration::from_secs(60));
        assert_eq!(s.keepalive_idle, Duration::from_secs(75));
        assert_eq!(s.tls_handshake_timeout, Duration::from_secs(10));
        assert_eq!(s.max_connections, (20_000 - 128) / 2);
        assert_eq!(default_max_connections(10), 1);
    }

    #[test]
    fn manifest_values_win_and_impossible_ones_are_refused() {
        let server = ServerSection {
            header_read_timeout_ms: Some(500),
            keepalive_idle_secs: Some(0),
            write_timeout_ms: Some(u64::MAX),
            max_connections: Some(0),
            ..Default::default()
        };
        let s = ConnectionSettings::resolve(&server, 1024);
        assert_eq!(s.header_read_timeout, Duration::from_millis(500));
        let keys: Vec<_> = check_connection_settings(&server)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            ["write_timeout_ms", "keepalive_idle_secs", "max_connections"]
        );
    }
}
