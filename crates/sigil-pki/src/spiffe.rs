//! SPIFFE IDs, validated as `spiffe/spiffe` `standards/SPIFFE-ID.md` requires.
//!
//! A SPIFFE ID is `spiffe://<trust-domain><path>`: the scheme is lowercase
//! `spiffe`, the trust domain is made of lowercase letters, digits, `.`, `-`
//! and `_` (at most 255 bytes), the path is zero or more `/segment`s made of
//! letters, digits, `.`, `-` and `_` (no empty, `.` or `..` segment, no
//! trailing slash), and the whole ID is at most 2048 bytes. Query strings,
//! fragments, ports and user info are not allowed.

use std::fmt;
use std::str::FromStr;

/// The SPIFFE URI scheme prefix.
pub const SCHEME_PREFIX: &str = "spiffe://";
/// Maximum length of a trust domain, in bytes.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// Maximum length of a whole SPIFFE ID, in bytes.
pub const MAX_ID_LEN: usize = 2048;

/// A violated SPIFFE ID rule. Each variant names the offending input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeError {
    /// The ID is the empty string.
    #[error("SPIFFE ID is empty; expected spiffe://<trust-domain>/<path>")]
    Empty,
    /// The ID does not start with `spiffe://`.
    #[error("SPIFFE ID {id:?} must start with \"spiffe://\"")]
    WrongScheme {
        /// The offending ID.
        id: String,
    },
    /// The scheme is `spiffe` but not lowercase.
    #[error("SPIFFE ID {id:?}: the scheme must be lowercase \"spiffe://\"")]
    SchemeNotLowercase {
        /// The offending ID.
        id: String,
    },
    /// The whole ID is longer than 2048 bytes.
    #[error("SPIFFE ID is {len} bytes long; the maximum is 2048 bytes")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The ID has a query string.
    #[error("SPIFFE ID {id:?} must not contain a query (\"?\")")]
    Query {
        /// The offending ID.
        id: String,
    },
    /// The ID has a fragment.
    #[error("SPIFFE ID {id:?} must not contain a fragment (\"#\")")]
    Fragment {
        /// The offending ID.
        id: String,
    },
    /// The authority has user info (`user@`).
    #[error("SPIFFE ID {id:?} must not contain user info (\"user@\") before the trust domain")]
    UserInfo {
        /// The offending ID.
        id: String,
    },
    /// The authority has a port.
    #[error("SPIFFE ID {id:?} must not contain a port (\":<port>\") after the trust domain")]
    Port {
        /// The offending ID.
        id: String,
    },
    /// The trust domain is empty.
    #[error("SPIFFE ID {id:?} has no trust domain; expected spiffe://<trust-domain>/<path>")]
    MissingTrustDomain {
        /// The offending ID.
        id: String,
    },
    /// The trust domain is longer than 255 bytes.
    #[error("trust domain is {len} bytes long; the maximum is 255 bytes")]
    TrustDomainTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The trust domain has an uppercase letter.
    #[error(
        "trust domain {trust_domain:?} contains uppercase letters; trust domains are lowercase (use {lower:?})"
    )]
    TrustDomainNotLowercase {
        /// The offending trust domain.
        trust_domain: String,
        /// The lowercase form the user probably meant.
        lower: String,
    },
    /// The trust domain has a character outside `[a-z0-9._-]`.
    #[error(
        "trust domain {trust_domain:?} contains {ch:?}; only lowercase letters, digits, '.', '-' and '_' are allowed"
    )]
    TrustDomainBadChar {
        /// The offending trust domain.
        trust_domain: String,
        /// The first bad character.
        ch: char,
    },
    /// The path ends with `/`.
    #[error("SPIFFE ID {id:?} must not end with a slash")]
    TrailingSlash {
        /// The offending ID.
        id: String,
    },
    /// The path has an empty segment (`//`).
    #[error("SPIFFE ID {id:?} contains an empty path segment (\"//\")")]
    EmptySegment {
        /// The offending ID.
        id: String,
    },
    /// The path has a `.` or `..` segment.
    #[error(
        "SPIFFE ID {id:?} contains the relative path segment {segment:?}; \".\" and \"..\" are not allowed"
    )]
    DotSegment {
        /// The offending ID.
        id: String,
        /// `.` or `..`.
        segment: String,
    },
    /// A path segment has a character outside `[A-Za-z0-9._-]`.
    #[error(
        "SPIFFE ID {id:?}: path segment {segment:?} contains {ch:?}; only letters, digits, '.', '-' and '_' are allowed"
    )]
    SegmentBadChar {
        /// The offending ID.
        id: String,
        /// The offending segment.
        segment: String,
        /// The first bad character.
        ch: char,
    },
    /// A worker name cannot be used as a SPIFFE path segment.
    #[error(
        "worker name {name:?} cannot be used in a SPIFFE ID: {reason}; use only letters, digits, '.', '-' and '_'"
    )]
    BadWorkerName {
        /// The worker name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// A validated SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID such as `spiffe://sigil.local/worker/writer`.
    pub fn parse(id: &str) -> Result<Self, SpiffeError> {
        if id.is_empty() {
            return Err(SpiffeError::Empty);
        }
        let owned = || id.to_string();
        let rest = match id.strip_prefix(SCHEME_PREFIX) {
            Some(rest) => rest,
            None => {
                let lower_prefix = id
                    .get(..SCHEME_PREFIX.len())
                    .map(|p| p.eq_ignore_ascii_case(SCHEME_PREFIX))
                    .unwrap_or(false);
                return Err(if lower_prefix {
                    SpiffeError::SchemeNotLowercase { id: owned() }
                } else {
                    SpiffeError::WrongScheme { id: owned() }
                });
            }
        };
        if id.len() > MAX_ID_LEN {
            return Err(SpiffeError::TooLong { len: id.len() });
        }
        if rest.contains('?') {
            return Err(SpiffeError::Query { id: owned() });
        }
        if rest.contains('#') {
            return Err(SpiffeError::Fragment { id: owned() });
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(SpiffeError::UserInfo { id: owned() });
        }
        if authority.contains(':') {
            return Err(SpiffeError::Port { id: owned() });
        }
        if authority.is_empty() {
            return Err(SpiffeError::MissingTrustDomain { id: owned() });
        }
        validate_trust_domain(authority)?;
        validate_path(path, id)?;
        Ok(Self {
            trust_domain: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// Builds `spiffe://<trust_domain>/worker/<worker_name>`.
    ///
    /// The worker name must itself be a valid path segment.
    pub fn for_worker(trust_domain: &str, worker_name: &str) -> Result<Self, SpiffeError> {
        validate_trust_domain(trust_domain)?;
        if let Err(e) = validate_segment(worker_name, worker_name) {
            let reason = match e {
                SpiffeError::EmptySegment { .. } => "it is empty".to_string(),
                SpiffeError::DotSegment { .. } => "\".\" and \"..\" are not allowed".to_string(),
                SpiffeError::SegmentBadChar { ch, .. } => format!("it contains {ch:?}"),
                other => other.to_string(),
            };
            return Err(SpiffeError::BadWorkerName {
                name: worker_name.to_string(),
                reason,
            });
        }
        let id = Self {
            trust_domain: trust_domain.to_string(),
            path: format!("/worker/{worker_name}"),
        };
        let len = id.to_string().len();
        if len > MAX_ID_LEN {
            return Err(SpiffeError::TooLong { len });
        }
        Ok(id)
    }

    /// The trust domain, e.g. `sigil.local`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path, e.g. `/worker/writer` (empty for a trust-domain ID).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The worker name if this is a `/worker/<name>` ID.
    pub fn worker_name(&self) -> Option<&str> {
        self.path
            .strip_prefix("/worker/")
            .filter(|name| !name.contains('/'))
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME_PREFIX}{}{}", self.trust_domain, self.path)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Validates a trust domain name: non-empty, at most 255 bytes, `[a-z0-9._-]`.
pub fn validate_trust_domain(trust_domain: &str) -> Result<(), SpiffeError> {
    if trust_domain.is_empty() {
        return Err(SpiffeError::MissingTrustDomain {
            id: format!("{SCHEME_PREFIX}{trust_domain}"),
        });
    }
    if trust_domain.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeError::TrustDomainTooLong {
            len: trust_domain.len(),
        });
    }
    if trust_domain.chars().any(|c| c.is_ascii_uppercase()) {
        let lower = trust_domain.to_ascii_lowercase();
        if lower.chars().all(is_trust_domain_char) {
            return Err(SpiffeError::TrustDomainNotLowercase {
                trust_domain: trust_domain.to_string(),
                lower,
            });
        }
    }
    if let Some(ch) = trust_domain.chars().find(|&c| !is_trust_domain_char(c)) {
        return Err(SpiffeError::TrustDomainBadChar {
            trust_domain: trust_domain.to_string(),
            ch,
        });
    }
    Ok(())
}

/// Validates one path segment (without slashes) of a SPIFFE ID; `id` is only
/// used in error messages.
pub fn validate_segment(segment: &str, id: &str) -> Result<(), SpiffeError> {
    if segment.is_empty() {
        return Err(SpiffeError::EmptySegment { id: id.to_string() });
    }
    if segment == "." || segment == ".." {
        return Err(SpiffeError::DotSegment {
            id: id.to_string(),
            segment: segment.to_string(),
        });
    }
    if let Some(ch) = segment.chars().find(|&c| !is_path_char(c)) {
        return Err(SpiffeError::SegmentBadChar {
            id: id.to_string(),
            segment: segment.to_string(),
            ch,
        });
    }
    Ok(())
}

fn validate_path(path: &str, id: &str) -> Result<(), SpiffeError> {
    if path.is_empty() {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(SpiffeError::TrailingSlash { id: id.to_string() });
    }
    // `path` starts with '/', so the first split item is empty: skip it.
    for segment in path.split('/').skip(1) {
        validate_segment(segment, id)?;
    }
    Ok(())
}

fn is_trust_domain_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids() {
        for id in [
            "spiffe://sigil.local",
            "spiffe://sigil.local/worker/writer",
            "spiffe://a-b_c.9/Path/With.dots/and-dash_under",
            "spiffe://td/.../..a/a..",
        ] {
            let parsed = SpiffeId::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(parsed.to_string(), id);
        }
        let w = SpiffeId::parse("spiffe://sigil.local/worker/writer").unwrap();
        assert_eq!(w.trust_domain(), "sigil.local");
        assert_eq!(w.path(), "/worker/writer");
        assert_eq!(w.worker_name(), Some("writer"));
    }

    #[test]
    fn each_violation_is_named() {
        use SpiffeError as E;
        let long_td = format!("spiffe://{}", "a".repeat(256));
        let long_id = format!("spiffe://td/{}", "a".repeat(2048));
        type Check = fn(&SpiffeError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("", |e| matches!(e, E::Empty)),
            ("https://td/x", |e| matches!(e, E::WrongScheme { .. })),
            ("spiffe:/td/x", |e| matches!(e, E::WrongScheme { .. })),
            ("SPIFFE://td/x", |e| {
                matches!(e, E::SchemeNotLowercase { .. })
            }),
            ("spiffe://", |e| matches!(e, E::MissingTrustDomain { .. })),
            ("spiffe:///x", |e| matches!(e, E::MissingTrustDomain { .. })),
            ("spiffe://td/x?a=b", |e| matches!(e, E::Query { .. })),
            ("spiffe://td/x#frag", |e| matches!(e, E::Fragment { .. })),
            ("spiffe://u@td/x", |e| matches!(e, E::UserInfo { .. })),
            ("spiffe://td:443/x", |e| matches!(e, E::Port { .. })),
            ("spiffe://Sigil.local/x", |e| {
                matches!(e, E::TrustDomainNotLowercase { .. })
            }),
            ("spiffe://td*x/y", |e| {
                matches!(e, E::TrustDomainBadChar { ch: '*', .. })
            }),
            ("spiffe://td/x/", |e| matches!(e, E::TrailingSlash { .. })),
            ("spiffe://td/", |e| matches!(e, E::TrailingSlash { .. })),
            ("spiffe://td//x", |e| matches!(e, E::EmptySegment { .. })),
            ("spiffe://td/a/./b", |e| matches!(e, E::DotSegment { .. })),
            ("spiffe://td/a/../b", |e| matches!(e, E::DotSegment { .. })),
            ("spiffe://td/a%20b", |e| {
                matches!(e, E::SegmentBadChar { ch: '%', .. })
            }),
            ("spiffe://td/a b", |e| {
                matches!(e, E::SegmentBadChar { ch: ' ', .. })
            }),
            (&long_td, |e| {
                matches!(e, E::TrustDomainTooLong { len: 256 })
            }),
            (&long_id, |e| matches!(e, E::TooLong { .. })),
        ];
        for (id, check) in cases {
            let err = SpiffeId::parse(id).expect_err(id);
            assert!(check(&err), "{id:?} gave {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn trust_domain_rules() {
        validate_trust_domain("sigil.local").unwrap();
        validate_trust_domain(&"a".repeat(255)).unwrap();
        assert!(validate_trust_domain("").is_err());
        assert!(validate_trust_domain("Sigil").is_err());
        assert!(validate_trust_domain("a/b").is_err());
        assert!(validate_trust_domain(&"a".repeat(256)).is_err());
    }

    #[test]
    fn worker_ids() {
        let id = SpiffeId::for_worker("sigil.local", "writer").unwrap();
        assert_eq!(id.to_string(), "spiffe://sigil.local/worker/writer");
        for bad in ["", ".", "..", "a/b", "a b", "ünï"] {
            let err = SpiffeId::for_worker("sigil.local", bad).unwrap_err();
            assert!(
                matches!(err, SpiffeError::BadWorkerName { .. }),
                "{bad}: {err}"
            );
        }
        assert!(matches!(
            SpiffeId::for_worker("BAD", "w").unwrap_err(),
            SpiffeError::TrustDomainNotLowercase { .. }
        ));
    }
}
