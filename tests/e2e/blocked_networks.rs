//! Blocked networks: `allowed_outbound_hosts = ["*"]` does not open
//! loopback, link-local (cloud metadata) or private addresses, by IP or by a
//! name that resolves to one; an entry that names such a host or address
//! explicitly does; and the admin listener is never reachable from a worker.

use crate::support::origin::Origin;
use crate::support::pki::Ca;
use crate::support::sigil::Sigil;
use crate::support::{module, module_cache, temp_dir};

/// What `worker`'s probe (routed by host `<worker>.local`) reports for one
/// subrequest to `url`, sent without a client certificate.
async fn fetch(sigil: &Sigil, worker: &str, url: &str) -> String {
    fetch_with(sigil, worker, url, "none").await
}

/// [`fetch`] presenting the worker's `binding` (or `none`).
async fn fetch_with(sigil: &Sigil, worker: &str, url: &str, binding: &str) -> String {
    let host = format!("{worker}.local");
    let addr = sigil.http.unwrap();
    reqwest::Client::builder()
        .resolve(&host, addr)
        .build()
        .unwrap()
        .get(format!("http://{host}:{}/fetch", addr.port()))
        .header("x-fetch-url", url)
        .header("x-fetch-binding", binding)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A probe worker routed by host `<name>.local`, allowed `allowed` (the
/// items of its `allowed_outbound_hosts`), with `extra` lines in its table.
fn probe_worker(name: &str, allowed: &str, extra: &str) -> String {
    format!(
        "[[workers]]\nname = \"{name}\"\nmodule = \"{}\"\nallowed_outbound_hosts = [{allowed}]\n{extra}\n[[routes]]\nhost = \"{name}.local\"\nworker = \"{name}\"\n\n",
        module("probe")
    )
}

/// A manifest with plain HTTP and admin listeners on loopback, origins
/// trusted through `ca`, and `rest` (certificates and workers).
fn manifest(ca: &Ca, rest: &str) -> String {
    format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nreload_poll_secs = 0\nmodule_cache = \"{}\"\n\n[outbound]\nca = [\"{}\"]\n\n{rest}",
        module_cache(),
        ca.cert_s(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_does_not_open_internal_networks_or_the_admin_listener() {
    let dir = temp_dir();
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let srv = ca.server("origin", &["localhost"]);
    let origin = Origin::start(&srv.cert, &srv.key, &[&ca.cert], false).await;
    let port = origin.addr.port();
    let workers = [
        probe_worker("star", "\"*\"", ""),
        probe_worker("named", "\"https://localhost:*\"", ""),
        probe_worker("ip", "\"http://127.0.0.1:*\", \"https://127.0.0.1:*\"", ""),
    ];
    let manifest = manifest(&ca, &workers.concat());
    let sigil = Sigil::start(d, &manifest);
    let admin = sigil.admin.unwrap();

    // `*` opens neither an internal IP nor a name that resolves to one.
    // (Before: every one of these reached its target.)
    for url in [
        format!("https://127.0.0.1:{port}/x"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        format!("http://[::1]:{port}/"),
    ] {
        let body = fetch(&sigil, "star", &url).await;
        assert!(body.starts_with("err HostNotAllowed"), "{url}: {body}");
    }
    let body = fetch(&sigil, "star", &format!("https://localhost:{port}/x")).await;
    assert!(
        body.contains("resolves only to internal addresses"),
        "a name resolving to loopback: {body}"
    );
    let body = fetch(
        &sigil,
        "star",
        &format!("http://127.0.0.1:{}/reload", admin.port()),
    )
    .await;
    assert!(
        body.starts_with("err"),
        "the admin listener through *: {body}"
    );

    // An explicit name opens it (the S1 example's https://localhost:9443).
    let body = fetch(&sigil, "named", &format!("https://localhost:{port}/x")).await;
    assert!(body.starts_with("ok 200"), "{body}");
    // An explicit address opens it too, but never the admin listener.
    let body = fetch(&sigil, "ip", &format!("https://127.0.0.1:{port}/x")).await;
    assert!(body.starts_with("ok 200"), "{body}");
    let body = fetch(
        &sigil,
        "ip",
        &format!("http://127.0.0.1:{}/healthz", admin.port()),
    )
    .await;
    assert!(
        body.contains("admin listener, which workers never reach"),
        "{body}"
    );
    let body = fetch(
        &sigil,
        "named",
        &format!("https://localhost:{}/healthz", admin.port()),
    )
    .await;
    assert!(body.starts_with("err"), "{body}");
}

/// `*` beside an explicit entry, in one worker or in another worker bound to
/// the same certificate, opens nothing internal: what an explicit entry
/// opens is decided per request, by the entry that allowed it. Before, a
/// pool resolved every name any of its workers named explicitly, for any
/// port and any request, so `*` reached the admin listener and every port
/// of `localhost` (found by an outside attack).
#[tokio::test(flavor = "multi_thread")]
async fn an_explicit_entry_opens_only_its_own_origin_for_its_own_worker() {
    let dir = temp_dir();
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let srv = ca.server("origin", &["localhost"]);
    let client = ca.client("shared", "shared");
    let origin = Origin::start(&srv.cert, &srv.key, &[&ca.cert], false).await;
    let port = origin.addr.port();
    let bound = "[[workers.mtls_certificates]]\nbinding = \"X\"\ncertificate = \"shared\"\n";
    let certificate = format!(
        "[[certificates]]\nname = \"shared\"\ncert = \"{}\"\nkey = \"{}\"\n\n",
        client.cert_s(),
        client.key_s(),
    );
    let mixed = format!("\"https://localhost:{port}\", \"*\"");
    let workers = [
        certificate,
        probe_worker("mixed", &mixed, bound),
        probe_worker("star", "\"*\"", bound),
    ];
    let manifest = manifest(&ca, &workers.concat());
    let sigil = Sigil::start(d, &manifest);
    let admin = sigil.admin.unwrap();
    // The explicit origin itself still works, with or without the binding.
    for binding in ["none", "X"] {
        let body = fetch_with(
            &sigil,
            "mixed",
            &format!("https://localhost:{port}/x"),
            binding,
        )
        .await;
        assert!(body.starts_with("ok 200"), "{binding}: {body}");
    }
    // One worker: `*` does not stretch its explicit localhost:<port> to other
    // ports of localhost, the admin listener's among them.
    for binding in ["none", "X"] {
        let body = fetch_with(
            &sigil,
            "mixed",
            &format!("http://localhost:{}/healthz", admin.port()),
            binding,
        )
        .await;
        assert!(body.starts_with("err"), "mixed, {binding}: {body}");
        assert!(!body.contains("ok: "), "reached the admin listener: {body}");
    }
    // Another worker bound to the same certificate gets nothing internal
    // from the first worker's explicit entry.
    for url in [
        format!("http://localhost:{}/reload", admin.port()),
        format!("https://localhost:{port}/x"),
    ] {
        let body = fetch_with(&sigil, "star", &url, "X").await;
        assert!(
            body.contains("resolves only to internal addresses"),
            "star via the shared certificate, {url}: {body}"
        );
    }
}
