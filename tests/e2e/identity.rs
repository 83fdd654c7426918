//! Sigil-issued worker identities (X.509-SVIDs) end to end: the real `sigil`
//! binary, real TLS on loopback, and origins that only know the identity CA:
//! a rustls origin, nginx and Python's `ssl` module.

use crate::support::interop::{Nginx, PythonOrigin, identify_worker, recording_origin, unix_now};
use crate::support::pki::Ca;
use crate::support::sigil::Sigil;
use crate::support::{module, module_cache, temp_dir};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

const TRUST_DOMAIN: &str = "sigil.local";

fn spiffe(worker: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/worker/{worker}")
}

/// The identity CA, the server CA the origins' certificates come from, and a
/// server certificate for 127.0.0.1 / localhost.
struct Pki {
    identity_ca: Ca,
    server_ca: Ca,
    origin: crate::support::pki::CertFiles,
}

fn pki(d: &Path) -> Pki {
    let identity_ca = Ca::new(d, "identity-ca");
    let server_ca = Ca::new(d, "server-ca");
    let origin = server_ca.server("origin", &["localhost"]);
    Pki {
        identity_ca,
        server_ca,
        origin,
    }
}

/// A worker running the probe, routed at `<name>.test`; `extra` is appended
/// to its `[[workers]]` table (e.g. `identity = false`, bindings).
fn worker(name: &str, extra: &str) -> String {
    format!(
        "[[workers]]\nname = \"{name}\"\nmodule = \"{}\"\nallowed_outbound_hosts = [\"https://127.0.0.1:*\"]\n{extra}\n\
         [[routes]]\nhost = \"{name}.test\"\nworker = \"{name}\"\n",
        module("probe")
    )
}

fn manifest(p: &Pki, ttl_secs: u64, workers: &[String]) -> String {
    let mut m = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nmodule_cache = \"{}\"\n\
         [limits]\nsubrequests = 20\ntimeout_ms = 20000\n\
         [outbound]\nca = [\"{}\"]\n\
         [identity]\ntrust_domain = \"{TRUST_DOMAIN}\"\nca_cert = \"{}\"\nca_key = \"{}\"\nttl_secs = {ttl_secs}\n",
        module_cache(),
        p.server_ca.cert_s(),
        p.identity_ca.cert_s(),
        p.identity_ca.key.display(),
    );
    for w in workers {
        m.push('\n');
        m.push_str(w);
    }
    m
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(16)
        .build()
        .unwrap()
}

/// Ask `worker`'s probe to fetch `url` (more settings in `headers`); returns
/// the probe's answer (one line per subrequest).
async fn fetch(
    client: &reqwest::Client,
    sigil: &Sigil,
    worker: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut req = client
        .get(sigil.http_url("/fetch"))
        .header("host", format!("{worker}.test"))
        .header("x-fetch-url", url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request to sigil");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "sigil answered {status} for {worker}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn each_worker_presents_its_own_spiffe_identity() {
    let dir = temp_dir();
    let d = dir.path();
    let p = pki(d);
    let origin = recording_origin(&p.origin.cert, &p.origin.key, &p.identity_ca.cert).await;
    let ttl = 600;
    let sigil = Sigil::start(
        d,
        &manifest(
            &p,
            ttl,
            &[
                worker("writer", ""),
                worker("reader", ""),
                worker("noid", "identity = false"),
                worker(
                    "named",
                    "[[workers.mtls_certificates]]\nbinding = \"ME\"\ncertificate = \"identity\"\n",
                ),
            ],
        ),
    );
    let c = client();

    // Default: each worker presents its own identity.
    let mut serials = BTreeMap::new();
    for w in ["writer", "reader"] {
        let path = format!("/default-{w}");
        let body = fetch(&c, &sigil, w, &origin.url(&path), &[]).await;
        assert_eq!(
            body.trim(),
            format!("ok 200 cn={w} uri={} path={path}", spiffe(w)),
            "{w}"
        );
        let seen = origin.seen();
        let r = seen.iter().find(|r| r.path == path).expect("origin saw it");
        let peer = r.peer.as_ref().expect("a client certificate");
        assert_eq!(peer.cn.as_deref(), Some(w));
        assert_eq!(peer.uris, [spiffe(w)], "exactly one URI SAN");
        assert_eq!(peer.chain_len, 1, "the chain presented is the leaf alone");
        // What an origin would do (sigil_origin::IdentityVerifier's rules).
        assert_eq!(identify_worker(&peer.der, TRUST_DOMAIN).as_deref(), Ok(w));
        assert!(
            identify_worker(&peer.der, "other.domain").is_err(),
            "another trust domain must not accept it"
        );
        // And the crate we ship for origin owners agrees.
        let verified = sigil_origin::IdentityVerifier::new(TRUST_DOMAIN)
            .identify_der(&peer.der)
            .expect("sigil-origin accepts the worker identity");
        assert_eq!(verified.worker, w);
        assert!(
            sigil_origin::IdentityVerifier::new("other.domain")
                .identify_der(&peer.der)
                .is_err()
        );
        // Short-lived: valid now, and for no longer than the configured TTL.
        let now = unix_now();
        assert!(peer.valid_at(now), "{peer:?}");
        let left = peer.not_after as f64 - now;
        assert!(
            left <= ttl as f64 + 1.0 && left >= ttl as f64 - 60.0,
            "expires in {left}s; ttl is {ttl}s"
        );
        // The runtime names the caller, once.
        assert_eq!(r.header("sigil-worker"), [w]);
        serials.insert(w, peer.serial.clone());
    }
    assert_ne!(serials["writer"], serials["reader"]);

    // identity = false: nothing is presented by default.
    let body = fetch(&c, &sigil, "noid", &origin.url("/noid"), &[]).await;
    assert_eq!(body.trim(), "ok 200 cn=none uri=none path=/noid");
    let seen = origin.seen();
    let r = seen.iter().find(|r| r.path == "/noid").unwrap();
    assert!(r.peer.is_none());
    assert_eq!(r.header("sigil-worker"), ["noid"]);

    // The identity bound by name; still the default (no default_binding);
    // and explicitly none.
    let expected = |path: &str| format!("ok 200 cn=named uri={} path={path}", spiffe("named"));
    let body = fetch(
        &c,
        &sigil,
        "named",
        &origin.url("/by-name"),
        &[("x-fetch-binding", "ME")],
    )
    .await;
    assert_eq!(body.trim(), expected("/by-name"));
    let body = fetch(&c, &sigil, "named", &origin.url("/named-default"), &[]).await;
    assert_eq!(body.trim(), expected("/named-default"));
    let body = fetch(
        &c,
        &sigil,
        "named",
        &origin.url("/named-none"),
        &[("x-fetch-binding", "none")],
    )
    .await;
    assert_eq!(body.trim(), "ok 200 cn=none uri=none path=/named-none");
    let seen = origin.seen();
    let named = |path: &str| {
        seen.iter()
            .find(|r| r.path == path)
            .and_then(|r| r.peer.clone())
            .expect("a client certificate")
    };
    assert_eq!(
        identify_worker(&named("/by-name").der, TRUST_DOMAIN).as_deref(),
        Ok("named")
    );
    // One identity per worker: the binding and the default are the same certificate.
    assert_eq!(named("/by-name").serial, named("/named-default").serial);

    // Another worker's binding name does not resolve, and nothing is sent.
    let before = origin.seen().len();
    let body = fetch(
        &c,
        &sigil,
        "writer",
        &origin.url("/steal"),
        &[("x-fetch-binding", "ME")],
    )
    .await;
    assert!(body.contains("err UnknownBinding"), "{body}");
    assert_eq!(origin.seen().len(), before);

    // A forged caller header from the guest is replaced by the runtime's.
    let body = fetch(
        &c,
        &sigil,
        "reader",
        &origin.url("/forged"),
        &[("x-fetch-header", "sigil-worker: writer")],
    )
    .await;
    assert!(body.starts_with("ok 200 cn=reader "), "{body}");
    let seen = origin.seen();
    let r = seen.iter().find(|r| r.path == "/forged").unwrap();
    assert_eq!(r.header("sigil-worker"), ["reader"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn identities_renew_without_failures_or_expired_certificates() {
    let dir = temp_dir();
    let d = dir.path();
    let p = pki(d);
    let origin = recording_origin(&p.origin.cert, &p.origin.key, &p.identity_ca.cert).await;
    let ttl = 3;
    let sigil = Sigil::start(
        d,
        &manifest(&p, ttl, &[worker("writer", ""), worker("reader", "")]),
    );
    let c = client();

    // ~10 s of traffic (three to four renewals per worker): sequential
    // subrequests every ~50 ms from each worker, plus bursts of 3 parallel
    // subrequests from each every ~200 ms.
    let started = Instant::now();
    let mut bursts = Vec::new();
    let mut bodies = Vec::new();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(10) {
        if i.is_multiple_of(4) {
            for w in ["writer", "reader"] {
                let (c, url, http) = (
                    c.clone(),
                    origin.url(&format!("/burst/{w}/{i}")),
                    sigil.http_url("/fetch"),
                );
                bursts.push(tokio::spawn(async move {
                    let resp = c
                        .get(http)
                        .header("host", format!("{w}.test"))
                        .header("x-fetch-url", url)
                        .header("x-fetch-count", "3")
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 200 => (w, r.text().await.unwrap_or_default()),
                        Ok(r) => (w, format!("sigil answered {}", r.status())),
                        Err(e) => (w, format!("request to sigil failed: {e}")),
                    }
                }));
            }
        }
        for w in ["writer", "reader"] {
            let body = fetch(&c, &sigil, w, &origin.url(&format!("/seq/{w}/{i}")), &[]).await;
            bodies.push((w, body));
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for b in bursts {
        bodies.push(b.await.unwrap());
    }
    let elapsed = started.elapsed();

    // Zero failures, and each answer came with the caller's own identity.
    let mut ok = 0usize;
    let mut failures = Vec::new();
    for (w, body) in &bodies {
        let want = format!("ok 200 cn={w} uri={} path=/", spiffe(w));
        for line in body.lines() {
            if line.starts_with(&want) {
                ok += 1;
            } else {
                failures.push(format!("{w}: {line}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} subrequests failed during renewals: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(20)]
    );

    // Every request the origin saw carried a certificate valid at that
    // moment, naming the worker the runtime says called.
    let seen = origin.seen();
    assert_eq!(seen.len(), ok, "the origin saw every subrequest once");
    let mut serials: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut invalid = Vec::new();
    for r in &seen {
        let peer = r
            .peer
            .as_ref()
            .expect("every subrequest presents an identity");
        let caller = r.header("sigil-worker");
        assert_eq!(caller.len(), 1, "{:?}", r.headers);
        assert_eq!(peer.cn.as_ref(), Some(&caller[0]));
        assert_eq!(peer.uris, [spiffe(&caller[0])]);
        assert!(r.path.contains(&format!("/{}/", caller[0])), "{}", r.path);
        if !peer.valid_at(r.at) {
            invalid.push(format!(
                "{} at {:.3}: serial {} valid {}..={}",
                r.path, r.at, peer.serial, peer.not_before, peer.not_after
            ));
        }
        serials
            .entry(caller[0].clone())
            .or_default()
            .insert(peer.serial.clone());
    }
    // Each certificate's validity and when the origin saw it first and last.
    let mut timeline: BTreeMap<(i64, String), (f64, f64, usize, usize)> = BTreeMap::new();
    for r in &seen {
        let peer = r.peer.as_ref().unwrap();
        let who = format!("{} {}", peer.cn.as_deref().unwrap_or("?"), peer.serial);
        let e = timeline
            .entry((peer.not_after, who))
            .or_insert((r.at, r.at, 0, 0));
        e.0 = e.0.min(r.at);
        e.1 = e.1.max(r.at);
        e.2 += 1;
        e.3 += usize::from(r.resumed);
    }
    let timeline: Vec<String> = timeline
        .iter()
        .map(|((na, who), (first, last, n, resumed))| {
            format!(
                "{who}: not_after {na}, used {first:.3}..{last:.3} by {n} requests \
                 ({resumed} of them on resumed TLS sessions)"
            )
        })
        .collect();
    let logs = sigil.logs();
    let renewals: Vec<String> = logs
        .lines()
        .filter(|l| l.contains("identity") || l.contains("renew"))
        .map(str::to_string)
        .collect();
    assert!(
        invalid.is_empty(),
        "{} requests arrived with a certificate not valid at that time: {:?}\n\
         {} TLS handshakes at the origin; certificates:\n{}\nsigil log lines about identities ({} lines logged in all):\n{}",
        invalid.len(),
        &invalid[..invalid.len().min(10)],
        origin.handshakes.load(std::sync::atomic::Ordering::Relaxed),
        timeline.join("\n"),
        logs.lines().count(),
        renewals.join("\n")
    );
    for w in ["writer", "reader"] {
        let n = serials.get(w).map_or(0, BTreeSet::len);
        assert!(
            n >= 3,
            "{w} presented {n} distinct certificates in {elapsed:?} with ttl {ttl}s \
             (renewal at 2/3 of the lifetime should give at least 3)"
        );
    }
    eprintln!(
        "renewal: {ok} subrequests in {elapsed:?}, {} handshakes, serials per worker: {:?}",
        origin.handshakes.load(std::sync::atomic::Ordering::Relaxed),
        serials
            .iter()
            .map(|(w, s)| (w, s.len()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_authorises_by_the_worker_certificate() {
    Nginx::require();
    let dir = temp_dir();
    let d = dir.path();
    let p = pki(d);
    let nginx = Nginx::start(
        d,
        &p.origin.cert,
        &p.origin.key,
        &p.identity_ca.cert,
        r#"        location /records {
            if ($ssl_client_s_dn != "CN=writer") {
                return 403 "forbidden dn=$ssl_client_s_dn verify=$ssl_client_verify\n";
            }
            return 200 "allowed dn=$ssl_client_s_dn verify=$ssl_client_verify worker=$http_sigil_worker\n";
        }
        location / {
            return 200 "dn=$ssl_client_s_dn verify=$ssl_client_verify\n";
        }"#,
    );
    let sigil = Sigil::start(
        d,
        &manifest(
            &p,
            600,
            &[
                worker("writer", ""),
                worker("reader", ""),
                worker("noid", "identity = false"),
            ],
        ),
    );
    let c = client();
    let records = nginx.url("/records");

    let body = fetch(&c, &sigil, "writer", &records, &[]).await;
    assert_eq!(
        body.trim(),
        "ok 200 allowed dn=CN=writer verify=SUCCESS worker=writer",
        "nginx log:\n{}",
        nginx.error_log()
    );
    let body = fetch(&c, &sigil, "reader", &records, &[]).await;
    assert_eq!(
        body.trim(),
        "ok 403 forbidden dn=CN=reader verify=SUCCESS",
        "nginx log:\n{}",
        nginx.error_log()
    );
    // The reader is a verified caller, just not allowed to write.
    let body = fetch(&c, &sigil, "reader", &nginx.url("/whoami"), &[]).await;
    assert_eq!(body.trim(), "ok 200 dn=CN=reader verify=SUCCESS");

    // No identity: nginx (ssl_verify_client on) refuses. OpenSSL lets the
    // handshake finish without a certificate and nginx answers 400; a
    // refusal during the handshake must reach the guest as ClientCertRefused.
    let body = fetch(&c, &sigil, "noid", &records, &[]).await;
    eprintln!("nginx, worker without identity: {}", body.trim());
    assert!(
        body.contains("err ClientCertRefused")
            || (body.starts_with("ok 400 ")
                && body.contains("No required SSL certificate was sent")),
        "{body}"
    );
    // Explicitly no certificate from a worker that has one: refused the same way.
    let body = fetch(
        &c,
        &sigil,
        "writer",
        &records,
        &[("x-fetch-binding", "none")],
    )
    .await;
    assert!(
        body.contains("err ClientCertRefused")
            || (body.starts_with("ok 400 ")
                && body.contains("No required SSL certificate was sent")),
        "{body}"
    );
    // And the writer is still allowed afterwards.
    let body = fetch(&c, &sigil, "writer", &records, &[]).await;
    assert!(body.starts_with("ok 200 allowed dn=CN=writer"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_ssl_reads_the_spiffe_id() {
    let dir = temp_dir();
    let d = dir.path();
    let p = pki(d);
    let py = PythonOrigin::start(d, &p.origin.cert, &p.origin.key, &p.identity_ca.cert);
    let sigil = Sigil::start(
        d,
        &manifest(
            &p,
            600,
            &[
                worker("writer", ""),
                worker("reader", ""),
                worker("noid", "identity = false"),
            ],
        ),
    );
    let c = client();
    for w in ["writer", "reader"] {
        let body = fetch(&c, &sigil, w, &py.url("/who"), &[]).await;
        assert_eq!(
            body.trim(),
            format!("ok 200 uri={} cn={w} worker={w}", spiffe(w)),
            "python origin log:\n{}",
            py.log()
        );
    }
    // CERT_REQUIRED: no certificate, no connection; the guest gets a named error.
    let body = fetch(&c, &sigil, "noid", &py.url("/who"), &[]).await;
    eprintln!("python, worker without identity: {}", body.trim());
    assert!(
        body.starts_with("err ClientCertRefused"),
        "{body}\npython origin log:\n{}",
        py.log()
    );
}
