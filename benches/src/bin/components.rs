//! Component workers, measured against same-run baselines:
//!
//! - `hello`: the Rust `wasi:http` component hello (`examples/hello-component`)
//!   against the `sigil-sdk` hello (`examples/hello`) on the same Sigil,
//!   plain HTTP/1.1 keep-alive: requests per second, latency, and the
//!   server's CPU time per response (utime + stime of the `sigil` process
//!   over the responses); with `--wasmtime <path>` also `wasmtime serve -O
//!   pooling-allocator` with the same component;
//! - `langs`: JavaScript (componentize-js, `benches/components/hello-js`)
//!   and Python (componentize-py, `benches/components/hello-py`) hellos,
//!   the `sigil new` starters, on a fresh instance per request and (Python;
//!   the JavaScript starter's FetchEvent form cannot be reused) with
//!   `instance_reuse`: req/s, latency and CPU per response;
//! - `stream`: 1 GiB uploaded through a component (`/proxy` of
//!   `tests/guests/component-probe`) to an mTLS origin and 1 GiB back,
//!   against the same transfer through a bare streaming proxy (hyper +
//!   reqwest, one client identity); throughput and the growth of Sigil's
//!   peak RSS.
//!
//! `cargo run --release -p sigil-bench --bin components -- [--secs N] [--gib N] [--wasmtime PATH] [--workerd PATH] [--only invoke,hello,langs,stream]`
//! (it builds the guests and runs the release `sigil` binary, which must be
//! built: `cargo build --release -p sigil-cli`).

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use sigil_testkit::pki::Ca;
use sigil_testkit::stream_origin::StreamOrigin;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

struct Args {
    secs: u64,
    gib: u64,
    concurrency: usize,
    wasmtime: Option<PathBuf>,
    /// A `workerd` binary to measure beside the JavaScript hellos.
    workerd: Option<PathBuf>,
    /// Sections to run (`invoke`, `hello`, `langs`, `stream`); all when empty.
    only: Vec<String>,
}

impl Args {
    fn runs(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

fn args() -> Args {
    let mut a = Args {
        secs: 8,
        gib: 1,
        concurrency: 32,
        wasmtime: None,
        workerd: None,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_default();
        match flag.as_str() {
            "--secs" => a.secs = value().parse().unwrap_or(a.secs),
            "--gib" => a.gib = value().parse().unwrap_or(a.gib),
            "--concurrency" => a.concurrency = value().parse().unwrap_or(a.concurrency),
            "--wasmtime" => a.wasmtime = Some(PathBuf::from(value())),
            "--workerd" => a.workerd = Some(PathBuf::from(value())),
            "--only" => a.only = value().split(',').map(str::to_string).collect(),
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    a
}

/// utime + stime of process `pid`, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields after the command: state is 0, utime 11, stime 12.
    let hz = 100.0;
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / hz)
}

/// Peak RSS of `pid` in bytes.
fn peak_rss(pid: u32) -> u64 {
    sigil_bench::sigil::status_kib(&format!("/proc/{pid}/status"), "VmHWM:").unwrap_or(0) * 1024
}

/// A server process killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_listening(addr: SocketAddr) -> Result<()> {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("nothing listens on {addr}")
}

/// The release `sigil` serving `manifest` (written into `dir`).
async fn sigil(dir: &Path, manifest: &str, port: u16) -> Result<Server> {
    let bin = sigil_testkit::workspace_root().join("target/release/sigil");
    anyhow::ensure!(
        bin.is_file(),
        "build it first: cargo build --release -p sigil-cli"
    );
    let path = dir.join("sigil.toml");
    std::fs::write(&path, manifest)?;
    let child = Command::new(bin)
        .args(["serve", "-c"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    wait_listening(addr).await?;
    Ok(Server { child, addr })
}

/// One keep-alive load run: (req/s, p50 µs, p99 µs, responses, errors).
struct Load {
    rps: f64,
    p50: f64,
    p99: f64,
    responses: u64,
    errors: u64,
}

async fn load(addr: SocketAddr, host: &str, path: &str, secs: u64, concurrency: usize) -> Load {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let url = format!("http://{addr}{path}");
    let (done, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, host) = (client.clone(), url.clone(), host.to_string());
        let (done, errors) = (done.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = match client.get(&url).header("host", &host).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    lat.push(t.elapsed().as_secs_f64() * 1e6);
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        all.get(((all.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Load {
        rps: all.len() as f64 / elapsed,
        p50: q(0.5),
        p99: q(0.99),
        responses: done.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Load `addr` and print req/s, latency and the server's CPU per response.
async fn measure(
    label: &str,
    pid: u32,
    addr: SocketAddr,
    host: &str,
    path: &str,
    a: &Args,
) -> (f64, f64) {
    load(addr, host, path, 1, a.concurrency).await;
    let cpu0 = cpu_time(pid);
    let l = load(addr, host, path, a.secs, a.concurrency).await;
    let cpu = cpu_time(pid).saturating_sub(cpu0);
    let per = cpu.as_secs_f64() * 1e6 / l.responses.max(1) as f64;
    println!(
        "{label:<44} {:>9.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us  {:>6.1} CPU-us/response  errors {}",
        l.rps, l.p50, l.p99, per, l.errors
    );
    (l.rps, per)
}

async fn hello(a: &Args, dir: &Path) -> Result<()> {
    let root = sigil_testkit::workspace_root();
    let sdk = sigil_testkit::module("hello");
    let component = sigil_testkit::component("hello_component");
    let port = free_port();
    let cache = root.join("target/wasm/bench-module-cache");
    let manifest = format!(
        "[server]\nhttp = \"127.0.0.1:{port}\"\nmodule_cache = \"{}\"\n\
         [[workers]]\nname = \"sdk\"\nmodule = \"{sdk}\"\n\
         [[workers]]\nname = \"component\"\nmodule = \"{component}\"\n\
         [[routes]]\nhost = \"sdk.test\"\nworker = \"sdk\"\n\
         [[routes]]\nhost = \"component.test\"\nworker = \"component\"\n",
        cache.display()
    );
    let s = sigil(dir, &manifest, port).await?;
    let pid = s.child.id();
    println!(
        "\nhello over plain HTTP/1.1 keep-alive, c={}, {} s each",
        a.concurrency, a.secs
    );
    for round in 1..=3 {
        println!("round {round}");
        measure(
            "sigil, sigil-sdk hello (core module)",
            pid,
            s.addr,
            "sdk.test",
            "/",
            a,
        )
        .await;
        measure(
            "sigil, Rust wasi:http component hello",
            pid,
            s.addr,
            "component.test",
            "/",
            a,
        )
        .await;
        if let Some(wasmtime) = &a.wasmtime {
            let w = wasmtime_serve(wasmtime, &component).await?;
            measure(
                "wasmtime serve -S cli -O pooling-allocator",
                w.child.id(),
                w.addr,
                "localhost",
                "/",
                a,
            )
            .await;
        }
    }
    Ok(())
}

async fn langs(a: &Args, dir: &Path) -> Result<()> {
    use sigil_testkit::toolchains::{js_component, python_component};
    let root = sigil_testkit::workspace_root();
    let js = js_component("benches/components/hello-js", "worker.js");
    let js_raw = js_component("benches/components/hello-js-raw", "worker.js");
    let py = python_component("benches/components/hello-py", "app.py");
    let port = free_port();
    let cache = root.join("target/wasm/bench-module-cache");
    let worker = |name: &str, module: &str, extra: &str| {
        format!(
            "[[workers]]\nname = \"{name}\"\nmodule = \"{module}\"\n{extra}\n\
             [[routes]]\nhost = \"{name}.test\"\nworker = \"{name}\"\n"
        )
    };
    let manifest = format!(
        "[server]\nhttp = \"127.0.0.1:{port}\"\nmodule_cache = \"{}\"\n[limits]\ncpu_ms = 1000\n{}{}{}",
        cache.display(),
        worker("js", &js, ""),
        worker("py", &py, ""),
        worker("py-reuse", &py, "instance_reuse = 1000"),
    ) + &worker("js-raw", &js_raw, "")
        + &worker("js-raw-reuse", &js_raw, "instance_reuse = 1000");
    let s = sigil(dir, &manifest, port).await?;
    let pid = s.child.id();
    println!(
        "\nJavaScript and Python hellos over plain HTTP/1.1 keep-alive, c={}, {} s each",
        a.concurrency, a.secs
    );
    for round in 1..=3 {
        println!("round {round}");
        for (label, host) in [
            ("sigil, JavaScript hello (fetch event), fresh", "js.test"),
            ("sigil, JavaScript hello (export), fresh", "js-raw.test"),
            (
                "sigil, JavaScript hello (export), reuse",
                "js-raw-reuse.test",
            ),
            ("sigil, Python hello, fresh instance", "py.test"),
            ("sigil, Python hello, instance_reuse", "py-reuse.test"),
        ] {
            measure(label, pid, s.addr, host, "/", a).await;
        }
        if let Some(wasmtime) = &a.wasmtime {
            for (label, component) in [
                ("wasmtime serve, JavaScript (fetch event)", &js),
                ("wasmtime serve, Python", &py),
            ] {
                let w = wasmtime_serve(wasmtime, component).await?;
                measure(label, w.child.id(), w.addr, "localhost", "/", a).await;
            }
        }
        if let Some(workerd) = &a.workerd {
            let w = start_workerd(workerd, dir).await?;
            measure(
                "workerd, JavaScript hello (fetch event)",
                w.child.id(),
                w.addr,
                "localhost",
                "/",
                a,
            )
            .await;
        }
    }
    Ok(())
}

/// `wasmtime serve` (fresh instance per request, pooling allocator) with
/// `component` on a free port.
async fn wasmtime_serve(wasmtime: &Path, component: &str) -> Result<Server> {
    let port = free_port();
    let child = Command::new(wasmtime)
        .args(["serve", "-S", "cli", "-O", "pooling-allocator", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(component)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running wasmtime serve")?;
    listening(child, port).await
}

/// `workerd serve` with a JavaScript hello (the same response as the
/// JavaScript hellos above) on a free port.
async fn start_workerd(workerd: &Path, dir: &Path) -> Result<Server> {
    let port = free_port();
    let script = "addEventListener(\"fetch\", (event) => {\n  const url = new URL(event.request.url);\n  event.respondWith(new Response(`hello from workerd: ${url.pathname}\\n`));\n});\n";
    std::fs::write(dir.join("workerd-hello.js"), script)?;
    let config = format!(
        "using Workerd = import \"/workerd/workerd.capnp\";\n\
         const config :Workerd.Config = (\n  services = [ (name = \"main\", worker = .hello) ],\n  \
         sockets = [ ( name = \"http\", address = \"127.0.0.1:{port}\", http = (), service = \"main\" ) ]\n);\n\
         const hello :Workerd.Worker = (\n  serviceWorkerScript = embed \"workerd-hello.js\",\n  \
         compatibilityDate = \"2024-09-01\",\n);\n"
    );
    let config_path = dir.join("workerd.capnp");
    std::fs::write(&config_path, config)?;
    let child = Command::new(workerd)
        .arg("serve")
        .arg(&config_path)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running workerd serve")?;
    listening(child, port).await
}

/// The peer server `child`, once it listens on `port` of 127.0.0.1.
async fn listening(child: Child, port: u16) -> Result<Server> {
    let server = Server {
        addr: format!("127.0.0.1:{port}").parse()?,
        child,
    };
    wait_listening(server.addr).await?;
    Ok(server)
}

/// A request body of `total` bytes made as it is sent.
struct Generated {
    left: u64,
    chunk: Bytes,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n as usize)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// POST `total` bytes to `url` (as `host`, with `headers`) and read the
/// answer to its end: (bytes back, seconds).
async fn transfer(
    url: &str,
    host: &str,
    headers: &[(&str, String)],
    total: u64,
) -> Result<(u64, f64)> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let body = Generated {
        left: total,
        chunk: Bytes::from(vec![7u8; 256 << 10]),
    };
    let started = Instant::now();
    let mut req = client
        .post(url)
        .header("host", host)
        .body(reqwest::Body::wrap(body));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let mut resp = req.send().await?;
    anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
    let mut back = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        back += chunk.len() as u64;
    }
    Ok((back, started.elapsed().as_secs_f64()))
}

/// A bare streaming proxy: every request's body goes to `origin` as it
/// arrives, through one reqwest client presenting one identity, and the
/// answer streams back.
async fn bare_proxy(origin: String, client: reqwest::Client) -> Result<SocketAddr> {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (origin, client) = (origin.clone(), client.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (origin, client) = (origin.clone(), client.clone());
                    async move {
                        let body = SyncIncoming(std::sync::Mutex::new(req.into_body()));
                        let resp = client
                            .post(&origin)
                            .body(reqwest::Body::wrap(body))
                            .send()
                            .await;
                        let resp = match resp {
                            Ok(r) => http::Response::<reqwest::Body>::from(r),
                            Err(e) => http::Response::new(reqwest::Body::from(e.to_string())),
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// An inbound body for the HTTP client, which needs `Sync`.
struct SyncIncoming(std::sync::Mutex<hyper::body::Incoming>);

impl Body for SyncIncoming {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        Pin::new(inner).poll_frame(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().map(|b| b.size_hint()).unwrap_or_default()
    }
}

async fn stream(a: &Args, dir: &Path) -> Result<()> {
    let total = a.gib << 30;
    let server_ca = Ca::new(dir, "server-ca");
    let clients_ca = Ca::new(dir, "clients-ca");
    let origin_cert = server_ca.server("origin", &["localhost"]);
    let client_cert = clients_ca.client("tenant", "tenant");
    let origin = StreamOrigin::start(&origin_cert.cert, &origin_cert.key, &clients_ca.cert).await;
    let port = free_port();
    let manifest = format!(
        "[server]\nhttp = \"127.0.0.1:{port}\"\nmodule_cache = \"{cache}\"\n\
         [outbound]\nca = [\"{sca}\"]\n\
         [[certificates]]\nname = \"tenant\"\ncert = \"{c}\"\nkey = \"{k}\"\nca = \"{sca}\"\n\
         [[workers]]\nname = \"proxy\"\nmodule = \"{m}\"\nallowed_outbound_hosts = [\"https://127.0.0.1:*\"]\ndefault_binding = \"T\"\n\
         [[workers.mtls_certificates]]\nbinding = \"T\"\ncertificate = \"tenant\"\n\
         [workers.limits]\ncpu_ms = 600000\ntimeout_ms = 600000\nmax_request_body = {max}\nmax_response_body = {max}\n\
         [[routes]]\nworker = \"proxy\"\n",
        cache = sigil_testkit::workspace_root()
            .join("target/wasm/bench-module-cache")
            .display(),
        sca = server_ca.cert_s(),
        c = client_cert.cert_s(),
        k = client_cert.key_s(),
        m = sigil_testkit::component("component_probe"),
        max = total * 2,
    );
    let s = sigil(dir, &manifest, port).await?;
    let pid = s.child.id();
    let target = origin.url("/echo");
    let headers = [("x-fetch-url", target.clone())];
    let url = format!("http://{}/proxy", s.addr);
    transfer(&url, "proxy.test", &headers, 8 << 20).await?;
    let rss0 = peak_rss(pid);
    let cpu0 = cpu_time(pid);
    let (back, secs) = transfer(&url, "proxy.test", &headers, total).await?;
    let cpu = cpu_time(pid).saturating_sub(cpu0);
    anyhow::ensure!(back == total, "{back} bytes came back, not {total}");
    let growth = peak_rss(pid).saturating_sub(rss0);
    // The bare proxy, same transfer, same origin.
    let tls = sigil_testkit::client::tls_config(
        &server_ca.cert,
        Some((&client_cert.cert, &client_cert.key)),
        &[b"h2", b"http/1.1"],
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_backend_preconfigured(tls)
        .build()?;
    let bare = bare_proxy(target.clone(), client).await?;
    let bare_url = format!("http://{bare}/");
    transfer(&bare_url, "bare", &[], 8 << 20).await?;
    let (bare_back, bare_secs) = transfer(&bare_url, "bare", &[], total).await?;
    anyhow::ensure!(
        bare_back == total,
        "{bare_back} bytes came back through the bare proxy"
    );
    let mib = |bytes: u64, s: f64| (bytes * 2) as f64 / s / (1 << 20) as f64;
    println!(
        "\n{} GiB up through a Rust component to an mTLS origin and back ({} GiB moved)",
        a.gib,
        a.gib * 2
    );
    println!(
        "sigil component /proxy   {:>8.1} s  {:>7.0} MiB/s  sigil CPU {:.1} s  peak RSS growth {:.1} MiB",
        secs,
        mib(total, secs),
        cpu.as_secs_f64(),
        growth as f64 / (1 << 20) as f64
    );
    println!(
        "bare streaming proxy     {:>8.1} s  {:>7.0} MiB/s",
        bare_secs,
        mib(total, bare_secs)
    );
    println!("ratio (sigil / bare)     {:.2}x", bare_secs / secs);
    Ok(())
}

/// Instantiate + call of the Rust component hello in-process, through its
/// `WorkerHandler` (fresh instance, task, response, body drained), µs.
async fn invoke(iterations: usize) -> Result<()> {
    use sigil_runtime::state::{ConnectionInfo, WorkerBody, WorkerRequest};
    let dir = tempfile::tempdir()?;
    let manifest = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nmodule_cache = \"{}\"\n[[workers]]\nname = \"c\"\nmodule = \"{}\"\n[[routes]]\nworker = \"c\"\n",
        sigil_testkit::workspace_root()
            .join("target/wasm/bench-module-cache")
            .display(),
        sigil_testkit::component("hello_component"),
    );
    let server = sigil_bench::sigil::start(dir.path(), &manifest).await?;
    let worker = server
        .runtime
        .current()
        .workers
        .get("c")
        .cloned()
        .context("no worker c")?;
    let connection = Arc::new(ConnectionInfo::plain());
    let mut times = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        let (head, ()) = http::Request::get("/")
            .header("host", "bench")
            .body(())?
            .into_parts();
        let request = WorkerRequest {
            head,
            authority: "bench".into(),
            body: WorkerBody::empty(),
            connection: connection.clone(),
            request_id: "bench".into(),
            deadline: Instant::now() + Duration::from_secs(5),
            hop: Default::default(),
            slot: None,
        };
        let t = Instant::now();
        let response = worker
            .handler
            .handle(request)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(!body.to_bytes().is_empty());
        if i >= iterations / 10 {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "\nRust component hello, instantiate + handle + body drained (WorkerHandler::handle), {iterations} iterations: median {:.1} us, p90 {:.1} us, p99 {:.1} us",
        q(0.5),
        q(0.9),
        q(0.99)
    );
    server.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    sigil_testkit::install_crypto_provider();
    let a = args();
    let dir = tempfile::tempdir()?;
    sigil_testkit::guests();
    sigil_testkit::components();
    if a.runs("invoke") {
        invoke(20_000).await?;
    }
    if a.runs("hello") {
        hello(&a, dir.path()).await?;
    }
    if a.runs("langs") {
        langs(&a, dir.path()).await?;
    }
    if a.runs("stream") {
        stream(&a, dir.path()).await?;
    }
    Ok(())
}
