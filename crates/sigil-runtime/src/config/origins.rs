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
    let (host, port, any_port) = match rest.rsplit_once(':') {
        Some((h, "*")) => (h, None, true),
        Some((h, p)) if !h.ends_with(']') || p.parse::<u16>().is_ok() => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("\"{entry}\": port \"{p}\" is not a number or *"))?;
            (h, Some(port), false)
        }
        _ => (rest, None, false),
    };
    if host.is_empty() {
        return Err(format!("\"{entry}\": the host is empty"));
    }
    let wildcard_ok = host == "*" || host.strip_prefix("*.").is_some_and(|s| !s.contains('*'));
    if host.contains('*') && !wildcard_ok {
        return Err(format!(
            "\"{entry}\": '*' may only be the whole host (\"https://*\") or its first label (\"https://*.example.com\")"
        ));
    }
    Ok(AllowedOrigin {
        scheme,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
        port,
        any_port,
    })
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
}
