//! End to end: `wasi:http/proxy` component workers (Rust, built from
//! `tests/guests/component-probe` with the `wasi` crate) on the real `sigil`
//! binary: the same limits and errors as SDK workers, outgoing requests
//! through the worker's bindings and identity chosen with a `sigil-binding`
//! header, the inbound client certificate as headers, streaming bodies, and
//! a plain peer component.

use crate::support::origin::{Body, Origin};
use crate::support::pki::{Ca, CertFiles};
use crate::support::sigil::{Sigil, check};
use crate::support::stream_origin::StreamOrigin;
use crate::support::{component, module_cache, temp_dir};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const TRUST_DOMAIN: &str = "sigil.local";

pub(crate) struct Pki {
    pub(crate) server_ca: Ca,
    pub(crate) clients_ca: Ca,
    pub(crate) identity_ca: Ca,
    pub(crate) origin: CertFiles,
    pub(crate) alpha: CertFiles,
    pub(crate) beta: CertFiles,
    pub(crate) hostname: CertFiles,
}

pub(crate) fn pki(d: &Path) -> Pki {
    let server_ca = Ca::new(d, "server-ca");
    let clients_ca = Ca::new(d, "clients-ca");
    let identity_ca = Ca::new(d, "identity-ca");
    Pki {
        origin: server_ca.server("origin", &["localhost"]),
        hostname: server_ca.server("comp", &["comp.example"]),
        alpha: clients_ca.client("alpha", "alpha"),
        beta: clients_ca.client("beta", "beta"),
        server_ca,
        clients_ca,
        identity_ca,
    }
}

/// `[server]` to `[[certificates]]`: listeners, limits, outbound CAs, the
/// identity CA, certificates `alpha` and `beta`, and hostname
/// `comp.example` (optional client certificates from the clients' CA).
pub(crate) fn preamble(p: &Pki) -> String {
    format!(
        r#"[server]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
module_cache = "{cache}"

[limits]
subrequests = 20
timeout_ms = 20000

[outbound]
ca = ["{sca}"]
connect_timeout_ms = 2000

[identity]
trust_domain = "{TRUST_DOMAIN}"
ca_cert = "{ica}"
ca_key = "{ikey}"

[[certificates]]
name = "alpha"
cert = "{ac}"
key = "{ak}"
ca = "{sca}"

[[certificates]]
name = "beta"
cert = "{bc}"
key = "{bk}"
ca = "{sca}"

[[hostnames]]
name = "comp.example"
cert = "{hc}"
key = "{hk}"
client_ca = ["{cca}"]
client_cert = "optional"
"#,
        cache = module_cache(),
        sca = p.server_ca.cert_s(),
        ica = p.identity_ca.cert_s(),
        ikey = p.identity_ca.key.display(),
        ac = p.alpha.cert_s(),
        ak = p.alpha.key_s(),
        bc = p.beta.cert_s(),
        bk = p.beta.key_s(),
        hc = p.hostname.cert_s(),
        hk = p.hostname.key_s(),
        cca = p.clients_ca.cert_s(),
    )
}

/// A worker running `module`, routed at `<name>.test`; `extra` goes into
/// its `[[workers]]` table.
pub(crate) fn worker(name: &str, module: &str, extra: &str) -> String {
    format!(
        "\n[[workers]]\nname = \"{name}\"\nmodule = \"{module}\"\nallowed_outbound_hosts = [\"https://127.0.0.1:*\"]\n{extra}\n\
         [[routes]]\nhost = \"{name}.test\"\nworker = \"{name}\"\n"
    )
}

/// The bindings of the multi-tenant worker: A = alpha (default), B = beta,
/// ME = its own identity.
pub(crate) const TENANT_BINDINGS: &str = "default_binding = \"A\"\n\
[[workers.mtls_certificates]]\nbinding = \"A\"\ncertificate = \"alpha\"\n\
[[workers.mtls_certificates]]\nbinding = \"B\"\ncertificate = \"beta\"\n\
[[workers.mtls_certificates]]\nbinding = \"ME\"\ncertificate = \"identity\"\n";

struct Setup {
    _dir: tempfile::TempDir,
    pki: Pki,
    sigil: Sigil,
    origin: Origin,
    client: reqwest::Client,
}

async fn setup() -> Setup {
    let dir = temp_dir();
    let p = pki(dir.path());
    let origin = Origin::start_with(
        &p.origin.cert,
        &p.origin.key,
        &[&p.clients_ca.cert, &p.identity_ca.cert],
        false,
        Body::CnAndUri,
    )
    .await;
    let probe = component("component_probe");
    let mut m = preamble(&p);
    m += &worker("tenants", &probe, TENANT_BINDINGS);
    m += &worker("writer", &probe, "");
    m += &worker("reader", &probe, "");
    m += &worker(
        "tenants-reuse",
        &probe,
        &format!("instance_reuse = 50\n{TENANT_BINDINGS}"),
    );
    m += &worker("writer-reuse", &probe, "instance_reuse = 50\n");
    m += &worker("reader-reuse", &probe, "instance_reuse = 50\n");
    m += &worker(
        "limits",
        &probe,
        "[workers.limits]\ncpu_ms = 100\nmemory_mb = 32\ntimeout_ms = 3000\nmax_request_body = 4096\nmax_response_body = 1048576\n",
    );
    m += "\n[[routes]]\nhost = \"comp.example\"\nworker = \"tenants\"\n";
    let sigil = Sigil::start(dir.path(), &m);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    Setup {
        _dir: dir,
        pki: p,
        sigil,
        origin,
        client,
    }
}

impl Setup {
    /// `GET <path>` on worker `worker` with `headers`: (status, body).
    async fn get(&self, worker: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut req = self
            .client
            .get(self.sigil.http_url(path))
            .header("host", format!("{worker}.test"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request to sigil");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    /// The component's `/fetch` of `url`, choosing `binding`.
    async fn fetch(&self, worker: &str, url: &str, binding: Option<&str>) -> String {
        let mut headers = vec![("x-fetch-url", url)];
        if let Some(b) = binding {
            headers.push(("x-fetch-binding", b));
        }
        let (status, body) = self.get(worker, "/fetch", &headers).await;
        assert_eq!(status, 200, "{body}");
        body.trim().to_string()
    }
}

fn spiffe(worker: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/worker/{worker}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_fails_alone_with_the_same_statuses_as_sdk_workers() {
    let s = setup().await;
    let (status, body) = s.get("limits", "/hi", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "hello from a component: /hi\n")
    );
    let cases = [
        (
            "/spin",
            503,
            "worker \"limits\" exceeded its CPU time limit of 100 ms",
        ),
        (
            "/alloc?64",
            503,
            "worker \"limits\" exceeded its memory limit of 32 MiB",
        ),
        ("/panic", 500, "worker \"limits\" failed"),
        (
            "/exit",
            500,
            "called exit(1) instead of returning a response",
        ),
        ("/silent", 500, "returned without setting a response"),
        (
            "/sleep?10000",
            504,
            "exceeded its wall-clock limit of 3000 ms",
        ),
    ];
    for (path, want_status, want) in cases {
        let started = std::time::Instant::now();
        let (status, body) = s.get("limits", path, &[]).await;
        assert_eq!(status, want_status, "{path}: {body}");
        assert!(body.contains(want), "{path}: {body}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{path} took {:?}",
            started.elapsed()
        );
        // Every other request keeps being served.
        let (status, _) = s.get("tenants", "/ok", &[]).await;
        assert_eq!(status, 200);
    }
    // A request body over max_request_body: refused before the worker runs
    // when declared, counted as it passes when not (chunked).
    let url = s.sigil.http_url("/proxy");
    let big = vec![b'x'; 10_000];
    let resp = s
        .client
        .post(&url)
        .header("host", "limits.test")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("over the worker's limit of 4096 bytes (limits.max_request_body)"),
        "{text}"
    );
    let stream = Generated::body(10_000, 1000, b'x');
    let resp = s
        .client
        .post(&url)
        .header("host", "limits.test")
        .header("x-fetch-url", s.origin.url("/upload"))
        .body(stream)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413, "{:?}", resp.text().await);
    // A response body over max_response_body is cut off, not sent whole.
    let resp = s
        .client
        .get(s.sigil.http_url("/big?3000000"))
        .header("host", "limits.test")
        .send()
        .await
        .unwrap();
    let received = resp.bytes().await.map(|b| b.len()).unwrap_or(0);
    assert!(received <= 1_048_576 + 65_536, "received {received} bytes");
    let (status, _) = s.get("limits", "/hi", &[]).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        s.sigil.logs().contains("the probe panics on purpose"),
        "guest stderr reaches the log"
    );
}

/// A request body of `total` bytes of `byte`, made as it is sent in
/// chunks of `chunk` bytes, with no length announced (chunked encoding).
pub(crate) struct Generated {
    left: u64,
    chunk: bytes::Bytes,
}

impl Generated {
    pub(crate) fn body(total: u64, chunk: usize, byte: u8) -> reqwest::Body {
        reqwest::Body::wrap(Generated {
            left: total,
            chunk: bytes::Bytes::from(vec![byte; chunk]),
        })
    }
}

impl hyper::body::Body for Generated {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64);
        self.left -= n;
        let data = self.chunk.slice(..n as usize);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(data))))
    }
}

/// Refused outgoing requests are logged with their cause cut short, and at
/// most as many per request as the worker's subrequest limit. Before, a
/// long `sigil-binding` value (60 KB) made a log line that long per attempt, and a
/// guest retrying a refused request in a loop logged every attempt.
#[tokio::test(flavor = "multi_thread")]
async fn refused_outgoing_requests_cannot_flood_the_log() {
    let s = setup().await;
    let url = s.origin.url("/who");
    let long = "Q".repeat(3_000);
    // `[limits] subrequests = 20`: 20 refused for the name, 5 for the limit.
    let (status, body) = s
        .get(
            "tenants",
            "/fetch",
            &[
                ("x-fetch-url", url.as_str()),
                ("x-fetch-binding", long.as_str()),
                ("x-fetch-count", "25"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.lines().count(), 25, "{}", &body[..body.len().min(300)]);
    let lines: Vec<&str> = body.lines().collect();
    assert!(
        lines[..20].iter().all(|l| l.contains("unknown binding"))
            && lines[20..].iter().all(|l| l.contains("subrequest limit")),
        "the guest sees every error: {:?}",
        lines
            .iter()
            .map(|l| &l[..l.len().min(60)])
            .collect::<Vec<_>>()
    );
    let logs = s.sigil.logs();
    let refused: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("subrequest failed"))
        .collect();
    assert_eq!(refused.len(), 20, "limits.subrequests (20) lines at most");
    assert!(
        refused
            .iter()
            .all(|l| l.len() < 2048 && l.contains("[line cut: ")),
        "{}",
        refused[0].len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binding_header_chooses_among_the_workers_own_bindings() {
    let s = setup().await;
    let url = s.origin.url("/who");
    assert_eq!(
        s.fetch("tenants", &url, None).await,
        "ok 200 cn=alpha uri= path=/who"
    );
    assert_eq!(
        s.fetch("tenants", &url, Some("B")).await,
        "ok 200 cn=beta uri= path=/who"
    );
    assert_eq!(
        s.fetch("tenants", &url, Some("ME")).await,
        format!("ok 200 cn=tenants uri={} path=/who", spiffe("tenants"))
    );
    assert_eq!(
        s.fetch("tenants", &url, Some("none")).await,
        "ok 200 cn=none uri=none path=/who"
    );
    // Without bindings, a worker presents its own identity by default.
    assert_eq!(
        s.fetch("writer", &url, None).await,
        format!("ok 200 cn=writer uri={} path=/who", spiffe("writer"))
    );
    let before = s.origin.seen().len();
    // Another worker's binding, or a made-up one: refused, named, nothing sent.
    assert_eq!(
        s.fetch("writer", &url, Some("B")).await,
        "err InternalError(sigil: unknown binding \"B\" for worker \"writer\")"
    );
    assert_eq!(
        s.fetch("tenants", &url, Some("zzz")).await,
        "err InternalError(sigil: unknown binding \"zzz\" for worker \"tenants\")"
    );
    // Not an allowed host.
    let body = s.fetch("tenants", "https://example.com/", None).await;
    assert!(
        body.starts_with(
            "err InternalError(sigil: outbound host https://example.com:443 is not allowed"
        ),
        "{body}"
    );
    assert_eq!(s.origin.seen().len(), before, "nothing reached the origin");
    // The origin never sees sigil-binding; sigil-worker is Sigil's, never the worker's.
    let (_, body) = s
        .get(
            "tenants",
            "/fetch",
            &[
                ("x-fetch-url", &url),
                ("x-fetch-binding", "B"),
                ("x-fetch-header", "sigil-worker: writer"),
            ],
        )
        .await;
    assert!(body.starts_with("ok 200 cn=beta"), "{body}");
    let seen = s.origin.seen();
    let last = seen.last().unwrap();
    assert!(
        last.header("sigil-binding").is_empty(),
        "{:?}",
        last.headers
    );
    assert_eq!(last.header("sigil-worker"), ["tenants"]);
    assert_eq!(last.header("sigil-hops"), ["1"]);
    // A client cannot choose the binding through a worker that copies headers.
    let (_, body) = s
        .get("tenants", "/headers", &[("sigil-binding", "B")])
        .await;
    assert!(!body.contains("sigil-binding"), "{body}");
}

/// Who a request comes from and what the origin must see: a worker, the
/// binding it names (`None`: its default, here its identity), and the
/// expected certificate CN (an identity's CN is its worker's name, with its
/// SPIFFE ID as the only URI SAN; a binding's certificate has none).
pub(crate) struct Caller {
    pub(crate) worker: String,
    pub(crate) binding: Option<&'static str>,
    pub(crate) cn: String,
}

impl Caller {
    pub(crate) fn new(worker: &str, binding: Option<&'static str>, cn: &str) -> Caller {
        Caller {
            worker: worker.into(),
            binding,
            cn: cn.into(),
        }
    }
}

/// 200 requests of 10 subrequests each (2,000), the callers interleaved and
/// 24 requests at once: the origin must see exactly the expected
/// certificate every time, and every caller the same number of times.
pub(crate) async fn interleaved(
    sigil: &Sigil,
    origin: &Origin,
    client: &reqwest::Client,
    tag: &str,
    callers: Vec<Caller>,
) {
    let (per_request, requests) = (10usize, 200usize);
    let callers = std::sync::Arc::new(callers);
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(24));
    let mut tasks = Vec::new();
    for i in 0..requests {
        let k = i % callers.len();
        let url = origin.url(&format!("/{tag}?expect={}&k={k}&i={i}", callers[k].cn));
        let (client, addr, sem, callers) = (
            client.clone(),
            sigil.http.unwrap(),
            sem.clone(),
            callers.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let c = &callers[k];
            let mut req = client
                .get(format!("http://{addr}/fetch"))
                .header("host", format!("{}.test", c.worker))
                .header("x-fetch-url", url)
                .header("x-fetch-count", per_request.to_string());
            if let Some(b) = c.binding {
                req = req.header("x-fetch-binding", b);
            }
            req.send().await.unwrap().text().await.unwrap()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let body = t.await.unwrap();
        assert!(body.lines().all(|l| l.starts_with("ok 200")), "{body}");
        ok += body.lines().count();
    }
    assert_eq!(ok, requests * per_request);
    let prefix = format!("/{tag}?");
    let seen: Vec<_> = origin
        .seen()
        .into_iter()
        .filter(|r| r.path.starts_with(&prefix))
        .collect();
    assert_eq!(seen.len(), requests * per_request);
    let mut by_caller: HashMap<usize, usize> = HashMap::new();
    let mut mismatches = Vec::new();
    for r in &seen {
        let field = |name: &str| {
            r.path
                .split(&format!("{name}="))
                .nth(1)
                .and_then(|x| x.split('&').next())
        };
        let k: usize = field("k").and_then(|k| k.parse().ok()).unwrap();
        let c = &callers[k];
        let cn = r.cn.clone().unwrap_or_else(|| "none".into());
        let uris = match c.binding {
            None => vec![spiffe(&c.worker)],
            Some(_) => Vec::new(),
        };
        if cn != c.cn || r.uris != uris {
            mismatches.push(format!("{} saw cn={cn} uris={:?}", r.path, r.uris));
        }
        *by_caller.entry(k).or_default() += 1;
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    for k in 0..callers.len() {
        assert_eq!(
            by_caller.get(&k),
            Some(&(requests * per_request / callers.len())),
            "{by_caller:?}"
        );
    }
}

/// The Rust callers: writer and reader by identity, tenants by binding.
fn rust_callers(suffix: &str) -> Vec<Caller> {
    let w = |name: &str| format!("{name}{suffix}");
    vec![
        Caller::new(&w("writer"), None, &w("writer")),
        Caller::new(&w("reader"), None, &w("reader")),
        Caller::new(&w("tenants"), Some("A"), "alpha"),
        Caller::new(&w("tenants"), Some("B"), "beta"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn interleaved_component_subrequests_never_mix_identities() {
    let s = setup().await;
    interleaved(&s.sigil, &s.origin, &s.client, "fresh", rust_callers("")).await;
    // The same with instances reused across requests.
    interleaved(
        &s.sigil,
        &s.origin,
        &s.client,
        "reuse",
        rust_callers("-reuse"),
    )
    .await;
    // Reused instances keep module state (documented); fresh ones do not.
    let counts: Vec<String> = futures_join(&s, "tenants-reuse").await;
    assert!(counts.iter().any(|c| c != "served 1"), "{counts:?}");
    let counts: Vec<String> = futures_join(&s, "tenants").await;
    assert!(counts.iter().all(|c| c == "served 1"), "{counts:?}");
}

/// `/count` five times, one after another.
async fn futures_join(s: &Setup, worker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..5 {
        out.push(s.get(worker, "/count", &[]).await.1.trim().to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inbound_client_certificate_reaches_the_component_as_headers() {
    let s = setup().await;
    let https = s.sigil.https.unwrap();
    let ca = s.pki.server_ca.cert.clone();
    let client = crate::support::client::https_client(
        https,
        &["comp.example"],
        &ca,
        Some((&s.pki.alpha.cert, &s.pki.alpha.key)),
    );
    let url = format!("https://comp.example:{}/headers", https.port());
    let body = client
        .get(&url)
        .header("sigil-client-cert-subject", "CN=forged")
        .header("sigil-client-cert-verified", "SUCCESS")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let header = |name: &str| -> Vec<&str> {
        body.lines()
            .filter_map(|l| l.strip_prefix(&format!("{name}: ")))
            .collect()
    };
    assert_eq!(header("sigil-client-cert-presented"), ["true"], "{body}");
    assert_eq!(header("sigil-client-cert-verified"), ["SUCCESS"], "{body}");
    assert_eq!(header("sigil-client-cert-subject"), ["CN=alpha"], "{body}");
    assert_eq!(header("sigil-client-cert-serial").len(), 1, "{body}");
    assert_eq!(header("sigil-client-cert-sha256")[0].len(), 64, "{body}");
    assert!(
        header("sigil-client-cert-issuer")[0].contains("clients-ca"),
        "{body}"
    );
    assert!(!body.contains("forged"), "{body}");
    // Without a certificate: presented false, verified NONE.
    let anonymous = crate::support::client::https_client(https, &["comp.example"], &ca, None);
    let body = anonymous
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("sigil-client-cert-presented: false"),
        "{body}"
    );
    assert!(body.contains("sigil-client-cert-verified: NONE"), "{body}");
}

/// Peak resident memory of process `pid`, in bytes.
pub(crate) fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_stream_through_a_component_to_an_mtls_origin_and_back() {
    let dir = temp_dir();
    let p = pki(dir.path());
    let origin = StreamOrigin::start(&p.origin.cert, &p.origin.key, &p.clients_ca.cert).await;
    let mut m = preamble(&p);
    m += &worker(
        "stream",
        &component("component_probe"),
        &format!(
            "{TENANT_BINDINGS}[workers.limits]\ncpu_ms = 600000\ntimeout_ms = 600000\nmax_request_body = 1073741824\nmax_response_body = 1073741824\n"
        ),
    );
    let sigil = Sigil::start(dir.path(), &m);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    // Warm up (compile, connect), then measure the peak memory.
    let warm = client
        .post(sigil.http_url("/proxy"))
        .header("host", "stream.test")
        .header("x-fetch-url", origin.url("/echo"))
        .body(vec![1u8; 1 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(warm.bytes().await.unwrap().len(), 1 << 20);
    let before = peak_rss(sigil.pid());
    const SIZE: u64 = 64 << 20;
    let body = Generated::body(SIZE, 256 << 10, 7);
    let resp = client
        .post(sigil.http_url("/proxy"))
        .header("host", "stream.test")
        .header("x-fetch-url", origin.url("/echo"))
        .header("x-fetch-binding", "B")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut resp = resp;
    let mut received = 0u64;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        assert!(chunk.iter().all(|b| *b == 7));
        received += chunk.len() as u64;
    }
    assert_eq!(received, SIZE);
    let seen = origin.seen.lock().unwrap().clone();
    let last = seen.last().unwrap();
    assert_eq!((last.cn.as_deref(), last.received), (Some("beta"), SIZE));
    let growth = peak_rss(sigil.pid()).saturating_sub(before);
    assert!(
        growth < 64 << 20,
        "sigil's peak memory grew by {} MiB",
        growth >> 20
    );
}

#[test]
fn sigil_check_names_the_kind_and_refuses_a_component_without_the_handler() {
    let dir = temp_dir();
    let d = dir.path();
    let write = |name: &str, module: &str| {
        let path = d.join(name);
        let m = format!(
            "[server]\nhttp = \"127.0.0.1:0\"\nmodule_cache = \"{}\"\n[[workers]]\nname = \"w\"\nmodule = \"{module}\"\n[[routes]]\nworker = \"w\"\n",
            module_cache()
        );
        std::fs::write(&path, m).unwrap();
        path
    };
    let (ok, out) = check(&write("good.toml", &component("component_probe")));
    assert!(ok, "{out}");
    assert!(
        out.contains("worker \"w\": wasi:http/proxy component"),
        "{out}"
    );
    let (ok, out) = check(&write("sdk.toml", &crate::support::module("hello")));
    assert!(
        ok && out.contains("worker \"w\": sigil-sdk module"),
        "{out}"
    );
    let (ok, out) = check(&write("bad.toml", &component("not-a-proxy")));
    assert!(!ok, "{out}");
    assert!(
        out.contains("must export wasi:http/incoming-handler"),
        "{out}"
    );
    assert!(out.contains("`wasi:cli/run@0.2"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_peer_component_runs_unmodified_and_calls_out_with_the_workers_identity() {
    let dir = temp_dir();
    let p = pki(dir.path());
    let origin = Origin::start_with(
        &p.origin.cert,
        &p.origin.key,
        &[&p.identity_ca.cert],
        true,
        Body::CnAndUri,
    )
    .await;
    let mut m = preamble(&p);
    m += &worker(
        "peer",
        &component("hello_component"),
        &format!(
            "[workers.vars]\nUPSTREAM = \"{}\"\n",
            origin.url("/from-peer")
        ),
    );
    let sigil = Sigil::start(dir.path(), &m);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |path: &str| {
        client
            .get(sigil.http_url(path))
            .header("host", "peer.test")
            .send()
    };
    assert_eq!(
        get("/").await.unwrap().text().await.unwrap(),
        "Hello, wasi:http!\n"
    );
    let body = get("/upstream").await.unwrap().text().await.unwrap();
    assert_eq!(
        body,
        format!("cn=peer uri={} path=/from-peer", spiffe("peer"))
    );
}
