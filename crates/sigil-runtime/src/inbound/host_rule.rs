//! The Host/SNI rule, as pure functions so every case is a table row:
//! which authority a request is for ([`authority_of`]: one `Host`, and an
//! absolute-form target or HTTP/2 `:authority` that agrees with it, all read
//! by the one strict parser in [`crate::authority`]), and whether it may be
//! served on its connection ([`check`]: a request must be for the hostname
//! its connection was authenticated for).

use crate::authority::{Authority, parse_authority};
use crate::config::ClientCertMode;
use http::{HeaderValue, Version};

/// Why a request's authority cannot be read (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAuthority(pub String);

/// The authority a request is for.
///
/// `target` is the authority of the request target (absolute-form in
/// HTTP/1.1, `:authority` in HTTP/2), `hosts` every `Host` header, `scheme`
/// the connection's (`http`/`https`, for the default port). Refused: no
/// authority at all (or no `Host` in HTTP/1.1), more than one `Host`
/// (RFC 9112 §3.2), a target authority that differs from `Host` (RFC 9112
/// §3.2.2, RFC 9113 §8.3.1), and anything the strict parser refuses.
pub fn authority_of(
    version: Version,
    target: Option<&str>,
    hosts: &[&HeaderValue],
    scheme: &str,
) -> Result<Authority, BadAuthority> {
    let bad = |m: String| Err(BadAuthority(m));
    let parse = |what: &str, raw: &[u8]| {
        parse_authority(raw).map_err(|e| {
            BadAuthority(format!(
                "invalid {what} {:?}: {e}",
                String::from_utf8_lossy(raw)
            ))
        })
    };
    let host = match hosts {
        [] => None,
        [one] => Some(parse("Host", one.as_bytes())?),
        _ => return bad("more than one Host header".into()),
    };
    let target = target
        .map(|t| parse("request target authority", t.as_bytes()))
        .transpose()?;
    match (target, host) {
        (Some(t), Some(h)) if !same_authority(&t, &h, scheme) => bad(format!(
            "the request target is for {t} but the Host header says {h}"
        )),
        (Some(_), None) if version == Version::HTTP_11 => {
            bad("an HTTP/1.1 request needs a Host header".into())
        }
        (Some(t), _) => Ok(t),
        (None, Some(h)) => Ok(h),
        (None, None) => bad("the request has no Host header".into()),
    }
}

/// Whether two authorities name the same host and port (a missing port is
/// the scheme's default).
fn same_authority(a: &Authority, b: &Authority, scheme: &str) -> bool {
    let default = if scheme == "https" { 443 } else { 80 };
    a.host == b.host && a.port.unwrap_or(default) == b.port.unwrap_or(default)
}

/// How the connection a request arrived on was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authenticated<'a> {
    /// Plain HTTP: no hostname.
    Plain,
    /// TLS whose SNI named this hostname.
    Sni(&'a str),
    /// TLS under the default hostname's policy (no SNI, or an unknown one).
    Default(&'a str),
}

/// Why a request may not be served on its connection (answered with 421).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misdirected(pub String);

/// Whether a request for `host` may be served on a connection authenticated
/// as `conn`; `mode_of` gives the client-certificate mode of a configured
/// hostname (`None` when `host` has no policy).
pub fn check(
    conn: Authenticated<'_>,
    host: &str,
    mode_of: impl Fn(&str) -> Option<ClientCertMode>,
) -> Result<(), Misdirected> {
    match conn {
        Authenticated::Sni(authenticated) if host != authenticated => Err(Misdirected(format!(
            "misdirected request: this connection was established for {authenticated}, not {host}; open a new connection for {host}"
        ))),
        Authenticated::Default(authenticated)
            if host != authenticated && mode_of(host).is_some() =>
        {
            Err(Misdirected(format!(
                "misdirected request: {host} requires its own TLS connection with SNI {host}"
            )))
        }
        Authenticated::Plain if mode_of(host).is_some_and(|m| m != ClientCertMode::Off) => Err(
            Misdirected(format!("{host} requires HTTPS with a client certificate")),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClientCertMode::*;

    fn mode_of(host: &str) -> Option<ClientCertMode> {
        match host {
            "mtls.example" => Some(Require),
            "opt.example" => Some(Optional),
            "open.example" => Some(Off),
            _ => None,
        }
    }

    #[test]
    fn authorities() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        let (a, b, a_dot, a_port) = (
            v("pay.alpha.example"),
            v("pay.beta.example"),
            v("pay.alpha.example."),
            v("pay.alpha.example:443"),
        );
        let h11 = Version::HTTP_11;
        let h2 = Version::HTTP_2;
        let ok = |r: Result<Authority, BadAuthority>| r.map(|a| a.to_string()).ok();
        type Case<'a> = (
            Version,
            Option<&'a str>,
            &'a [&'a HeaderValue],
            Option<&'a str>,
        );
        let cases: &[Case<'_>] = &[
            (h11, None, &[&a], Some("pay.alpha.example")),
            (h11, None, &[&a_dot], Some("pay.alpha.example")),
            (h11, None, &[&a_port], Some("pay.alpha.example:443")),
            (h11, None, &[&a, &a], None),
            (h11, None, &[&a, &b], None),
            (h11, None, &[], None),
            (
                h11,
                Some("pay.alpha.example"),
                &[&a],
                Some("pay.alpha.example"),
            ),
            (
                h11,
                Some("pay.alpha.example"),
                &[&a_port],
                Some("pay.alpha.example"),
            ),
            (h11, Some("pay.beta.example"), &[&a], None),
            (h11, Some("pay.alpha.example"), &[], None),
            (h11, Some("x@pay.alpha.example"), &[&a], None),
            (
                h2,
                Some("pay.alpha.example."),
                &[],
                Some("pay.alpha.example"),
            ),
            (h2, Some("pay.alpha.example"), &[&b], None),
            (
                h2,
                Some("pay.alpha.example"),
                &[&a],
                Some("pay.alpha.example"),
            ),
            (h2, None, &[&a], Some("pay.alpha.example")),
        ];
        for (version, target, hosts, want) in cases {
            assert_eq!(
                ok(authority_of(*version, *target, hosts, "https")).as_deref(),
                *want,
                "{version:?} target {target:?} hosts {hosts:?}"
            );
        }
        for bad in [
            "pay.alpha.example..",
            "pay.alpha.example:abc",
            "x@pay.alpha.example",
            "pay.alpha.example:0",
            "pay alpha",
        ] {
            let h = HeaderValue::from_str(bad).unwrap();
            assert!(authority_of(h11, None, &[&h], "https").is_err(), "{bad}");
        }
    }

    #[test]
    fn table() {
        use Authenticated::*;
        let cases: &[(Authenticated<'_>, &str, bool)] = &[
            // SNI named the hostname: only that hostname.
            (Sni("mtls.example"), "mtls.example", true),
            (Sni("mtls.example"), "open.example", false),
            (Sni("open.example"), "mtls.example", false),
            (Sni("open.example"), "unconfigured.example", false),
            // Default hostname: its own name, and names without a policy.
            (Default("open.example"), "open.example", true),
            (Default("open.example"), "unconfigured.example", true),
            (Default("open.example"), "mtls.example", false),
            (Default("open.example"), "opt.example", false),
            // Plain HTTP: never a hostname that asks for client certificates.
            (Plain, "mtls.example", false),
            (Plain, "opt.example", false),
            (Plain, "open.example", true),
            (Plain, "unconfigured.example", true),
        ];
        for (conn, host, ok) in cases {
            assert_eq!(
                check(*conn, host, mode_of).is_ok(),
                *ok,
                "{conn:?} request for {host}"
            );
        }
    }
}
