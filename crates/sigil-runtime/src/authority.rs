//! One strict parser for an HTTP authority (`host[:port]`).
//!
//! The same function reads the TLS SNI ([`parse_sni`]), the `Host` header,
//! the HTTP/2 `:authority` pseudo-header and the authority of an
//! absolute-form request target ([`parse_authority`]), so that a hostname
//! compared across those places is always spelled the same way.
//!
//! # What is accepted
//!
//! * a DNS hostname (RFC 3986 `reg-name` narrowed to RFC 1123 "LDH"
//!   labels, plus `_` as nginx accepts it — configured hostnames are LDH,
//!   so such a name can only ever match a `*` route): labels of ASCII
//!   letters, digits, `-` and `_`, 1..=63 bytes each,
//!   not starting or ending with `-`, at most 253 bytes in total. A single
//!   trailing dot is removed (`pay.alpha.example.` is `pay.alpha.example`);
//!   the name is lowercased. Internationalised names must be sent as
//!   A-labels (`xn--…`), as HTTP/1.1 and TLS require;
//! * an IPv4 address in dotted-quad form (`192.0.2.1`);
//! * an IPv6 address in brackets (`[2001:db8::1]`), stored canonically
//!   (RFC 5952 text, lowercase);
//! * an optional port: `:` followed by 1..=5 decimal digits with no leading
//!   zero, value 1..=65535.
//!
//! # What is refused (each with its own [`AuthorityError`])
//!
//! Empty input; whitespace, control and non-ASCII bytes; percent-encoding
//! (`%`); userinfo (`user@host`); empty labels (`a..b`, `.a`, `a..`);
//! every character outside letters, digits, `-`, `_` and `.`; a last
//! label that is numeric (`1.2.3.256`, `example.123`, `0x7f.1`) but does not
//! form a valid dotted-quad IPv4 address — browsers read such names as IPv4
//! numbers, so accepting them would let two parsers disagree; a trailing dot
//! after an IP address; an unclosed `[`; bracket contents that are not IPv6
//! (IPvFuture, zone identifiers); an empty port (`host:`), a port with a
//! sign, letters, a leading zero, or outside 1..=65535; more than one `:`
//! outside brackets (`host:80:80`, an unbracketed IPv6 address).
//!
//! # Decisions
//!
//! * **Empty port is refused.** RFC 3986's grammar (`port = *DIGIT`) allows
//!   `host:`, but §6.2.3 says normalisers should drop it and no real client
//!   sends it; refusing it keeps exactly one spelling per authority.
//! * **Leading zeros in the port are refused** for the same reason
//!   (`:080` would otherwise equal `:80`).
//! * **SNI never carries an IP address or a port** (RFC 6066 §3):
//!   [`parse_sni`] refuses both, and otherwise applies the same name rules,
//!   including the trailing-dot normalisation.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest hostname accepted, in bytes, without the optional trailing dot
/// (RFC 1035 §2.3.4 as clarified by RFC 2181 §11: 255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;

/// Longest label accepted, in bytes (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// The host part of an authority, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS hostname: lowercase, without a trailing dot.
    Name(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

impl Host {
    /// The normalised text used for lookups and comparisons: the lowercase
    /// name without trailing dot, the dotted-quad IPv4 address, or the
    /// canonical IPv6 text *without* brackets (`2001:db8::1`).
    ///
    /// Borrowed for names; IP addresses are formatted on each call.
    pub fn as_str(&self) -> Cow<'_, str> {
        match self {
            Host::Name(name) => Cow::Borrowed(name),
            Host::Ip(ip) => Cow::Owned(ip.to_string()),
        }
    }

    /// Whether this host is an IP address literal.
    pub fn is_ip(&self) -> bool {
        matches!(self, Host::Ip(_))
    }
}

/// Formats the host as it appears in an authority: IPv6 in brackets.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// A parsed, normalised authority.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority {
    /// The host.
    pub host: Host,
    /// The port, when one was given (never 0).
    pub port: Option<u16>,
}

/// Formats the normalised authority: `host`, `host:port`, `[v6]:port`.
impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

/// Why an authority or SNI value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorityError {
    /// The input is empty.
    Empty,
    /// The host part is empty (e.g. `:443`).
    EmptyHost,
    /// A whitespace, control or non-ASCII byte.
    ForbiddenByte {
        /// The byte.
        byte: u8,
        /// Its offset in the input.
        at: usize,
    },
    /// A `%`: percent-encoding is not allowed in a host.
    PercentEncoded {
        /// Offset of the `%`.
        at: usize,
    },
    /// A `@`: userinfo is not allowed.
    Userinfo,
    /// A hostname with an empty label (`a..b`, `.a`, or two trailing dots).
    EmptyLabel,
    /// A label longer than [`MAX_LABEL_LEN`].
    LabelTooLong {
        /// The label's length in bytes.
        len: usize,
    },
    /// A hostname longer than [`MAX_NAME_LEN`].
    NameTooLong {
        /// The name's length in bytes (without a trailing dot).
        len: usize,
    },
    /// A character that is not a letter, digit, `-` or `.` in a hostname.
    InvalidNameChar {
        /// The character.
        ch: char,
    },
    /// A label that starts or ends with `-`.
    HyphenAtLabelEdge,
    /// A hostname whose last label is numeric but that is not a valid
    /// dotted-quad IPv4 address.
    NumericNotIpv4,
    /// An IPv4 address followed by a dot.
    TrailingDotOnIp,
    /// A `[` without its `]`.
    UnclosedBracket,
    /// Bracket contents that are not an IPv6 address.
    InvalidIpv6,
    /// Something other than `:port` after `]`.
    JunkAfterBracket,
    /// More than one `:` outside brackets.
    ExtraColon,
    /// A `:` with no port after it.
    EmptyPort,
    /// A port with a character that is not a decimal digit.
    PortNotDecimal,
    /// A port written with a leading zero.
    PortLeadingZero,
    /// A port of 0 or above 65535.
    PortOutOfRange,
    /// A `:` in SNI (SNI carries neither a port nor an IPv6 literal).
    ColonInSni,
    /// An IP address in SNI (RFC 6066 allows only hostnames).
    IpInSni,
}

impl fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AuthorityError as E;
        match self {
            E::Empty => f.write_str("the authority is empty"),
            E::EmptyHost => f.write_str("the host is empty"),
            E::ForbiddenByte { byte, at } => write!(
                f,
                "byte 0x{byte:02x} at offset {at} is not allowed: whitespace, control characters \
                 and non-ASCII bytes are refused (send internationalised names as xn-- A-labels)"
            ),
            E::PercentEncoded { at } => write!(
                f,
                "'%' at offset {at}: percent-encoding is not allowed in a host"
            ),
            E::Userinfo => f.write_str("'@': userinfo (user@host) is not allowed"),
            E::EmptyLabel => f.write_str(
                "the hostname has an empty label (two dots in a row, a leading dot, \
                 or more than one trailing dot)",
            ),
            E::LabelTooLong { len } => write!(
                f,
                "a hostname label is {len} bytes long; the limit is {MAX_LABEL_LEN}"
            ),
            E::NameTooLong { len } => write!(
                f,
                "the hostname is {len} bytes long; the limit is {MAX_NAME_LEN}"
            ),
            E::InvalidNameChar { ch } => write!(
                f,
                "{ch:?} is not allowed in a hostname (only letters, digits, '-' and '.')"
            ),
            E::HyphenAtLabelEdge => f.write_str("a hostname label starts or ends with '-'"),
            E::NumericNotIpv4 => f.write_str(
                "the hostname ends in a numeric label but is not a valid dotted-quad IPv4 address",
            ),
            E::TrailingDotOnIp => f.write_str("an IPv4 address cannot end with '.'"),
            E::UnclosedBracket => f.write_str("'[' is not closed by ']'"),
            E::InvalidIpv6 => f.write_str(
                "the text in brackets is not an IPv6 address (zone identifiers and IPvFuture \
                 are not supported)",
            ),
            E::JunkAfterBracket => f.write_str("only ':port' may follow ']'"),
            E::ExtraColon => f.write_str(
                "more than one ':' (an IPv6 address must be in brackets, and only one port is allowed)",
            ),
            E::EmptyPort => f.write_str("':' is not followed by a port"),
            E::PortNotDecimal => f.write_str("the port is not a decimal number"),
            E::PortLeadingZero => f.write_str("the port has a leading zero"),
            E::PortOutOfRange => f.write_str("the port is not between 1 and 65535"),
            E::ColonInSni => f.write_str("SNI cannot contain ':' (no port and no IPv6 literal)"),
            E::IpInSni => f.write_str("SNI cannot be an IP address (RFC 6066)"),
        }
    }
}

impl std::error::Error for AuthorityError {}

/// Parses an authority (`host`, `host:port`, `[v6]`, `[v6]:port`) from a
/// `Host` header, an HTTP/2 `:authority`, or an absolute-form request
/// target, and normalises it. See the module documentation for the rules.
pub fn parse_authority(input: &[u8]) -> Result<Authority, AuthorityError> {
    check_bytes(input)?;
    if let Some(rest) = input.strip_prefix(b"[") {
        let close = rest
            .iter()
            .position(|&b| b == b']')
            .ok_or(AuthorityError::UnclosedBracket)?;
        let (inside, after) = rest.split_at(close);
        let ip = ascii(inside)
            .parse::<Ipv6Addr>()
            .map_err(|_| AuthorityError::InvalidIpv6)?;
        let port = match after.get(1..) {
            Some([]) | None => None,
            Some([b':', port @ ..]) => Some(parse_port(port)?),
            Some(_) => return Err(AuthorityError::JunkAfterBracket),
        };
        return Ok(Authority {
            host: Host::Ip(IpAddr::V6(ip)),
            port,
        });
    }
    let mut parts = input.splitn(3, |&b| b == b':');
    let host = parts.next().unwrap_or_default();
    let port = parts.next();
    if parts.next().is_some() {
        return Err(AuthorityError::ExtraColon);
    }
    let host = parse_host(host)?;
    let port = port.map(parse_port).transpose()?;
    Ok(Authority { host, port })
}

/// Parses a TLS SNI value: a hostname only (RFC 6066 allows neither an IP
/// address nor a port). The same name rules and normalisation as
/// [`parse_authority`] apply; the result is always [`Host::Name`].
pub fn parse_sni(name: &str) -> Result<Host, AuthorityError> {
    let input = name.as_bytes();
    check_bytes(input)?;
    if input.first() == Some(&b'[') {
        return Err(AuthorityError::IpInSni);
    }
    if input.contains(&b':') {
        return Err(AuthorityError::ColonInSni);
    }
    match parse_host(input)? {
        Host::Ip(_) => Err(AuthorityError::IpInSni),
        host => Ok(host),
    }
}

/// Refuses empty input, whitespace, control and non-ASCII bytes, `%` and `@`.
fn check_bytes(input: &[u8]) -> Result<(), AuthorityError> {
    if input.is_empty() {
        return Err(AuthorityError::Empty);
    }
    for (at, &byte) in input.iter().enumerate() {
        if byte <= b' ' || byte >= 0x7f {
            return Err(AuthorityError::ForbiddenByte { byte, at });
        }
        if byte == b'%' {
            return Err(AuthorityError::PercentEncoded { at });
        }
    }
    if input.contains(&b'@') {
        return Err(AuthorityError::Userinfo);
    }
    Ok(())
}

/// The bytes as text; only called after [`check_bytes`] (all ASCII).
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("\u{fffd}")
}

/// Parses a hostname or IPv4 address (no brackets, no port).
fn parse_host(host: &[u8]) -> Result<Host, AuthorityError> {
    if host.is_empty() {
        return Err(AuthorityError::EmptyHost);
    }
    let (name, trailing_dot) = match host.strip_suffix(b".") {
        Some(stripped) => (stripped, true),
        None => (host, false),
    };
    if name.is_empty() {
        return Err(AuthorityError::EmptyLabel);
    }
    let mut last_label: &[u8] = &[];
    for label in name.split(|&b| b == b'.') {
        if label.is_empty() {
            return Err(AuthorityError::EmptyLabel);
        }
        if let Some(&bad) = label
            .iter()
            .find(|b| !(b.is_ascii_alphanumeric() || **b == b'-' || **b == b'_'))
        {
            return Err(AuthorityError::InvalidNameChar {
                ch: char::from(bad),
            });
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(AuthorityError::LabelTooLong { len: label.len() });
        }
        if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
            return Err(AuthorityError::HyphenAtLabelEdge);
        }
        last_label = label;
    }
    if name.len() > MAX_NAME_LEN {
        return Err(AuthorityError::NameTooLong { len: name.len() });
    }
    if is_numeric_label(last_label) {
        let ip = ascii(name)
            .parse::<Ipv4Addr>()
            .map_err(|_| AuthorityError::NumericNotIpv4)?;
        if trailing_dot {
            return Err(AuthorityError::TrailingDotOnIp);
        }
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    Ok(Host::Name(ascii(name).to_ascii_lowercase()))
}

/// Whether a label reads as a number to a WHATWG URL parser: all decimal
/// digits, or `0x`/`0X` followed by hex digits.
fn is_numeric_label(label: &[u8]) -> bool {
    if !label.is_empty() && label.iter().all(u8::is_ascii_digit) {
        return true;
    }
    match label {
        [b'0', b'x' | b'X', hex @ ..] => hex.iter().all(u8::is_ascii_hexdigit),
        _ => false,
    }
}

/// Parses a port: 1..=5 decimal digits, no leading zero, 1..=65535.
fn parse_port(port: &[u8]) -> Result<u16, AuthorityError> {
    if port.is_empty() {
        return Err(AuthorityError::EmptyPort);
    }
    if !port.iter().all(u8::is_ascii_digit) {
        return Err(AuthorityError::PortNotDecimal);
    }
    if port.len() > 1 && port.first() == Some(&b'0') {
        return Err(AuthorityError::PortLeadingZero);
    }
    if port.len() > 5 {
        return Err(AuthorityError::PortOutOfRange);
    }
    match ascii(port).parse::<u32>() {
        Ok(n @ 1..=65535) => u16::try_from(n).map_err(|_| AuthorityError::PortOutOfRange),
        _ => Err(AuthorityError::PortOutOfRange),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthorityError as E;

    fn name(s: &str) -> Host {
        Host::Name(s.to_string())
    }

    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().expect("test IP"))
    }

    #[test]
    fn accepted_authorities() {
        let long_label = "a".repeat(63);
        let long_name = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
        assert_eq!(long_name.len(), 253);
        let cases: Vec<(String, Host, Option<u16>, &str)> = vec![
            (
                "pay.alpha.example".into(),
                name("pay.alpha.example"),
                None,
                "pay.alpha.example",
            ),
            (
                "pay.alpha.example.".into(),
                name("pay.alpha.example"),
                None,
                "pay.alpha.example",
            ),
            (
                "pay.alpha.example.:443".into(),
                name("pay.alpha.example"),
                Some(443),
                "pay.alpha.example",
            ),
            (
                "PAY.Alpha.EXAMPLE".into(),
                name("pay.alpha.example"),
                None,
                "pay.alpha.example",
            ),
            (
                "Pay.Alpha.Example:8443".into(),
                name("pay.alpha.example"),
                Some(8443),
                "pay.alpha.example",
            ),
            ("localhost".into(), name("localhost"), None, "localhost"),
            (
                "xn--bcher-kva.example".into(),
                name("xn--bcher-kva.example"),
                None,
                "xn--bcher-kva.example",
            ),
            (
                "a-b.c-d.example:1".into(),
                name("a-b.c-d.example"),
                Some(1),
                "a-b.c-d.example",
            ),
            (
                "3com.example".into(),
                name("3com.example"),
                None,
                "3com.example",
            ),
            ("host:65535".into(), name("host"), Some(65535), "host"),
            ("192.0.2.1".into(), ip("192.0.2.1"), None, "192.0.2.1"),
            (
                "192.0.2.1:80".into(),
                ip("192.0.2.1"),
                Some(80),
                "192.0.2.1",
            ),
            ("[::1]".into(), ip("::1"), None, "::1"),
            ("[::1]:8443".into(), ip("::1"), Some(8443), "::1"),
            (
                "[2001:DB8:0:0:0:0:0:1]:443".into(),
                ip("2001:db8::1"),
                Some(443),
                "2001:db8::1",
            ),
            (
                "[::ffff:192.0.2.1]".into(),
                ip("::ffff:192.0.2.1"),
                None,
                "::ffff:192.0.2.1",
            ),
            (
                format!("{long_label}.example"),
                name(&format!("{long_label}.example")),
                None,
                "",
            ),
            (long_name.clone(), name(&long_name), None, ""),
            (format!("{long_name}."), name(&long_name), None, ""),
        ];
        for (input, host, port, text) in cases {
            let got = parse_authority(input.as_bytes())
                .unwrap_or_else(|e| panic!("{input:?} was refused: {e}"));
            assert_eq!(
                got,
                Authority {
                    host: host.clone(),
                    port
                },
                "{input:?}"
            );
            if !text.is_empty() {
                assert_eq!(got.host.as_str(), text, "{input:?}");
            }
        }
    }

    #[test]
    fn refused_authorities() {
        let long_label = format!("{}.example", "a".repeat(64));
        let long_name = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(62));
        let very_long = "a.".repeat(5000) + "example";
        let cases: Vec<(&[u8], AuthorityError)> = vec![
            (b"", E::Empty),
            (b":443", E::EmptyHost),
            (b"a..", E::EmptyLabel),
            (b"a..b", E::EmptyLabel),
            (b".a", E::EmptyLabel),
            (b".", E::EmptyLabel),
            (b"pay.alpha.example..", E::EmptyLabel),
            (b"host:abc", E::PortNotDecimal),
            (b"host:+80", E::PortNotDecimal),
            (b"host:-1", E::PortNotDecimal),
            (b"host:0", E::PortOutOfRange),
            (b"host:65536", E::PortOutOfRange),
            (b"host:99999999999999999999", E::PortOutOfRange),
            (b"host:080", E::PortLeadingZero),
            (b"host:", E::EmptyPort),
            (b"host:80:80", E::ExtraColon),
            (b"::1", E::ExtraColon),
            (b"x@host", E::Userinfo),
            (b"user:pass@host", E::Userinfo),
            (b"[::1", E::UnclosedBracket),
            (b"[::1]x", E::JunkAfterBracket),
            (b"[::1]:", E::EmptyPort),
            (b"[::1]:0", E::PortOutOfRange),
            (b"[::1]:80:80", E::PortNotDecimal),
            (b"[192.0.2.1]", E::InvalidIpv6),
            (b"[v1.fe]", E::InvalidIpv6),
            (b"[]", E::InvalidIpv6),
            (b"[fe80::1%25eth0]", E::PercentEncoded { at: 8 }),
            (b"st*r.example", E::InvalidNameChar { ch: '*' }),
            (b"a/b", E::InvalidNameChar { ch: '/' }),
            (b"a]b", E::InvalidNameChar { ch: ']' }),
            (b"-a.example", E::HyphenAtLabelEdge),
            (b"a-.example", E::HyphenAtLabelEdge),
            (b"pay%2ealpha.example", E::PercentEncoded { at: 3 }),
            (b"pay alpha", E::ForbiddenByte { byte: b' ', at: 3 }),
            (b" pay.example", E::ForbiddenByte { byte: b' ', at: 0 }),
            (
                b"pay.example\t",
                E::ForbiddenByte {
                    byte: b'\t',
                    at: 11,
                },
            ),
            (b"pay\0.example", E::ForbiddenByte { byte: 0, at: 3 }),
            (b"pay\r\n.example", E::ForbiddenByte { byte: b'\r', at: 3 }),
            (b"a\x7fb", E::ForbiddenByte { byte: 0x7f, at: 1 }),
            (
                "b\u{fc}cher.example".as_bytes(),
                E::ForbiddenByte { byte: 0xc3, at: 1 },
            ),
            (b"\xff", E::ForbiddenByte { byte: 0xff, at: 0 }),
            (long_label.as_bytes(), E::LabelTooLong { len: 64 }),
            (long_name.as_bytes(), E::NameTooLong { len: 254 }),
            (
                very_long.as_bytes(),
                E::NameTooLong {
                    len: very_long.len(),
                },
            ),
            (b"256.1.1.1", E::NumericNotIpv4),
            (b"1.2.3", E::NumericNotIpv4),
            (b"01.2.3.4", E::NumericNotIpv4),
            (b"example.123", E::NumericNotIpv4),
            (b"0x7f.1", E::NumericNotIpv4),
            (b"1.2.3.0x4", E::NumericNotIpv4),
            (b"192.0.2.1.", E::TrailingDotOnIp),
        ];
        for (input, want) in cases {
            let got = parse_authority(input);
            assert_eq!(got, Err(want), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn sni() {
        let ok = [
            ("pay.alpha.example", "pay.alpha.example"),
            ("pay.alpha.example.", "pay.alpha.example"),
            ("PAY.alpha.Example", "pay.alpha.example"),
        ];
        for (input, want) in ok {
            assert_eq!(parse_sni(input), Ok(name(want)), "{input:?}");
        }
        let refused = [
            ("", E::Empty),
            ("pay.alpha.example:443", E::ColonInSni),
            ("::1", E::ColonInSni),
            ("[::1]", E::IpInSni),
            ("192.0.2.1", E::IpInSni),
            ("a..", E::EmptyLabel),
            ("x@pay.alpha.example", E::Userinfo),
            ("st*r.example", E::InvalidNameChar { ch: '*' }),
            (
                "pay.alpha.example ",
                E::ForbiddenByte { byte: b' ', at: 17 },
            ),
        ];
        for (input, want) in refused {
            assert_eq!(parse_sni(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn sni_and_host_header_agree() {
        // The same name reached through SNI and through Host must compare equal.
        for (sni, host) in [
            ("pay.alpha.example.", "PAY.ALPHA.EXAMPLE:443"),
            ("Pay.Alpha.Example", "pay.alpha.example."),
        ] {
            let from_sni = parse_sni(sni).expect("sni");
            let from_host = parse_authority(host.as_bytes()).expect("host").host;
            assert_eq!(from_sni.as_str(), from_host.as_str(), "{sni} vs {host}");
        }
    }

    #[test]
    fn display_round_trips() {
        for (input, shown) in [
            ("Pay.Example.:443", "pay.example:443"),
            ("[2001:db8:0::1]:8443", "[2001:db8::1]:8443"),
            ("[::1]", "[::1]"),
            ("192.0.2.1:80", "192.0.2.1:80"),
        ] {
            let parsed = parse_authority(input.as_bytes()).expect("valid");
            assert_eq!(parsed.to_string(), shown);
            assert_eq!(parse_authority(shown.as_bytes()), Ok(parsed), "{shown}");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (input, words) in [
            (&b"x@host"[..], "userinfo"),
            (b"host:0", "between 1 and 65535"),
            (b"a..", "empty label"),
            (b"[::1", "not closed"),
            (b"pay%2e", "percent-encoding"),
            (b"a*b", "'*'"),
        ] {
            let err = parse_authority(input).expect_err("refused");
            assert!(err.to_string().contains(words), "{err} lacks {words:?}");
        }
    }
}
