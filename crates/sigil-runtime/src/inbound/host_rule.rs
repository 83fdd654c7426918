//! The Host/SNI rule: a request must be for the hostname its connection was
//! authenticated for. A pure function, so every case is a table row.

use crate::config::ClientCertMode;

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
