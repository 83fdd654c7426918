//! C1: instantiate + call the hello worker in-process, `Engine::invoke` in
//! a loop, and a breakdown of where one invocation's time goes, measured on
//! a replica of the engine's setup built from wasmtime directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;
use sigil_runtime::config::Limits;
use sigil_runtime::engine::{CallContext, RequestState, SubrequestFuture, Subrequests};
use sigil_sdk::wire::{CertVerified, ClientAuth, HandlerOutput, Invocation, WireRequest};

use super::{Options, Row, median, module_cache_dir, temp_dir};
use crate::sigil::{module_path, toml_path};

/// Median and tail of per-iteration times, microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Distribution {
    /// Iterations measured.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean.
    pub mean: f64,
}

impl Distribution {
    fn of(mut us: Vec<f64>) -> Distribution {
        us.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| us[((us.len() - 1) as f64 * p).round() as usize];
        Distribution {
            n: us.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            mean: us.iter().sum::<f64>() / us.len() as f64,
        }
    }
}

/// The invocation the inbound service would build for `GET /hello` over
/// mTLS with a verified client certificate.
pub fn hello_invocation() -> Invocation {
    Invocation {
        request: WireRequest {
            method: "GET".into(),
            url: "https://pay.alpha.example/hello".into(),
            headers: vec![
                ("host".into(), "pay.alpha.example".into()),
                ("user-agent".into(), "sigil-bench".into()),
                ("accept".into(), "*/*".into()),
            ],
            body: Vec::new(),
        },
        client_auth: Some(ClientAuth {
            cert_presented: true,
            cert_verified: CertVerified::Success,
            cert_revoked: false,
            cert_subject_dn: "CN=device".into(),
            cert_issuer_dn: "CN=sigil-bench test CA".into(),
            cert_serial: "5F3A9C0D4E7B21A86C3D9E0F1A2B3C4D5E6F7081".into(),
            cert_fingerprint_sha256:
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            cert_not_before: 1_700_000_000,
            cert_not_after: 1_900_000_000,
            dns_sans: Vec::new(),
            uri_sans: Vec::new(),
            spiffe_id: None,
        }),
        worker: "hello".into(),
        request_id: "6b1f2c3d-1a".into(),
    }
}

/// The hello worker makes no subrequests; C1 measures the instance alone.
struct NoSubrequests;

impl Subrequests for NoSubrequests {
    fn start(
        &self,
        _request: sigil_sdk::wire_ref::FetchRequestView<'_>,
        _call: &CallContext,
        _held: &sigil_runtime::engine::HeldBytes,
    ) -> Result<SubrequestFuture, sigil_sdk::wire::FetchError> {
        Err(sigil_sdk::wire::FetchError::InvalidRequest {
            reason: "C1 makes no subrequests".into(),
        })
    }
}

/// The context of one C1 invocation, with the default limits.
fn call_context(request_id: Arc<str>) -> CallContext {
    let limits = Limits::default();
    CallContext {
        worker: "hello".into(),
        request_id,
        limits,
        subrequests: Arc::new(NoSubrequests),
        forward: None,
        deadline: Instant::now() + limits.timeout,
        hop: Default::default(),
        vars: Arc::from(Vec::new()),
    }
}

pub(super) async fn run(opts: &Options) -> Result<(Vec<Row>, serde_json::Value)> {
    crate::install_crypto_provider();
    let dir = temp_dir("c1")?;
    let path = dir.path().join("sigil.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\nreload_poll_secs = 0\nmodule_cache = {}\n\n[[workers]]\nname = \"hello\"\nmodule = {}\n\n[[routes]]\nworker = \"hello\"\n",
            toml_path(&module_cache_dir()),
            toml_path(&module_path("hello"))
        ),
    )?;
    let server = sigil_runtime::Server::load(&path)
        .map_err(|e| anyhow::anyhow!("Sigil refused the manifest:\n{e}"))?;
    let engine = server.engine().clone();
    let module = engine
        .load_module(
            &module_path("hello"),
            &sigil_runtime::engine::CompileLimits::default(),
            &Limits::default(),
        )
        .context("loading the hello module")?;
    let invocation = hello_invocation();
    let request_id: Arc<str> = invocation.request_id.as_str().into();
    let call = || call_context(request_id.clone());

    // The serving path encodes the invocation for every request: so do we.
    let input = || sigil_sdk::codec::encode(&invocation).expect("encode the invocation");
    // Sanity: the hello worker answers.
    let first = engine
        .invoke(&module, call(), &input())
        .await
        .map_err(|e| anyhow::anyhow!("hello failed: {e}"))?;
    anyhow::ensure!(first.status() == 200, "hello answered {}", first.status());

    let mut runs = Vec::new();
    for round in 0..opts.rounds {
        let deadline = Instant::now() + Duration::from_secs(120);
        for _ in 0..opts.c1_warmup {
            let _ = engine.invoke(&module, call(), &input()).await;
        }
        let mut us = Vec::with_capacity(opts.c1_iterations);
        let mut failures = 0usize;
        for _ in 0..opts.c1_iterations {
            let c = call();
            let t = Instant::now();
            let r = engine.invoke(&module, c, &input()).await;
            us.push(t.elapsed().as_secs_f64() * 1e6);
            failures += usize::from(r.is_err());
            if Instant::now() > deadline {
                break;
            }
        }
        let d = Distribution::of(us);
        println!(
            "c1 r{}: Engine::invoke(hello) n={} median {:.1} us, p90 {:.1} us, p99 {:.1} us, mean {:.1} us, failures {failures}",
            round + 1,
            d.n,
            d.p50,
            d.p90,
            d.p99,
            d.mean
        );
        runs.push(d);
    }
    drop(module);
    drop(engine);
    drop(server);

    let mut breakdowns = Vec::new();
    for variant in VARIANTS {
        breakdowns.push(breakdown(opts, &invocation, variant).await);
    }
    let p50 = median(&runs.iter().map(|d| d.p50).collect::<Vec<_>>());
    let p90 = median(&runs.iter().map(|d| d.p90).collect::<Vec<_>>());
    let mut rows = vec![
        Row::at_most(
            "C1",
            "instantiate + call hello, median",
            "us",
            p50,
            8.0,
            format!(
                "{} x {} iterations; per-round medians {}",
                runs.len(),
                opts.c1_iterations,
                runs.iter()
                    .map(|d| format!("{:.1}", d.p50))
                    .collect::<Vec<_>>()
                    .join("/")
            ),
        ),
        Row::info(
            "C1",
            "instantiate + call hello, p90",
            "us",
            p90,
            String::new(),
        ),
    ];
    let mut detail = json!({ "invoke": runs });
    for (variant, b) in VARIANTS.iter().zip(&breakdowns) {
        match b {
            Ok(b) => {
                println!(
                    "c1 breakdown, replica with {} (medians per phase):",
                    variant.describe()
                );
                for (phase, us) in &b.phases {
                    println!("  {phase:<46} {us:>7.2} us");
                }
                println!("  {:<46} {:>7.2} us", "total (median of sums)", b.total);
                rows.push(Row::info(
                    "C1",
                    &format!("replica, {}", variant.short()),
                    "us",
                    b.total,
                    b.phases
                        .iter()
                        .map(|(p, us)| format!("{} {us:.1}", p.split(' ').next().unwrap_or(p)))
                        .collect::<Vec<_>>()
                        .join(", "),
                ));
                detail[format!("breakdown_{}", variant.short())] = json!(b);
            }
            Err(e) => {
                println!("c1 breakdown ({}) failed: {e:#}", variant.short());
                detail[format!("breakdown_{}_error", variant.short())] = json!(format!("{e:#}"));
            }
        }
    }
    Ok((rows, detail))
}

/// Pooling-allocator settings the breakdown replica is measured with.
#[derive(Clone, Copy, Debug)]
pub enum Variant {
    /// wasmtime's defaults: freed slots are reset with `madvise(DONTNEED)`.
    PoolingDefaults,
    /// What `Engine::new` uses when the kernel has `PAGEMAP_SCAN`: slots
    /// keep up to 4 MiB resident and only dirtied pages are reset.
    KeepResident,
}

impl Variant {
    fn short(self) -> &'static str {
        match self {
            Variant::PoolingDefaults => "pool-defaults",
            Variant::KeepResident => "keep-resident",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Variant::PoolingDefaults => "pooling defaults (madvise on every free)",
            Variant::KeepResident => "keep-resident + PAGEMAP_SCAN (as Engine::new)",
        }
    }
}

const VARIANTS: [Variant; 2] = [Variant::PoolingDefaults, Variant::KeepResident];

/// Per-phase medians of one invocation, microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Breakdown {
    /// `(phase, median µs)`, in order.
    pub phases: Vec<(String, f64)>,
    /// Median of the per-iteration sums.
    pub total: f64,
}

/// Times the phases of an invocation on a replica of `Engine`'s setup
/// (same pooling and epoch configuration, WASI preview 1, `sigil.*`
/// imports stubbed: hello only logs).
async fn breakdown(opts: &Options, invocation: &Invocation, variant: Variant) -> Result<Breakdown> {
    use wasmtime::{
        Caller, Config, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig, Store,
    };

    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(1000)
        .total_memories(1000)
        .total_tables(1000)
        .total_stacks(1000)
        .max_memory_size((sigil_runtime::config::limits::MAX_MEMORY_MB << 20) as usize);
    if let Variant::KeepResident = variant {
        anyhow::ensure!(
            PoolingAllocationConfig::is_pagemap_scan_available(),
            "PAGEMAP_SCAN is not available on this kernel"
        );
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(4 << 20)
            .table_keep_resident(4 << 20);
    }
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = wasmtime::Engine::new(&config)?;
    let mut linker: Linker<RequestState> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, RequestState::wasi)?;
    linker.func_wrap(
        "sigil",
        "fetch_start",
        |_: Caller<'_, RequestState>, _: i32, _: i32| -> wasmtime::Result<i64> { Ok(-1) },
    )?;
    linker.func_wrap(
        "sigil",
        "fetch_wait",
        |_: Caller<'_, RequestState>, _: i32| -> wasmtime::Result<i64> { Ok(-1) },
    )?;
    linker.func_wrap(
        "sigil",
        "fetch_read",
        |_: Caller<'_, RequestState>, _: i32, _: i32, _: i32| -> wasmtime::Result<i32> { Ok(-1) },
    )?;
    linker.func_wrap(
        "sigil",
        "log",
        |mut caller: Caller<'_, RequestState>, _level: i32, ptr: i32, len: i32| {
            let mem = caller
                .get_export("memory")
                .and_then(|e| e.into_memory())
                .ok_or_else(|| wasmtime::format_err!("no memory"))?;
            let mut buf = vec![0u8; len as u32 as usize];
            mem.read(&caller, ptr as u32 as usize, &mut buf)?;
            std::hint::black_box(String::from_utf8_lossy(&buf));
            Ok(())
        },
    )?;
    let bytes = std::fs::read(module_path("hello"))?;
    let module = Module::new(&engine, &bytes)?;
    let pre = linker.instantiate_pre(&module)?;

    let request_id: Arc<str> = invocation.request_id.as_str().into();

    const PHASES: [&str; 8] = [
        "RequestState::new (pipes; WASI ctx on first use)",
        "Store::new + limiter + epoch setup",
        "InstancePre::instantiate_async (pool)",
        "export lookups + sigil_abi_version call",
        "encode invocation + sigil_alloc + write",
        "sigil_handle (guest decode, handler, encode)",
        "read + decode HandlerOutput",
        "drop Store (instance back to the pool)",
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); PHASES.len()];
    let mut totals = Vec::new();
    let n = opts.c1_warmup + opts.c1_iterations;
    for i in 0..n {
        let call = call_context(request_id.clone());
        let mut t = [Instant::now(); 9];
        let state = RequestState::new(call);
        t[1] = Instant::now();
        let mut store = Store::new(&engine, state);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(wasmtime::UpdateDeadline::Continue(1)));
        t[2] = Instant::now();
        let instance = pre.instantiate_async(&mut store).await?;
        t[3] = Instant::now();
        let version = instance
            .get_typed_func::<(), u32>(&mut store, "sigil_abi_version")?
            .call_async(&mut store, ())
            .await?;
        anyhow::ensure!(version == sigil_sdk::wire::ABI_VERSION, "ABI version");
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("memory")?;
        let alloc = instance.get_typed_func::<u32, u32>(&mut store, "sigil_alloc")?;
        let handle = instance.get_typed_func::<(u32, u32), u64>(&mut store, "sigil_handle")?;
        t[4] = Instant::now();
        let input = sigil_sdk::codec::encode(invocation).map_err(|e| anyhow::anyhow!(e.0))?;
        let len = input.len() as u32;
        let ptr = alloc.call_async(&mut store, len).await?;
        memory.write(&mut store, ptr as usize, &input)?;
        drop(input);
        t[5] = Instant::now();
        let packed = handle.call_async(&mut store, (ptr, len)).await?;
        t[6] = Instant::now();
        let (out_ptr, out_len) = sigil_sdk::codec::unpack(packed);
        let mut output = vec![0u8; out_len as usize];
        memory.read(&store, out_ptr as usize, &mut output)?;
        let out: HandlerOutput =
            sigil_sdk::codec::decode(&output, 16 << 20).map_err(|e| anyhow::anyhow!(e.0))?;
        std::hint::black_box(out);
        t[7] = Instant::now();
        drop(store);
        t[8] = Instant::now();
        if i >= opts.c1_warmup {
            for (p, s) in samples.iter_mut().enumerate() {
                s.push((t[p + 1] - t[p]).as_secs_f64() * 1e6);
            }
            totals.push((t[8] - t[0]).as_secs_f64() * 1e6);
        }
    }
    Ok(Breakdown {
        phases: PHASES
            .iter()
            .zip(samples)
            .map(|(p, s)| (p.to_string(), median(&s)))
            .collect(),
        total: median(&totals),
    })
}
