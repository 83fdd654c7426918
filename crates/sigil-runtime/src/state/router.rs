//! Routes: from a request's host and path to a worker. Exact hosts are
//! looked up in a hash map; within a host the longest matching path prefix
//! wins; `*` routes apply when no exact-host route matches.

use crate::config::RouteSection;
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
    /// The route table of a manifest's `[[routes]]`.
    pub fn from_routes(routes: &[RouteSection]) -> Self {
        let mut router = Router::default();
        for r in routes {
            router.add(
                r.host.as_deref(),
                r.path.as_deref().unwrap_or("/"),
                &r.worker,
            );
        }
        router
    }

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

    #[test]
    fn built_from_manifest_routes() {
        let route = |host: Option<&str>, path: Option<&str>, worker: &str| RouteSection {
            host: host.map(str::to_string),
            path: path.map(str::to_string),
            worker: worker.to_string(),
        };
        let r = Router::from_routes(&[
            route(Some("A.Example"), Some("/x/"), "x"),
            route(None, None, "any"),
        ]);
        assert_eq!(r.find("a.example", "/x/1").map(|w| &**w), Some("x"));
        assert_eq!(r.find("a.example", "/y").map(|w| &**w), Some("any"));
    }
}
