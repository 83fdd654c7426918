//! Test worker for the end-to-end tests. The path picks the behaviour:
//!
//! - `/auth`: the inbound client-certificate details, one `key=value` per line
//! - `/fetch`: subrequests described by headers (`x-fetch-url`, `x-fetch-binding`
//!   = a binding name, `none`, or absent for the default; `x-fetch-count` run in
//!   parallel; `x-fetch-timeout-ms`; `x-fetch-header` = `name: value` added to the
//!   subrequest); one line per outcome: `ok <status> <body>` or `err <Debug>`
//! - `/spin`: loops forever; `/alloc`: allocates without bound; `/panic`: panics;
//!   `/sleep?<ms>`: sleeps (WASI); `/big?<bytes>`: returns a body of that many bytes; `/garbage`: calls the host
//!   with garbage bytes; `/exit`: calls `exit(3)`; `/headers`: echoes request headers;
//!   `/url`: the URL and `host` header the worker sees;
//!   `/recurse`: fetches its own URL (a worker calling Sigil itself) and
//!   answers `<depth> <status of the inner call>`; `/chain?<ms>`: sleeps, then
//!   does the same
//! - `/status?<n>`: answers with status `n`; `/many-headers?<n>`: `n` response headers
//! - `/trap`: executes `unreachable` (a trap with a wasm backtrace)
//! - `/log-flood?<bytes>`, `/stdout-flood?<bytes>`: that many bytes of 1 KiB lines to
//!   `sigil.log` or stdout; `/log-long?<bytes>`: one `sigil.log` line that long
//!   (`long:` and two-byte characters); `/log-crlf`: log, stdout and stderr lines with CR/LF
//!   and an escape sequence in them
//! - anything else: `probe ok`

use sigil_sdk::{Fetch, PendingFetch, Request, Response};
use std::io::Write as _;
use std::time::Duration;

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "sigil")]
unsafe extern "C" {
    #[link_name = "fetch_start"]
    fn raw_fetch_start(ptr: *const u8, len: usize) -> i64;
}

fn auth(req: &Request) -> Response {
    let Some(a) = req.client_auth() else {
        return Response::ok("client_auth=none\n");
    };
    let body = format!(
        "presented={}\nverified={}\nrevoked={}\nsubject={}\nissuer={}\nserial={}\nfingerprint={}\nnot_before={}\nnot_after={}\ndns={}\nuri={}\nspiffe={}\n",
        a.cert_presented,
        a.cert_verified,
        a.cert_revoked,
        a.cert_subject_dn,
        a.cert_issuer_dn,
        a.cert_serial,
        a.cert_fingerprint_sha256,
        a.cert_not_before,
        a.cert_not_after,
        a.dns_sans.join(","),
        a.uri_sans.join(","),
        a.spiffe_id.clone().unwrap_or_default()
    );
    Response::ok(body)
}

fn fetches(req: &Request) -> Response {
    let url = req.header("x-fetch-url").unwrap_or("").to_string();
    let count: usize = req
        .header("x-fetch-count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let mut template = Fetch::new(Request::get(url.clone()));
    if let Some(h) = req.header("x-fetch-header")
        && let Some((k, v)) = h.split_once(':')
    {
        template = Fetch::new(Request::get(url.clone()).with_header(k.trim(), v.trim()));
    }
    template = match req.header("x-fetch-binding") {
        Some("none") => template.no_client_cert(),
        Some(name) => template.binding(name),
        None => template,
    };
    if let Some(ms) = req
        .header("x-fetch-timeout-ms")
        .and_then(|t| t.parse().ok())
    {
        template = template.timeout(Duration::from_millis(ms));
    }
    let mut out = String::new();
    // All started at once; each answer is summed up and dropped as soon as
    // it is waited for, so only the host holds the others meanwhile.
    let pending: Vec<PendingFetch> = (0..count).map(|_| template.clone().start()).collect();
    for result in pending.into_iter().map(PendingFetch::wait) {
        match result {
            // `x-fetch-body-len`: the body's length and whether every byte
            // is the same, instead of the body.
            Ok(r) if req.header("x-fetch-body-len").is_some() => {
                let body = r.body();
                let same = body.windows(2).all(|w| w[0] == w[1]);
                out.push_str(&format!(
                    "ok {} {} bytes same={same}\n",
                    r.status(),
                    body.len()
                ))
            }
            Ok(r) => out.push_str(&format!("ok {} {}\n", r.status(), r.text_body().trim_end())),
            Err(e) => out.push_str(&format!("err {e:?}\n")),
        }
    }
    Response::ok(out)
}

/// Call this worker's own URL (through Sigil's listener) after sleeping
/// `sleep_ms`; answer with how deep the calls went and how the innermost
/// one ended.
fn recurse(req: &Request, sleep_ms: u64) -> Response {
    std::thread::sleep(Duration::from_millis(sleep_ms));
    match sigil_sdk::fetch(Request::get(req.url().to_string())) {
        Ok(inner) => {
            let body = inner.text_body();
            let depth: u32 = body
                .split_whitespace()
                .next()
                .and_then(|d| d.parse().ok())
                .map_or(1, |d: u32| d + 1);
            let innermost = if inner.status() == 200 {
                body.split_whitespace().nth(1).unwrap_or("?").to_string()
            } else {
                inner.status().to_string()
            };
            Response::ok(format!("{depth} {innermost}\n"))
        }
        Err(e) => Response::ok(format!("1 err:{e:?}\n")),
    }
}

/// The query as a number (0 when absent).
fn number(req: &Request) -> usize {
    req.query().and_then(|q| q.parse().ok()).unwrap_or(0)
}

/// Output a worker should not be able to flood the server log with.
fn noisy(req: &Request, what: &str) -> Response {
    let line = format!("{}\n", "n".repeat(1023));
    let lines = number(req) / line.len();
    match what {
        "/log-flood" => {
            for _ in 0..lines {
                sigil_sdk::log::info(&line[..1023]);
            }
        }
        "/stdout-flood" => {
            let chunk = line.repeat(64);
            let mut out = std::io::stdout();
            for _ in 0..lines / 64 {
                let _ = out.write_all(chunk.as_bytes());
            }
            let _ = out.flush();
        }
        "/log-long" => {
            // One line of `long:` and two-byte characters, `bytes` long.
            let line = format!("long:{}", "é".repeat(number(req) / 2));
            sigil_sdk::log::info(&line);
        }
        _ => {
            let forged = "before\r\n2030-01-01T00:00:00Z  INFO sigil: forged line\u{1b}[31m";
            sigil_sdk::log::info(forged);
            println!("{forged}");
            eprintln!("{forged}");
        }
    }
    Response::ok(format!("{what} done\n"))
}

fn handle(req: Request) -> Response {
    match req.path().trim_start_matches("/probe") {
        "/status" => Response::new(number(&req) as u16).with_body("status chosen by the probe\n"),
        "/many-headers" => {
            let mut resp = Response::ok("many headers\n");
            for i in 0..number(&req) {
                resp = resp.with_header(format!("x-probe-{i}"), "v");
            }
            resp
        }
        "/trap" => {
            #[cfg(target_arch = "wasm32")]
            core::arch::wasm32::unreachable();
            #[cfg(not(target_arch = "wasm32"))]
            unreachable!("the probe only runs as wasm")
        }
        what @ ("/log-flood" | "/stdout-flood" | "/log-crlf" | "/log-long") => noisy(&req, what),
        "/auth" => auth(&req),
        "/fetch" => fetches(&req),
        "/spin" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "/alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "/panic" => panic!("probe was asked to panic"),
        "/sleep" => {
            let ms: u64 = req.query().and_then(|q| q.parse().ok()).unwrap_or(0);
            std::thread::sleep(Duration::from_millis(ms));
            Response::ok(format!("slept {ms} ms\n"))
        }
        "/big" => {
            let n: usize = req.query().and_then(|q| q.parse().ok()).unwrap_or(0);
            Response::ok("").with_body(vec![b'x'; n])
        }
        "/garbage" => {
            #[cfg(target_arch = "wasm32")]
            unsafe {
                let junk = [0xffu8; 64];
                raw_fetch_start(junk.as_ptr(), junk.len());
            }
            Response::ok("the host accepted garbage\n")
        }
        "/exit" => std::process::exit(3),
        "/headers" => {
            let mut out = String::new();
            for (k, v) in req.headers().iter() {
                out.push_str(&format!("{k}: {v}\n"));
            }
            Response::ok(out)
        }
        "/recurse" => recurse(&req, 0),
        "/chain" => {
            let ms: u64 = req.query().and_then(|q| q.parse().ok()).unwrap_or(0);
            recurse(&req, ms)
        }
        "/url" => Response::ok(format!(
            "url={}\nhost={}\n",
            req.url(),
            req.header("host").unwrap_or("")
        )),
        "/env" => {
            let mut body: String = std::env::vars()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect();
            body.push_str(&format!(
                "MISSING is set: {}\n",
                std::env::var("MISSING").is_ok()
            ));
            Response::ok(body)
        }
        _ => Response::ok("probe ok\n"),
    }
}

sigil_sdk::export_handler!(handle);
