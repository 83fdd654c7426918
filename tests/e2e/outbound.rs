//! End to end: outbound subrequests present the client certificate chosen by
//! name, to a real mTLS origin on loopback that records what it verified.

use crate::support::origin::Origin;
use crate::support::pki::Ca;
use crate::support::sigil::Sigil;
use crate::support::stream_origin::StreamOrigin;
use crate::support::{module, module_cache, temp_dir};
use std::collections::HashMap;

struct Setup {
    _dir: tempfile::TempDir,
    sigil: Sigil,
    origin: Origin,
    origin_clients_ca: std::path::PathBuf,
    server_ca: Ca,
    client: reqwest::Client,
}

/// Workers: `multi` (bindings A = cn alpha (default), B = cn beta), `w1` (cn w1),
/// `w2` (cn w2), `untrusting` (binding whose CA does not know the origin),
/// `refused` (binding with a certificate the origin does not trust).
async fn setup() -> Setup {
    let dir = temp_dir();
    let d = dir.path();
    let server_ca = Ca::new(d, "server-ca");
    let clients_ca = Ca::new(d, "clients-ca");
    let stranger_ca = Ca::new(d, "stranger-ca");
    let origin_cert = server_ca.server("origin", &["localhost"]);
    let alpha = clients_ca.client("alpha", "alpha");
    let beta = clients_ca.client("beta", "beta");
    let w1 = clients_ca.client("w1", "w1");
    let w2 = clients_ca.client("w2", "w2");
    let stranger = stranger_ca.client("stranger", "stranger");
    let origin = Origin::start(
        &origin_cert.cert,
        &origin_cert.key,
        &[&clients_ca.cert],
        false,
    )
    .await;
    let cert = |name: &str, files: &crate::support::pki::CertFiles, ca: &str| {
        format!(
            "[[certificates]]\nname = \"{name}\"\ncert = \"{}\"\nkey = \"{}\"\nca = \"{ca}\"\n",
            files.cert_s(),
            files.key_s()
        )
    };
    let sca = server_ca.cert_s();
    let worker = |name: &str, bindings: &[(&str, &str)], default: Option<&str>| {
        let mut s = format!(
            "[[workers]]\nname = \"{name}\"\nmodule = \"{}\"\nallowed_outbound_hosts = [\"https://127.0.0.1:*\"]\n",
            module("probe")
        );
        if let Some(d) = default {
            s.push_str(&format!("default_binding = \"{d}\"\n"));
        }
        for (b, c) in bindings {
            s.push_str(&format!(
                "[[workers.mtls_certificates]]\nbinding = \"{b}\"\ncertificate = \"{c}\"\n"
            ));
        }
        s.push_str(&format!(
            "[[routes]]\nhost = \"{name}.test\"\nworker = \"{name}\"\n"
        ));
        s
    };
    let manifest = [
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\nmodule_cache = \"{}\"\n[limits]\nsubrequests = 20\ntimeout_ms = 20000\n",
            module_cache()
        ),
        format!("[outbound]\nca = [\"{sca}\"]\nconnect_timeout_ms = 1000\n"),
        cert("alpha", &alpha, &sca),
        cert("beta", &beta, &sca),
        cert("w1", &w1, &sca),
        cert("w2", &w2, &sca),
        cert("stranger", &stranger, &sca),
        cert("untrusting", &alpha, &stranger_ca.cert_s()),
        worker("multi", &[("A", "alpha"), ("B", "beta")], Some("A")),
        worker("w1", &[("ME", "w1")], Some("ME")),
        worker("w2", &[("ME", "w2")], Some("ME")),
        worker("untrusting", &[("U", "untrusting")], Some("U")),
        worker("refused", &[("S", "stranger")], Some("S")),
        worker("nodefault", &[("A", "alpha")], None),
    ]
    .join("\n");
    let sigil = Sigil::start(d, &manifest);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    Setup {
        _dir: dir,
        sigil,
        origin,
        origin_clients_ca: clients_ca.cert.clone(),
        server_ca,
        client,
    }
}

impl Setup {
    async fn fetch(&self, worker: &str, url: &str, headers: &[(&str, &str)]) -> String {
        let mut req = self
            .client
            .get(format!("http://{}/fetch", self.sigil.http.unwrap()))
            .header("host", format!("{worker}.test"))
            .header("x-fetch-url", url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request to sigil");
        assert_eq!(resp.status().as_u16(), 200);
        resp.text().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn default_per_request_and_none_present_the_right_certificate() {
    let s = setup().await;
    let url = s.origin.url("/who");
    assert_eq!(
        s.fetch("multi", &url, &[]).await.trim(),
        "ok 200 cn=alpha path=/who"
    );
    assert_eq!(
        s.fetch("multi", &url, &[("x-fetch-binding", "B")])
            .await
            .trim(),
        "ok 200 cn=beta path=/who"
    );
    assert_eq!(
        s.fetch("multi", &url, &[("x-fetch-binding", "A")])
            .await
            .trim(),
        "ok 200 cn=alpha path=/who"
    );
    assert_eq!(
        s.fetch("multi", &url, &[("x-fetch-binding", "none")])
            .await
            .trim(),
        "ok 200 cn=none path=/who"
    );
    // A worker without a default binding presents nothing by default.
    assert_eq!(
        s.fetch("nodefault", &url, &[]).await.trim(),
        "ok 200 cn=none path=/who"
    );
    // Again after pooling: each identity still gets its own connections.
    assert_eq!(
        s.fetch("multi", &url, &[("x-fetch-binding", "none")])
            .await
            .trim(),
        "ok 200 cn=none path=/who"
    );
    assert_eq!(
        s.fetch("multi", &url, &[]).await.trim(),
        "ok 200 cn=alpha path=/who"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_workers_binding_is_unknown() {
    let s = setup().await;
    let body = s
        .fetch("w1", &s.origin.url("/"), &[("x-fetch-binding", "A")])
        .await;
    assert!(
        body.contains("err UnknownBinding { binding: \"A\" }"),
        "{body}"
    );
    assert!(s.origin.seen().is_empty(), "nothing may reach the origin");
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_sets_the_caller_header_and_drops_forged_ones() {
    let s = setup().await;
    s.fetch(
        "w1",
        &s.origin.url("/h"),
        &[("x-fetch-header", "sigil-worker: w2")],
    )
    .await;
    let seen = s.origin.seen();
    let workers: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k == "sigil-worker")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(workers, ["w1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_interleaved_never_mix_identities() {
    let s = setup().await;
    let per_request = 10usize;
    let requests = 200usize; // 2,000 subrequests
    let mut tasks = Vec::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(24));
    for i in 0..requests {
        let worker = if i % 2 == 0 { "w1" } else { "w2" };
        let url = s.origin.url(&format!("/?from={worker}&i={i}"));
        let client = s.client.clone();
        let addr = s.sigil.http.unwrap();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            client
                .get(format!("http://{addr}/fetch"))
                .header("host", format!("{worker}.test"))
                .header("x-fetch-url", url)
                .header("x-fetch-count", per_request.to_string())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }));
    }
    let mut ok = 0;
    let mut failed = Vec::new();
    for t in tasks {
        let body = t.await.unwrap();
        ok += body.lines().filter(|l| l.starts_with("ok 200")).count();
        failed.extend(
            body.lines()
                .filter(|l| !l.starts_with("ok 200"))
                .map(str::to_string),
        );
    }
    assert_eq!(ok, requests * per_request, "{failed:?}");
    let seen = s.origin.seen();
    assert_eq!(seen.len(), requests * per_request);
    let mut mismatches = 0;
    let mut by_cn: HashMap<String, usize> = HashMap::new();
    for r in &seen {
        let from = r
            .path
            .split("from=")
            .nth(1)
            .and_then(|x| x.split('&').next())
            .unwrap_or("?");
        let cn = r.cn.clone().unwrap_or_else(|| "none".into());
        if cn != from {
            mismatches += 1;
        }
        *by_cn.entry(cn).or_default() += 1;
    }
    assert_eq!(mismatches, 0, "{by_cn:?}");
    assert_eq!(by_cn.get("w1"), Some(&1000));
    assert_eq!(by_cn.get("w2"), Some(&1000));
    // Connections are reused within an identity: after the burst, steady
    // subrequests do no new handshakes.
    let hs = || {
        s.origin
            .handshakes
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let after_burst = hs();
    assert!(
        after_burst < 500,
        "{after_burst} handshakes for 2,000 subrequests"
    );
    for i in 0..50 {
        let worker = if i % 2 == 0 { "w1" } else { "w2" };
        let body = s.fetch(worker, &s.origin.url("/steady"), &[]).await;
        assert_eq!(body.trim(), format!("ok 200 cn={worker} path=/steady"));
    }
    assert_eq!(
        hs(),
        after_burst,
        "steady-state subrequests opened new connections"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_reach_the_guest_as_named_errors() {
    let s = setup().await;
    // Unreachable origin: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let body = s
        .fetch("w1", &format!("https://127.0.0.1:{closed}/"), &[])
        .await;
    assert!(body.contains("err ConnectFailed"), "{body}");
    assert!(body.contains("binding: Some(\"ME\")"), "{body}");
    assert!(
        body.contains(&format!("host: \"127.0.0.1:{closed}\"")),
        "{body}"
    );

    // Untrusted origin: the binding's CA bundle does not know the origin's CA.
    let body = s.fetch("untrusting", &s.origin.url("/"), &[]).await;
    assert!(body.contains("err UntrustedOrigin"), "{body}");
    assert!(body.contains("binding: Some(\"U\")"), "{body}");
    assert!(body.contains("UnknownIssuer"), "{body}");

    // The origin refuses a certificate from a CA it does not trust.
    let body = s.fetch("refused", &s.origin.url("/"), &[]).await;
    assert!(body.contains("err ClientCertRefused"), "{body}");
    assert!(body.contains("binding: Some(\"S\")"), "{body}");

    // Timeout: a listener that never answers the handshake.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let body = s
        .fetch(
            "w1",
            &format!("https://127.0.0.1:{port}/"),
            &[("x-fetch-timeout-ms", "300")],
        )
        .await;
    assert!(body.contains("err Timeout"), "{body}");
    assert!(body.contains("after_ms: 300"), "{body}");
    drop(silent);

    // Host not allowed.
    let body = s.fetch("w1", "https://example.com/", &[]).await;
    assert!(
        body.contains("err HostNotAllowed { origin: \"https://example.com:443\" }"),
        "{body}"
    );
    // Sigil keeps serving.
    assert_eq!(
        s.fetch("multi", &s.origin.url("/x"), &[]).await.trim(),
        "ok 200 cn=alpha path=/x"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_connection_attempt_fails_at_its_connect_timeout() {
    // A listener that accepts TCP (in its backlog) and never answers the TLS
    // handshake. Before: the error was Timeout { after_ms: 19998 } (the
    // request's wall clock), and 20 parallel subrequests waited for it.
    let s = setup().await;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let body = s
        .fetch(
            "w1",
            &format!("https://127.0.0.1:{port}/"),
            &[("x-fetch-count", "20")],
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(body.lines().count(), 20, "{body}");
    for line in body.lines() {
        assert!(
            line.contains("ConnectFailed")
                && line.contains("1000 ms")
                && line.contains("connect_timeout_ms"),
            "each names the connect timeout that fired: {line}"
        );
    }
    assert!(
        elapsed < std::time::Duration::from_secs(5),
        "20 parallel attempts took {elapsed:?}"
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_diagnostic_handshake_never_resumes_an_older_session() {
    // An origin that hangs up after each handshake gives the HTTP client an
    // ambiguous failure, so Sigil opens one diagnostic connection to read
    // the origin's verdict. Before, that connection resumed the pool's TLS
    // session: after a renewal it carried the identity of the first
    // handshake (an origin saw a certificate 7.4 s past its notAfter).
    let s = setup().await;
    let srv = s.server_ca.server("hangup", &["localhost"]);
    let hangup = Origin::start_with(
        &srv.cert,
        &srv.key,
        &[&s.origin_clients_ca],
        false,
        crate::support::origin::Body::HangUp,
    )
    .await;
    for _ in 0..3 {
        let url = format!("https://127.0.0.1:{}/x", hangup.addr.port());
        let body = s.fetch("w1", &url, &[("x-fetch-binding", "ME")]).await;
        assert!(body.starts_with("err"), "{body}");
        // At most one diagnosis per origin per second.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let seen = hangup.seen();
    // Each subrequest: the pool's handshake, then the diagnostic one.
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(
        seen.iter().all(|h| h.cn.as_deref() == Some("w1")),
        "every handshake presents the binding's certificate"
    );
    let resumed: Vec<bool> = seen.iter().map(|h| h.resumed).collect();
    for i in (1..seen.len()).step_by(2) {
        assert!(
            !resumed[i],
            "diagnostic handshake {i} resumed a session (resumed flags, pool and diagnostic in turn: {resumed:?})"
        );
    }
}

/// A `sigil` whose probe worker presents binding `A` (client `alpha`) to a
/// streaming mTLS origin on 127.0.0.1, with `extra` added to the manifest
/// right after `[server]`'s keys (more `[server]` keys, then `[limits]`).
async fn probe_with_stream_origin(extra: &str) -> (tempfile::TempDir, Sigil, StreamOrigin) {
    let dir = temp_dir();
    let d = dir.path();
    let server_ca = Ca::new(d, "server-ca");
    let clients_ca = Ca::new(d, "clients-ca");
    let origin_cert = server_ca.server("origin", &["localhost"]);
    let alpha = clients_ca.client("alpha", "alpha");
    let origin = StreamOrigin::start(&origin_cert.cert, &origin_cert.key, &clients_ca.cert).await;
    let manifest = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nmodule_cache = \"{cache}\"\n{extra}\n\
         [outbound]\nca = [\"{sca}\"]\n\
         [[certificates]]\nname = \"alpha\"\ncert = \"{cert}\"\nkey = \"{key}\"\nca = \"{sca}\"\n\
         [[workers]]\nname = \"probe\"\nmodule = \"{probe}\"\n\
         allowed_outbound_hosts = [\"https://127.0.0.1:*\"]\ndefault_binding = \"A\"\n\
         [[workers.mtls_certificates]]\nbinding = \"A\"\ncertificate = \"alpha\"\n\
         [[routes]]\nworker = \"probe\"\n",
        cache = module_cache(),
        sca = server_ca.cert_s(),
        cert = alpha.cert_s(),
        key = alpha.key_s(),
        probe = module("probe"),
    );
    let sigil = Sigil::start(d, &manifest);
    (dir, sigil, origin)
}

/// The responses the host holds for one request (read from origins, not
/// yet taken by the worker) count against the worker's memory limit.
/// Before, a worker with a 32 MiB memory limit had Sigil hold sixteen
/// 4 MiB responses at once (64 MiB: 400 MiB with the default limits, for
/// each such request).
#[tokio::test(flavor = "multi_thread")]
async fn unread_responses_count_against_the_workers_memory_limit() {
    const BODY: u64 = 4 << 20;
    let (_dir, sigil, origin) = probe_with_stream_origin(&format!(
        "[limits]\nmemory_mb = 32\nmax_response_body = {BODY}\ntimeout_ms = 60000\ncpu_ms = 20000\n"
    ))
    .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let fetch = |count: usize| {
        client
            .get(sigil.http_url("/fetch"))
            .header("x-fetch-url", origin.url(&format!("/bytes/{BODY}")))
            .header("x-fetch-count", count.to_string())
            .header("x-fetch-body-len", "1")
            .send()
    };
    let ok_line = format!("ok 200 {BODY} bytes same=true");
    // Sixteen at once: more than 32 MiB would be held; some are refused,
    // naming the limit, and the others arrive whole.
    let resp = fetch(16).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 16, "{body}");
    let ok = lines.iter().filter(|l| **l == ok_line).count();
    let refused: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("err Other"))
        .collect();
    assert!(ok >= 1 && ok + refused.len() == 16, "{body}");
    assert!(
        !refused.is_empty(),
        "all sixteen were held at once:\n{body}"
    );
    assert!(
        refused
            .iter()
            .all(|l| l.contains("limits.memory_mb") && l.contains("33554432")),
        "{body}"
    );
    // Within the limit, all arrive; the refused ones left nothing counted.
    for _ in 0..2 {
        let body = fetch(3).await.unwrap().text().await.unwrap();
        assert_eq!(body, format!("{ok_line}\n").repeat(3));
    }
}

/// A worker's subrequests in flight are bounded by its share of
/// `server.max_connections`: each holds an outbound connection (a file
/// descriptor). Before, one request's 50 parallel subrequests, times a few
/// hundred requests, took every descriptor and other workers' subrequests
/// and the listener failed with EMFILE.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_has_at_most_its_share_of_subrequests_in_flight() {
    // Eight at once for the process, half of them for any one worker.
    let (_dir, sigil, origin) =
        probe_with_stream_origin("max_connections = 8\nworker_share = 0.5\n").await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let fetch = |count: usize| {
        client
            .get(sigil.http_url("/fetch"))
            .header("x-fetch-url", origin.url("/bytes/1000"))
            .header("x-fetch-count", count.to_string())
            .header("x-fetch-body-len", "1")
            .send()
    };
    let ok_line = "ok 200 1000 bytes same=true";
    // Ten started at once: four in flight, the rest refused at once, naming
    // the bound (one that finished while the ten were being started gives
    // its place to a later one, so "at least four" arrive).
    let body = fetch(10).await.unwrap().text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 10, "{body}");
    let ok = lines.iter().filter(|l| **l == ok_line).count();
    let refused: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("err ConnectFailed"))
        .collect();
    assert!(
        ok >= 4 && !refused.is_empty() && ok + refused.len() == 10,
        "{body}"
    );
    assert!(
        refused.iter().all(|l| l
            .contains("worker \\\"probe\\\" already has 4 subrequests in flight")
            && l.contains("server.max_connections")),
        "{body}"
    );
    // Their places are given back: the next request's four all arrive.
    let body = fetch(4).await.unwrap().text().await.unwrap();
    assert_eq!(body, format!("{ok_line}\n").repeat(4));
}

/// A response that arrives in many chunks (64 KiB frames from a streaming
/// origin, read in TLS records) is read whole up to the worker's
/// `max_response_body` exactly, and refused one byte past it.
#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_response_is_read_whole_up_to_the_limit() {
    const LIMIT: u64 = 300_000;
    let (_dir, sigil, origin) =
        probe_with_stream_origin(&format!("[limits]\nmax_response_body = {LIMIT}\n")).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let fetch = |n: u64| {
        client
            .get(sigil.http_url("/fetch"))
            .header("x-fetch-url", origin.url(&format!("/bytes/{n}")))
            .header("x-fetch-body-len", "1")
            .send()
    };
    for n in [LIMIT, LIMIT - 1, 70_000] {
        let resp = fetch(n).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.text().await.unwrap(),
            format!("ok 200 {n} bytes same=true\n")
        );
    }
    let resp = fetch(LIMIT + 1).await.unwrap();
    let body = resp.text().await.unwrap();
    assert!(body.starts_with("err ResponseTooLarge"), "{body}");
    assert!(body.contains(&format!("limit: {LIMIT}")), "{body}");
    let seen = origin.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|s| s.cn.as_deref() == Some("alpha")),
        "{seen:?}"
    );
}
