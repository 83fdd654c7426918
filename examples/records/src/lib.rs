//! Scenario S1: the same code runs as two workers, `writer` and `reader`.
//! Each relays `/records` to the records origin with a plain `fetch()`, which
//! presents the worker's default binding: its own client certificate. The
//! origin decides from that certificate alone who may write.
//!
//! The origin's URL comes from the worker's `RECORDS_ORIGIN` variable.

use sigil_sdk::{Error, Request, Response, fetch};

fn handle(req: Request) -> Result<Response, Error> {
    let origin =
        std::env::var("RECORDS_ORIGIN").unwrap_or_else(|_| "https://localhost:9443".into());
    let mut url = format!("{origin}{}", req.path());
    if let Some(q) = req.query() {
        url.push('?');
        url.push_str(q);
    }
    let upstream = Request::new(req.method().clone(), url).with_body(req.body().to_vec());
    let resp = fetch(upstream)?;
    let mut out = Response::new(resp.status()).with_body(resp.body().to_vec());
    if let Some(ct) = resp.header("content-type") {
        out = out.with_header("content-type", ct);
    }
    Ok(out)
}

sigil_sdk::export_handler!(handle);
