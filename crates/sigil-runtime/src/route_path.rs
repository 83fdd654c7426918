//! The path a request is routed by: its path normalised the way origins
//! and proxies read it (RFC 3986 §6.2.2: percent-encoded unreserved
//! characters decoded, dot segments removed; runs of `/` merged, as
//! nginx's `merge_slashes` does), so that `/x/../secret`, `//secret` and
//! `/%73ecret` reach the route for `/secret` instead of slipping past it
//! to a broader one. The worker still sees the path as the client sent it.

use std::borrow::Cow;

/// `path` as routes match it. Paths that need nothing (almost all) are
/// borrowed unchanged.
pub fn route_path(path: &str) -> Cow<'_, str> {
    let needs = path.contains('%') || path.contains("//") || path.contains("/.");
    if !needs {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut out: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut normal = String::with_capacity(decoded.len());
    for s in &out {
        normal.push('/');
        normal.push_str(s);
    }
    if normal.is_empty() || trailing {
        normal.push('/');
    }
    Cow::Owned(normal)
}

/// `path` with `%XX` decoded where XX encodes an unreserved character
/// (letters, digits, `-`, `.`, `_`, `~`); other escapes (such as `%2F`,
/// which is not a separator) are kept, with upper-case hex digits.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = path.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(b as char);
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        // Paths reach here as hyper parsed them: ASCII.
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_path_route_alike() {
        for (sent, routed) in [
            ("/secret/url", "/secret/url"),
            ("//secret/url", "/secret/url"),
            ("/./secret/url", "/secret/url"),
            ("/x/../secret/url", "/secret/url"),
            ("/%73ecret/url", "/secret/url"),
            ("/%2e/secret/url", "/secret/url"),
            ("/%2E%2E/secret", "/secret"),
            ("/../../secret", "/secret"),
            ("/secret/", "/secret/"),
            ("/secret/.", "/secret/"),
            ("/a/b/..", "/a/"),
            ("/", "/"),
            ("/..", "/"),
            ("/c%2fd", "/c%2Fd"),
            ("/c%2Fd", "/c%2Fd"),
            ("/100%", "/100%"),
            ("/%zz", "/%zz"),
            ("/a.b/.well-known", "/a.b/.well-known"),
        ] {
            assert_eq!(route_path(sent), routed, "{sent}");
        }
        assert!(matches!(route_path("/api/v1/x"), Cow::Borrowed(_)));
        assert!(matches!(route_path("/a.b/c"), Cow::Borrowed(_)));
    }
}
