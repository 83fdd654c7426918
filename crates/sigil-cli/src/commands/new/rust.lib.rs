//! {{name}}: a Sigil worker written against sigil-sdk.

use sigil_sdk::{Request, Response};

fn handle(req: Request) -> Response {
    Response::ok(format!("hello from {{name}}: {} {}\n", req.method(), req.path()))
}

sigil_sdk::export_handler!(handle);
