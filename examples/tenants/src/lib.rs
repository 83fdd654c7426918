//! Scenario S2: one worker serves several tenants. For `/<tenant>/<path>` it
//! calls that tenant's backend presenting the tenant's own certificate,
//! chosen per request among the worker's bindings (`TENANT_X`, `TENANT_Y`).
//! `/all/<path>` calls every tenant's backend in parallel.
//!
//! Backends come from the variables `TENANT_X_URL`, `TENANT_Y_URL`.

use sigil_sdk::{Binding, Error, Request, Response, fetch_all};

const TENANTS: [&str; 2] = ["x", "y"];

fn backend(tenant: &str) -> Option<(Binding, String)> {
    let upper = tenant.to_ascii_uppercase();
    let url = std::env::var(format!("TENANT_{upper}_URL")).ok()?;
    Some((Binding::new(format!("TENANT_{upper}")), url))
}

fn handle(req: Request) -> Result<Response, Error> {
    let path = req.path().trim_start_matches('/');
    let (tenant, rest) = path.split_once('/').unwrap_or((path, ""));
    if tenant == "all" {
        let calls = TENANTS
            .iter()
            .filter_map(|t| backend(t))
            .map(|(binding, url)| binding.prepare(format!("{url}/{rest}")));
        let mut body = String::new();
        for (t, result) in TENANTS.iter().zip(fetch_all(calls)) {
            match result {
                Ok(r) => body.push_str(&format!(
                    "{t}: {} {}\n",
                    r.status(),
                    r.text_body().trim_end()
                )),
                Err(e) => body.push_str(&format!("{t}: error: {e}\n")),
            }
        }
        return Ok(Response::ok(body));
    }
    let Some((binding, url)) = backend(tenant) else {
        return Ok(Response::text(
            404,
            format!("unknown tenant \"{tenant}\"\n"),
        ));
    };
    let resp = binding.fetch(format!("{url}/{rest}"))?;
    Ok(Response::new(resp.status()).with_body(resp.body().to_vec()))
}

sigil_sdk::export_handler!(handle);
