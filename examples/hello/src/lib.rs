//! The hello worker: a greeting, plus the inbound client certificate details
//! when the request came over mutual TLS.

use sigil_sdk::{Request, Response};

fn handle(req: Request) -> Response {
    let mut body = format!("hello from sigil: {} {}\n", req.method(), req.path());
    if let Some(auth) = req.client_auth() {
        body.push_str(&format!(
            "client certificate: presented={} verified={} subject={:?} spiffe_id={:?}\n",
            auth.cert_presented, auth.cert_verified, auth.cert_subject_dn, auth.spiffe_id
        ));
    }
    sigil_sdk::log::info(&format!("hello served {}", req.path()));
    Response::ok(body)
}

sigil_sdk::export_handler!(handle);
