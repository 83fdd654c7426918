//! Requests, responses, headers and methods as a worker author uses them.

use crate::wire::{ClientAuth, WireRequest, WireResponse};

/// An HTTP method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
    /// `OPTIONS`
    Options,
    /// Any other method, upper case.
    Other(String),
}

impl Method {
    /// The method as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other(m) => m,
        }
    }

    /// Parse a method name (case-insensitive).
    pub fn parse(s: &str) -> Method {
        // Without an upper-cased copy: every request's method is parsed.
        const KNOWN: [(&str, Method); 7] = [
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("POST", Method::Post),
            ("PUT", Method::Put),
            ("DELETE", Method::Delete),
            ("PATCH", Method::Patch),
            ("OPTIONS", Method::Options),
        ];
        KNOWN
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, m)| m)
            .unwrap_or_else(|| Method::Other(s.to_ascii_uppercase()))
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ordered list of header fields with case-insensitive names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Replace every value of `name` with `value`.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into().to_ascii_lowercase();
        self.remove(&name);
        self.0.push((name, value.into()));
    }

    /// Add a value for `name`, keeping existing ones.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0
            .push((name.into().to_ascii_lowercase(), value.into()));
    }

    /// Remove every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Iterate over `(name, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn into_wire(self) -> Vec<(String, String)> {
        self.0
    }

    pub(crate) fn from_wire(fields: Vec<(String, String)>) -> Self {
        Headers(fields)
    }
}

/// Where the authority of `url` starts: after the first `://`, or at 0.
/// (A byte scan: `str::find` with a string pattern builds a two-way
/// searcher, a measurable part of a small worker's request in wasm.)
fn authority_start(url: &str) -> usize {
    url.as_bytes()
        .windows(3)
        .position(|w| w == b"://")
        .map_or(0, |i| i + 3)
}

/// An HTTP request: the inbound request a worker handles, or a subrequest it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: Method,
    url: String,
    headers: Headers,
    body: Vec<u8>,
    client_auth: Option<ClientAuth>,
}

impl Request {
    /// A request with `method` for the absolute `url`, no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Headers::new(),
            body: Vec::new(),
            client_auth: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Request::new(Method::Get, url)
    }

    /// A `POST` request with a body.
    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Request::new(Method::Post, url).with_body(body)
    }

    /// Set a header (replacing earlier values), builder style.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.set(name, value);
        self
    }

    /// Set the body, builder style.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The absolute URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path of the URL (`/` when empty), without the query.
    pub fn path(&self) -> &str {
        let rest = &self.url[authority_start(&self.url)..];
        let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
        path.split(['?', '#']).next().unwrap_or("/")
    }

    /// The query string of the URL, without `?`.
    pub fn query(&self) -> Option<&str> {
        let q = self.url.split_once('?')?.1;
        Some(q.split('#').next().unwrap_or(q))
    }

    /// The host of the URL (with port if any).
    pub fn host(&self) -> &str {
        let rest = &self.url[authority_start(&self.url)..];
        rest.split(['/', '?', '#']).next().unwrap_or("")
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// All headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// All headers, mutably.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The inbound connection's client certificate details (only on the
    /// request a worker is handling, and only when it arrived over TLS).
    pub fn client_auth(&self) -> Option<&ClientAuth> {
        self.client_auth.as_ref()
    }

    pub(crate) fn into_wire(self) -> WireRequest {
        WireRequest {
            method: self.method.as_str().to_string(),
            url: self.url,
            headers: self.headers.into_wire(),
            body: self.body,
        }
    }

    pub(crate) fn from_wire(wire: WireRequest, client_auth: Option<ClientAuth>) -> Self {
        Request {
            method: Method::parse(&wire.method),
            url: wire.url,
            headers: Headers::from_wire(wire.headers),
            body: wire.body,
            client_auth,
        }
    }
}

impl From<&str> for Request {
    fn from(url: &str) -> Self {
        Request::get(url)
    }
}

impl From<String> for Request {
    fn from(url: String) -> Self {
        Request::get(url)
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Headers,
    body: Vec<u8>,
}

impl Response {
    /// A response with `status` and an empty body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// `200 OK` with a plain-text body.
    pub fn ok(text: impl Into<String>) -> Self {
        Response::text(200, text)
    }

    /// A plain-text response (`content-type: text/plain; charset=utf-8`).
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Response::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.into())
    }

    /// Set a header (replacing earlier values), builder style.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.set(name, value);
        self
    }

    /// Set the body, builder style.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// All headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// All headers, mutably.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Take the body.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text (lossy).
    pub fn text_body(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn into_wire(self) -> WireResponse {
        WireResponse {
            status: self.status,
            headers: self.headers.into_wire(),
            body: self.body,
        }
    }

    pub(crate) fn from_wire(wire: WireResponse) -> Self {
        Response {
            status: wire.status,
            headers: Headers::from_wire(wire.headers),
            body: wire.body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts() {
        let r = Request::get("https://api.example:8443/a/b?x=1#f");
        assert_eq!(r.path(), "/a/b");
        assert_eq!(r.query(), Some("x=1"));
        assert_eq!(r.host(), "api.example:8443");
        assert_eq!(Request::get("http://h").path(), "/");
        assert_eq!(Request::get("/only/a/path?q").path(), "/only/a/path");
        assert_eq!(Request::get("h:/x://y/z").host(), "y");
        assert_eq!(Request::get("").path(), "/");
        assert_eq!(Request::get("").host(), "");
    }

    #[test]
    fn methods_parse_case_insensitively() {
        assert_eq!(Method::parse("get"), Method::Get);
        assert_eq!(Method::parse("OPTIONS"), Method::Options);
        assert_eq!(Method::parse("Delete"), Method::Delete);
        assert_eq!(Method::parse("purge"), Method::Other("PURGE".into()));
        assert_eq!(Method::parse("GETX"), Method::Other("GETX".into()));
    }

    #[test]
    fn headers_are_case_insensitive() {
        let mut h = Headers::new();
        h.append("X-A", "1");
        h.append("x-a", "2");
        assert_eq!(h.get_all("X-a").count(), 2);
        h.set("X-A", "3");
        assert_eq!(h.get("x-a"), Some("3"));
        assert_eq!(h.len(), 1);
    }
}
