//! Routes: from a request's host and path to a worker. Exact hosts are
//! looked up in a hash map; within a host the longest matching path prefix
//! wins; `*` routes apply when no exact-host route matches.

use std::collections::HashMap;
use std::sync::Arc;

/// The route table.
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, Vec<(String, Arc<str>)>>,
    any_host: Vec<(String, Arc<str>)>,
}

fn normalize_prefix(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

fn longest<'a>(routes: &'a [(String, Arc<str>)], path: &str) -> Option<&'a Arc<str>> {
    routes
        .iter()
        .filter(|(prefix, _)| prefix_matches(prefix, path))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, w)| w)
}

impl Router {
    /// Add a route; `host` `None` or `*` matches any host.
    pub fn add(&mut self, host: Option<&str>, path: &str, worker: &str) {
        let entry = (normalize_prefix(path), Arc::<str>::from(worker));
        match host {
            None | Some("*") => self.any_host.push(entry),
            Some(h) => self
                .exact
                .entry(h.to_ascii_lowercase())
                .or_default()
                .push(entry),
        }
    }

    /// The worker for `host` (lower case, no port) and `path`.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<str>> {
        self.exact
            .get(host)
            .and_then(|routes| longest(routes, path))
            .or_else(|| longest(&self.any_host, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let mut r = Router::default();
        r.add(Some("a.example"), "/", "root");
        r.add(Some("a.example"), "/api/", "api");
        r.add(None, "/", "fallback");
        assert_eq!(r.find("a.example", "/api/x").map(|w| &**w), Some("api"));
        assert_eq!(r.find("a.example", "/api").map(|w| &**w), Some("api"));
        assert_eq!(r.find("a.example", "/apix").map(|w| &**w), Some("root"));
        assert_eq!(r.find("b.example", "/api").map(|w| &**w), Some("fallback"));
    }
}
