//! `allowed_outbound_hosts` entries: which origins a worker may call.

/// An origin a worker may call, from `allowed_outbound_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    /// `http`, `https`, or `None` for any.
    pub scheme: Option<String>,
    /// Host (lower case), `*.suffix` for subdomains, or `*` for any.
    pub host: String,
    /// Port, or `None` for the scheme's default (any port when the host is `*`).
    pub port: Option<u16>,
    /// Whether any port matches (`:*`).
    pub any_port: bool,
    /// `host` as an IPv6 address, parsed once: compared as an address
    /// (`::ffff:127.0.0.1` is the URL parser's `::ffff:7f00:1`).
    ipv6: Option<std::net::Ipv6Addr>,
}

impl AllowedOrigin {
    /// Whether this entry names one host (or address) rather than a pattern
    /// (`*`, `*.suffix`): only such an entry opens internal addresses.
    pub fn is_explicit(&self) -> bool {
        self.host != "*" && !self.host.starts_with("*.")
    }

    /// The host name this entry names explicitly (lower case), if it names
    /// one (not a pattern, not an IP address).
    pub fn explicit_name(&self) -> Option<&str> {
        (self.is_explicit() && self.host.parse::<std::net::IpAddr>().is_err())
            .then_some(self.host.as_str())
    }

    /// Whether a request to `scheme://host:port` is allowed by this entry.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if let Some(s) = &self.scheme
            && s != scheme
        {
            return false;
        }
        let host_ok = if self.host == "*" {
            true
        } else if let Some(suffix) = self.host.strip_prefix("*.") {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        } else if let Some(ip) = self.ipv6 {
            host.parse() == Ok(ip)
        } else {
            self.host.eq_ignore_ascii_case(host)
        };
        if !host_ok {
            return false;
        }
        if self.any_port || (self.host == "*" && self.port.is_none()) {
            return true;
        }
        let default_port = match scheme {
            "http" => 80,
            _ => 443,
        };
        self.port.unwrap_or(default_port) == port
    }
}

/// Parse one `allowed_outbound_hosts` entry.
pub fn parse_allowed_origin(entry: &str) -> Result<AllowedOrigin, String> {
    if entry == "*" {
        return Ok(AllowedOrigin {
            scheme: None,
            host: "*".into(),
            port: None,
            any_port: true,
            ipv6: None,
        });
    }
    let (scheme, rest) = entry.split_once("://").ok_or_else(|| {
        format!("\"{entry}\" needs a scheme: write \"https://{entry}\" (or \"*://{entry}\")")
    })?;
    let scheme = match scheme {
        "http" | "https" => Some(scheme.to_string()),
        "*" => None,
        other => {
            return Err(format!(
                "\"{entry}\": scheme \"{other}\" is not http, https or *"
            ));
        }
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(format!(
            "\"{entry}\": give an origin (scheme://host[:port]), not a path"
        ));
    }
    if rest.contains('@') {
        return Err(format!(
            "\"{entry}\": an origin has no user or password (\"user@\"); give scheme://host[:port], and send credentials in the request"
        ));
    }
    let (host, port) = split_host_port(rest).map_err(|why| format!("\"{entry}\": {why}"))?;
    if let Some(why) = host_problem(host) {
        return Err(format!("\"{entry}\": {why}"));
    }
    let (port, any_port) = match port {
        None => (None, false),
        Some("*") => (None, true),
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(format!(
                    "\"{entry}\": port \"{p}\" is not a port number (1-65535) or *"
                ));
            }
            Ok(n) => (Some(n), false),
        },
    };
    Ok(AllowedOrigin {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        any_port,
        ipv6: host.parse().ok(),
    })
}

/// `host[:port]` or `[ipv6][:port]`: the host (without brackets) and the
/// port text, if any.
fn split_host_port(rest: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(bracketed) = rest.strip_prefix('[') {
        let (ip, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ']'")?;
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("\"[{ip}]\" is not an IPv6 address"));
        }
        return match after {
            "" => Ok((ip, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((ip, Some(port))),
                None => Err(format!("unexpected \"{after}\" after the IPv6 address")),
            },
        };
    }
    match rest.split_once(':') {
        None => Ok((rest, None)),
        Some((host, port)) if !port.contains(':') => Ok((host, Some(port))),
        Some(_) => Err("write an IPv6 address in brackets, e.g. https://[::1]:8443".into()),
    }
}

/// What is wrong with an allow-list host (a name, `*`, `*.suffix` or an IP
/// address), if anything: one that can never match a request is refused.
fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("the host is empty".into());
    }
    if host == "*" || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.contains('*') {
        return Some(
            "'*' may only be the whole host (\"https://*\") or its first label (\"https://*.example.com\")".into(),
        );
    }
    if let Some(bare) = name.strip_suffix('.') {
        return Some(format!(
            "drop the trailing dot (write \"{}\"): requests are matched without it",
            host.strip_suffix('.').unwrap_or(bare)
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Some(format!(
            "\"{host}\" is not a host name (letters, digits, '-', '_' and dots; no empty label, labels of at most 63) or an IP address"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_origins() {
        let o = parse_allowed_origin("https://api.example:8443").unwrap();
        assert!(o.allows("https", "api.example", 8443));
        assert!(!o.allows("https", "api.example", 443));
        assert!(!o.allows("http", "api.example", 8443));
        let o = parse_allowed_origin("https://*.example").unwrap();
        assert!(o.allows("https", "a.example", 443));
        assert!(!o.allows("https", "example", 443));
        assert!(!o.allows("https", "aexample", 443));
        let o = parse_allowed_origin("*://127.0.0.1:*").unwrap();
        assert!(o.allows("http", "127.0.0.1", 1234));
        assert!(parse_allowed_origin("*").unwrap().allows("https", "x", 1));
        assert!(parse_allowed_origin("api.example").is_err());
        assert!(parse_allowed_origin("ftp://x").is_err());
    }

    #[test]
    fn wildcards_only_as_the_first_label_and_no_userinfo() {
        // Before: accepted (a middle '*' matched nothing as the docs define
        // it) and, for userinfo, "port \"p@x.example\" is not a number".
        for entry in [
            "https://a.*.example",
            "https://*.*.example",
            "https://ex*.com",
        ] {
            let err = parse_allowed_origin(entry).unwrap_err();
            assert!(
                err.contains("'*' may only be the whole host"),
                "{entry}: {err}"
            );
        }
        for entry in ["https://u:p@x.example", "https://u@x.example:443"] {
            let err = parse_allowed_origin(entry).unwrap_err();
            assert!(err.contains("no user or password"), "{entry}: {err}");
        }
        assert!(parse_allowed_origin("https://*.a.example:*").is_ok());
        assert!(parse_allowed_origin("*://*:8443").is_ok());
    }

    #[test]
    fn ipv6_origins_and_hosts_that_could_never_match() {
        // Before: "https://[::1]" failed with 'port "1]" is not a number',
        // and the entries below were accepted and matched nothing.
        for (entry, port) in [
            ("https://[::1]", None),
            ("https://[2001:db8::1]:8443", Some(8443)),
            ("*://[::1]:*", None),
        ] {
            let o = parse_allowed_origin(entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
            assert_eq!(o.port, port, "{entry}");
        }
        assert!(
            parse_allowed_origin("https://[::1]")
                .unwrap()
                .allows("https", "::1", 443)
        );
        for (entry, says) in [
            ("https://example.com.", "drop the trailing dot"),
            ("https://exa mple.com", "is not a host name"),
            ("https://example.com?x=1", "is not a host name"),
            ("https://example.com#f", "is not a host name"),
            ("https://[::1", "closing ']'"),
            ("https://::1", "in brackets"),
            ("https://%2a.example.com", "is not a host name"),
            ("https://*.", "is not a host name"),
            ("https://.example.com", "is not a host name"),
            ("https://example..com", "is not a host name"),
            ("https://example.com:0", "is not a port number"),
            ("https://[fe80::zz]", "is not an IPv6 address"),
        ] {
            let err = parse_allowed_origin(entry).expect_err(entry);
            assert!(err.contains(says), "{entry}: {err}");
        }
        assert!(parse_allowed_origin("http://my_service:8080").is_ok());
        // Before: written one way and requested (as the URL parser spells
        // it) another, an IPv6 entry never matched.
        let o = parse_allowed_origin("http://[::ffff:127.0.0.1]:*").unwrap();
        assert!(o.allows("http", "::ffff:7f00:1", 8080));
    }
}
