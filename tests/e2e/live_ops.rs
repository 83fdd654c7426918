//! End to end: live operations — certificates rotated on disk under load,
//! bad files refused while the old configuration keeps serving, metrics that
//! parse and match the traffic, and graceful shutdown.

use crate::support::client::{https_client, tls_config, tls_connect};
use crate::support::origin::{Origin, cert_identity};
use crate::support::pki::{Ca, CertFiles};
use crate::support::sigil::Sigil;
use crate::support::{module, module_cache, temp_dir};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Replace `dst` with `src`'s contents atomically (write + rename), as
/// deployment tools and Kubernetes secret updates do.
fn replace_file(src: &Path, dst: &Path) {
    let tmp = dst.with_extension("swap");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dst).unwrap();
}

pub(crate) async fn scrape(admin: std::net::SocketAddr) -> prometheus_parse::Scrape {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text format")
}

pub(crate) fn counter(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

async fn server_cert_serial(addr: std::net::SocketAddr, ca: &Path, client: &CertFiles) -> String {
    let config = tls_config(ca, Some((&client.cert, &client.key)), &[b"http/1.1"]);
    let tls = tls_connect(addr, Some("pay.alpha.example"), config)
        .await
        .unwrap();
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    cert_identity(der.as_ref()).1
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_rotate_under_load_without_a_failed_request() {
    let dir = temp_dir();
    let d = dir.path();
    let server_ca = Ca::new(d, "server-ca");
    let clients_ca = Ca::new(d, "clients-ca");
    let alpha_ca = Ca::new(d, "alpha-ca");
    let origin_cert = server_ca.server("origin", &["localhost"]);
    let origin = Origin::start(
        &origin_cert.cert,
        &origin_cert.key,
        &[&clients_ca.cert],
        true,
    )
    .await;
    let device = alpha_ca.client("device", "device-1");
    let client_v1 = clients_ca.client("client", "probe-client");
    let host_v1 = server_ca.server("host", &["pay.alpha.example"]);
    let client_v2 = clients_ca.client("client-v2", "probe-client");
    let host_v2 = server_ca.server("host-v2", &["pay.alpha.example"]);
    let manifest = format!(
        r#"
[server]
https = "127.0.0.1:0"
admin = "127.0.0.1:0"
reload_poll_secs = 1
module_cache = "{cache}"

[[certificates]]
name = "client"
cert = "{client_cert}"
key = "{client_key}"
ca = "{server_ca}"

[[hostnames]]
name = "pay.alpha.example"
cert = "{host_cert}"
key = "{host_key}"
client_cert = "require"
client_ca = ["{alpha_ca}"]

[[workers]]
name = "probe"
module = "{probe}"
default_binding = "ME"
allowed_outbound_hosts = ["https://127.0.0.1:*"]
[[workers.mtls_certificates]]
binding = "ME"
certificate = "client"

[[routes]]
worker = "probe"
"#,
        cache = module_cache(),
        client_cert = client_v1.cert_s(),
        client_key = client_v1.key_s(),
        server_ca = server_ca.cert_s(),
        host_cert = host_v1.cert_s(),
        host_key = host_v1.key_s(),
        alpha_ca = alpha_ca.cert_s(),
        probe = module("probe"),
    );
    let sigil = Sigil::start(d, &manifest);
    let https = sigil.https.unwrap();
    assert_eq!(
        server_cert_serial(https, &server_ca.cert, &device).await,
        host_v1.serial_hex
    );

    // Continuous load: keep-alive clients, and one opening a new connection per request.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for fresh_connections in [false, false, true] {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        let (ca, dev) = (server_ca.cert.clone(), device.clone());
        let url = origin.url("/load");
        tasks.push(tokio::spawn(async move {
            let mut client = https_client(
                https,
                &["pay.alpha.example"],
                &ca,
                Some((&dev.cert, &dev.key)),
            );
            while !stop.load(Ordering::Relaxed) {
                if fresh_connections {
                    client = https_client(
                        https,
                        &["pay.alpha.example"],
                        &ca,
                        Some((&dev.cert, &dev.key)),
                    );
                }
                let result = client
                    .get(format!("https://pay.alpha.example:{}/fetch", https.port()))
                    .header("x-fetch-url", &url)
                    .send()
                    .await;
                match result {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body = r.text().await.unwrap_or_default();
                        if status == 200 && body.starts_with("ok 200") {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failures.lock().unwrap().push(format!("{status} {body}"));
                        }
                    }
                    Err(e) => failures.lock().unwrap().push(format!("{e:?}")),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_swap = ok.load(Ordering::Relaxed);
    assert!(before_swap > 10, "the load is running ({before_swap} ok)");
    assert!(
        origin
            .seen()
            .iter()
            .all(|s| s.serial.as_deref() == Some(&*client_v1.serial_hex))
    );

    // Replace the worker's client certificate and the hostname's server certificate on disk.
    replace_file(&client_v2.key, &client_v1.key);
    replace_file(&client_v2.cert, &client_v1.cert);
    replace_file(&host_v2.key, &host_v1.key);
    replace_file(&host_v2.cert, &host_v1.cert);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let origin_sees_new = origin
            .seen()
            .iter()
            .any(|s| s.serial.as_deref() == Some(&*client_v2.serial_hex));
        let server_is_new =
            server_cert_serial(https, &server_ca.cert, &device).await == host_v2.serial_hex;
        if origin_sees_new && server_is_new {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificates were not picked up:\n{}",
            sigil.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen_at_swap = origin.seen().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // A broken certificate written on disk is refused; the previous configuration keeps serving.
    std::fs::write(
        &client_v1.cert,
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(3000)).await;

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests during rotation: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let total = ok.load(Ordering::Relaxed);
    assert!(total > before_swap + 50, "load kept flowing: {total}");

    // After the swap (once connections made before it drained), only the new serial.
    let seen = origin.seen();
    let late: Vec<_> = seen[seen_at_swap..].iter().skip(20).collect();
    assert!(!late.is_empty());
    assert!(
        late.iter()
            .all(|s| s.serial.as_deref() == Some(&*client_v2.serial_hex)),
        "old certificate still presented after the swap"
    );
    let logs = sigil.logs();
    assert!(
        logs.contains("reload refused; still serving the previous configuration"),
        "{logs}"
    );
    assert!(
        logs.contains(&client_v1.cert.display().to_string()),
        "the refusal names the file:\n{logs}"
    );
    let metrics = scrape(sigil.admin.unwrap()).await;
    assert!(counter(&metrics, "sigil_reloads_total", &[("result", "ok")]) >= 1.0);
    assert!(counter(&metrics, "sigil_reloads_total", &[("result", "failed")]) >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_match_the_traffic() {
    let dir = temp_dir();
    let d = dir.path();
    let manifest = format!(
        r#"
[server]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
module_cache = "{cache}"

[[workers]]
name = "hello"
module = "{hello}"

[[workers]]
name = "probe"
module = "{probe}"
allowed_outbound_hosts = ["https://127.0.0.1:*"]

[[routes]]
path = "/"
worker = "hello"

[[routes]]
path = "/probe"
worker = "probe"
"#,
        cache = module_cache(),
        hello = module("hello"),
        probe = module("probe"),
    );
    let sigil = Sigil::start(d, &manifest);
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    for i in 0..7 {
        let r = c
            .get(sigil.http_url(&format!("/h{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers().contains_key("sigil-request-id"));
    }
    for _ in 0..3 {
        let r = c.get(sigil.http_url("/probe/panic")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 500);
    }
    for _ in 0..2 {
        c.get(sigil.http_url("/probe/fetch"))
            .header("x-fetch-url", "https://127.0.0.1:9/")
            .header("x-fetch-binding", "NOPE")
            .send()
            .await
            .unwrap();
    }
    let m = scrape(sigil.admin.unwrap()).await;
    assert_eq!(
        counter(
            &m,
            "sigil_requests_total",
            &[("worker", "hello"), ("status", "200")]
        ),
        7.0
    );
    assert_eq!(
        counter(
            &m,
            "sigil_requests_total",
            &[("worker", "probe"), ("status", "500")]
        ),
        3.0
    );
    assert_eq!(
        counter(
            &m,
            "sigil_worker_errors_total",
            &[("worker", "probe"), ("kind", "panic")]
        ),
        3.0
    );
    assert_eq!(
        counter(
            &m,
            "sigil_subrequests_total",
            &[
                ("worker", "probe"),
                ("binding", "unknown"),
                ("outcome", "unknown_binding")
            ]
        ),
        2.0
    );
    // A binding name the guest made up never becomes a label value: labels
    // come from closed sets (issue 11), so a guest cannot grow /metrics.
    assert!(
        !m.samples
            .iter()
            .any(|s| s.labels.values().any(|v| v.contains("NOPE"))),
        "a guest-chosen name became a label value"
    );
    let latency = m
        .samples
        .iter()
        .find(|s| {
            s.metric == "sigil_request_duration_seconds" && s.labels.get("worker") == Some("hello")
        })
        .expect("latency histogram");
    match &latency.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let inf = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            assert_eq!(inf, 7.0);
        }
        other => panic!("not a histogram: {other:?}"),
    }
    let health = c
        .get(format!("http://{}/healthz", sigil.admin.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // Every log line of a request carries its id.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = sigil.logs();
    let panic_line = logs
        .lines()
        .find(|l| l.contains("worker panicked"))
        .expect("panic logged");
    assert!(panic_line.contains("request_id="), "{panic_line}");
    assert!(
        !logs.contains("PRIVATE KEY"),
        "a private key reached the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_drains_a_request_in_flight() {
    let dir = temp_dir();
    let d = dir.path();
    let server_ca = Ca::new(d, "server-ca");
    let origin_cert = server_ca.server("origin", &["localhost"]);
    let origin = Origin::start(
        &origin_cert.cert,
        &origin_cert.key,
        &[&server_ca.cert],
        false,
    )
    .await;
    let manifest = format!(
        r#"
[server]
http = "127.0.0.1:0"
module_cache = "{cache}"

[outbound]
ca = ["{ca}"]

[[workers]]
name = "probe"
module = "{probe}"
allowed_outbound_hosts = ["https://127.0.0.1:*"]

[[routes]]
worker = "probe"
"#,
        cache = module_cache(),
        ca = server_ca.cert_s(),
        probe = module("probe"),
    );
    let mut sigil = Sigil::start(d, &manifest);
    let url = sigil.http_url("/fetch");
    let slow = origin.url("/slow");
    let in_flight = tokio::spawn(async move {
        let c = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = c.get(url).header("x-fetch-url", slow).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigil.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new connections once shutting down.
    let refused = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .get(sigil.http_url("/"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a new request was accepted during shutdown"
    );
    let (status, body) = in_flight.await.unwrap();
    assert_eq!((status, body.trim()), (200, "ok 200 cn=none path=/slow"));
    let exit = sigil
        .wait_exit(Duration::from_secs(10))
        .expect("sigil exits after draining");
    assert!(exit.success(), "{exit:?}\n{}", sigil.logs());
}

async fn reload(admin: std::net::SocketAddr) -> (u16, String) {
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("http://{admin}/reload"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Requests `url` every few milliseconds until `stop`; returns (answered, failures).
fn keep_requesting(
    url: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let c = reqwest::Client::builder().no_proxy().build().unwrap();
        let (mut ok, mut failures) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            match c.get(&url).send().await {
                Ok(r) if r.status().as_u16() == 200 => ok += 1,
                Ok(r) => failures.push(format!(
                    "{} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => failures.push(format!("{e:?}")),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (ok, failures)
    })
}

/// A reload refused for a file that does not exist yet is retried when
/// the file appears: creating it is the fix. Before, the poller watched
/// only the serving configuration's files, and only SIGHUP recovered.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_reload_is_retried_when_the_missing_file_appears() {
    let dir = temp_dir();
    let d = dir.path();
    std::fs::copy(module("probe"), d.join("w.wasm")).unwrap();
    let head = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nreload_poll_secs = 1\nmodule_cache = \"{}\"\n\n[[workers]]\nname = \"w\"\nmodule = \"w.wasm\"\n\n[[routes]]\nworker = \"w\"\n",
        module_cache()
    );
    let sigil = Sigil::start(d, &head);
    let admin = sigil.admin.unwrap();
    let extra = "\n[[workers]]\nname = \"x\"\nmodule = \"x.wasm\"\n\n[[routes]]\npath = \"/extra\"\nworker = \"x\"\n";
    let manifest = d.join("sigil.toml");
    std::fs::write(d.join("next.toml"), format!("{head}{extra}")).unwrap();
    replace_file(&d.join("next.toml"), &manifest);
    sigil.logs_containing(&["reload refused", "x.wasm"], Duration::from_secs(10));
    // Creating the module is the fix (whole at once: a poll must not see
    // half of it).
    replace_file(Path::new(&module("hello")), &d.join("x.wasm"));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = client.get(sigil.http_url("/extra")).send().await.unwrap();
        let body = resp.text().await.unwrap();
        if body.starts_with("hello from sigil") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new worker never came: {body} {}",
            sigil.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One refusal, one reload, and no retry loop after either.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let m = scrape(admin).await;
    assert_eq!(
        counter(&m, "sigil_reloads_total", &[("result", "failed")]),
        1.0
    );
    assert_eq!(counter(&m, "sigil_reloads_total", &[("result", "ok")]), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_that_cannot_serve_is_refused_at_reload_and_the_old_one_keeps_serving() {
    let dir = temp_dir();
    let d = dir.path();
    crate::bad_modules::write_all(d);
    // The probe has a few hundred functions; this one is over the 1000 allowed.
    std::fs::write(
        d.join("too-many-functions.wasm"),
        crate::bad_modules::many_functions(1001, true),
    )
    .unwrap();
    let worker = d.join("w.wasm");
    std::fs::copy(module("probe"), &worker).unwrap();
    let manifest = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nreload_poll_secs = 0\nmodule_cache = \"{}\"\nmax_module_functions = 1000\n\n[[workers]]\nname = \"w\"\nmodule = \"{}\"\n\n[[routes]]\nworker = \"w\"\n",
        module_cache(),
        worker.display()
    );
    let sigil = Sigil::start(d, &manifest);
    let admin = sigil.admin.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = keep_requesting(sigil.http_url("/"), stop.clone());
    let mut cases: Vec<(String, String)> = crate::bad_modules::cases()
        .into_iter()
        .map(|(name, _, expected)| (name.to_string(), expected.to_string()))
        .collect();
    cases.push((
        "too-many-functions.wasm".into(),
        "too-many-functions.wasm: the module defines 1001 functions, over the limit of 1000 (server.max_module_functions); refused before compiling".into(),
    ));
    for (name, expected) in cases {
        replace_file(&d.join(&name), &worker);
        let (status, body) = reload(admin).await;
        // The error names the file being loaded (w.wasm) and the problem.
        let problem = expected.split_once(": ").unwrap().1;
        assert_eq!(status, 422, "{name}: {body}");
        assert!(
            body.contains(&format!("worker \"w\": {}: {problem}", worker.display())),
            "{name}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = load.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 20, "{ok} requests answered");
    let m = scrape(admin).await;
    assert_eq!(
        counter(&m, "sigil_reloads_total", &[("result", "failed")]),
        6.0
    );
    assert_eq!(counter(&m, "sigil_reloads_total", &[("result", "ok")]), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn compiling_over_the_memory_limit_is_refused_and_the_server_keeps_serving() {
    let dir = temp_dir();
    let d = dir.path();
    // 10,000 small functions: a few seconds and 90 MB to compile in a debug
    // build, far more than the 16 MiB the reload allows.
    std::fs::write(
        d.join("big.wasm"),
        crate::bad_modules::many_functions(10_000, false),
    )
    .unwrap();
    let manifest = |server_extra: &str, extra_worker: &str| {
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nreload_poll_secs = 0\nmodule_cache = \"\"\n{server_extra}\n[[workers]]\nname = \"probe\"\nmodule = \"{}\"\n\n{extra_worker}[[routes]]\nworker = \"probe\"\n",
            module("probe"),
        )
    };
    let mut sigil = Sigil::start(d, &manifest("", ""));
    let admin = sigil.admin.unwrap();
    let big = "[[workers]]\nname = \"big\"\nmodule = \"big.wasm\"\n\n";
    let stop = Arc::new(AtomicBool::new(false));
    let load = keep_requesting(sigil.http_url("/"), stop.clone());

    std::fs::write(
        &sigil.manifest,
        manifest("max_module_functions = 20000\ncompile_memory_mb = 16", big),
    )
    .unwrap();
    let started = Instant::now();
    let (status, body) = reload(admin).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("worker \"big\": ")
            && body.contains(
                "big.wasm: compiling big.wasm needed more than 16 MiB (server.compile_memory_mb"
            ),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    // Over the function limit: refused before any compiler starts.
    std::fs::write(
        &sigil.manifest,
        manifest("max_module_functions = 5000", big),
    )
    .unwrap();
    let (status, body) = reload(admin).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("the module defines 10000 functions, over the limit of 5000 (server.max_module_functions); refused before compiling"),
        "{body}"
    );

    // Within the limits it compiles (about 57 MB for the compiler; it is
    // then refused for not being a worker), and that memory never shows up
    // in the server: its peak resident size stays where it was.
    let peak_before = peak_rss_kib(sigil.pid());
    std::fs::write(
        &sigil.manifest,
        manifest("max_module_functions = 20000", big),
    )
    .unwrap();
    let (status, body) = reload(admin).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("big.wasm: the module does not export `memory`"),
        "{body}"
    );
    let peak_after = peak_rss_kib(sigil.pid());
    assert!(
        peak_after < peak_before + 25 * 1024,
        "the server's peak RSS grew from {peak_before} KiB to {peak_after} KiB while compiling"
    );

    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = load.await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok > 5, "{ok} requests answered");
    assert!(
        sigil.wait_exit(Duration::from_millis(10)).is_none(),
        "sigil exited:\n{}",
        sigil.logs()
    );
}

/// Under `SIGIL_ALLOCATOR=mimalloc` the allocator reserves address space up
/// front, so an address-space cap set under it would not bound compiling:
/// `sigil __compile --memory-mb` refuses to run with it and names the fix;
/// with the C library's allocator (the default, and what the server always
/// starts the compiler with) the cap holds.
#[test]
fn the_compiler_child_caps_memory_only_with_the_system_allocator() {
    let dir = temp_dir();
    let big = dir.path().join("big.wasm");
    std::fs::write(&big, crate::bad_modules::many_functions(10_000, false)).unwrap();
    let compile = |allocator: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sigil"));
        cmd.args(["__compile", "--in"])
            .arg(&big)
            .args(["--out", "-", "--memory-mb", "16"]);
        match allocator {
            Some(a) => cmd.env("SIGIL_ALLOCATOR", a),
            None => cmd.env_remove("SIGIL_ALLOCATOR"),
        };
        let out = cmd.output().unwrap();
        (
            out.status,
            out.stdout.len(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, _, stderr) = compile(Some("mimalloc"));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--memory-mb needs the C library's allocator")
            && stderr.contains("run with SIGIL_ALLOCATOR=system"),
        "{stderr}"
    );
    // Over the cap: refused (exit 3) or, when the allocation fails where Rust
    // cannot report it, aborted; never a compiled module.
    let (status, written, stderr) = compile(None);
    assert!(
        written == 0 && (status.code() == Some(3) || stderr.contains("memory allocation of")),
        "{status}, {written} bytes written: {stderr}"
    );
}

/// The peak resident set size of process `pid` (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}
