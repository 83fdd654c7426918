//! Operating Sigil: manifest paths that name devices or FIFOs are refused at
//! once (by `sigil check` and by a reload, which never hangs and never stops
//! shutdown), certificate expiry is exported as notAfter timestamps that a
//! scrape always finds, and a reload says which `[server]` settings need a
//! restart.

use crate::support::pki::Ca;
use crate::support::sigil::{Sigil, binary};
use crate::support::{module, module_cache, temp_dir};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn hello_manifest(http: &str, extra: &str) -> String {
    format!(
        "[server]\nhttp = \"{http}\"\nadmin = \"127.0.0.1:0\"\nreload_poll_secs = 0\nmodule_cache = \"{}\"\n\n{extra}\n[[workers]]\nname = \"w\"\nmodule = \"{}\"\n\n[[routes]]\nworker = \"w\"\n",
        module_cache(),
        module("probe")
    )
}

/// `sigil check -c <path>`, killed after 10 s; (exited in time, success, output).
fn check_within_10s(path: &Path) -> (bool, bool, String) {
    let mut child = Command::new(binary())
        .args(["check", "-c"])
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (true, out.status.success(), text);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    (false, false, String::new())
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_naming_devices_or_fifos_are_refused_at_once() {
    // Before: /dev/zero was read until out of memory; a FIFO hung check,
    // POST /reload, and then shutdown.
    let dir = temp_dir();
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let client = ca.client("client", "client");
    let fifo = d.join("fifo.pem");
    mkfifo(&fifo);
    for (path, what) in [
        ("/dev/zero", "a character device"),
        (fifo.to_str().unwrap(), "a FIFO"),
    ] {
        let cert_section = format!(
            "[[certificates]]\nname = \"c\"\ncert = \"{path}\"\nkey = \"{}\"\n",
            client.key_s()
        );
        let manifest = d.join("bad.toml");
        std::fs::write(&manifest, hello_manifest("127.0.0.1:0", &cert_section)).unwrap();
        let (in_time, ok, output) = check_within_10s(&manifest);
        assert!(in_time, "sigil check hung on {path}");
        assert!(
            !ok && output.contains(&format!("it is {what}, not a regular file")),
            "{output}"
        );
    }
    // A running server: a reload onto a FIFO is refused at once, the old
    // configuration keeps serving, and SIGTERM still stops it.
    let mut sigil = Sigil::start(d, &hello_manifest("127.0.0.1:0", ""));
    let manifest = d.join("sigil.toml");
    let cert_section = format!(
        "[[certificates]]\nname = \"c\"\ncert = \"{}\"\nkey = \"{}\"\n",
        fifo.display(),
        client.key_s()
    );
    std::fs::write(&manifest, hello_manifest("127.0.0.1:0", &cert_section)).unwrap();
    let started = Instant::now();
    let reload = reqwest::Client::new()
        .post(format!("http://{}/reload", sigil.admin.unwrap()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("POST /reload answers");
    assert_eq!(reload.status(), 422);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(reload.text().await.unwrap().contains("it is a FIFO"));
    let still = reqwest::get(sigil.http_url("/")).await.unwrap();
    assert_eq!(still.status(), 200);
    sigil.signal("TERM");
    assert!(
        sigil.wait_exit(Duration::from_secs(15)).is_some(),
        "SIGTERM did not stop sigil"
    );
}

/// The series of `name` in the admin metrics, as (labels, value) text lines.
async fn series(sigil: &Sigil, name: &str) -> Vec<String> {
    let text = reqwest::get(format!("http://{}/metrics", sigil.admin.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_expiry_is_exported_as_not_after_and_always_there() {
    // Before: seconds-until-expiry gauges were cleared and set again every
    // 500 ms, so a scrape could find no series at all.
    let dir = temp_dir();
    let d = dir.path();
    let ca = Ca::new(d, "identity-ca");
    let identity = format!(
        "[identity]\ntrust_domain = \"sigil.test\"\nca_cert = \"{}\"\nca_key = \"{}\"\nttl_secs = 3\n",
        ca.cert_s(),
        ca.key.display()
    );
    let sigil = Sigil::start(d, &hello_manifest("127.0.0.1:0", &identity));
    let name = "sigil_certificate_not_after_seconds";
    let started = Instant::now();
    let mut values = std::collections::BTreeSet::new();
    while started.elapsed() < Duration::from_secs(4) {
        let found = series(&sigil, name).await;
        let line = found
            .iter()
            .find(|l| l.contains("certificate=\"identity:w\""))
            .unwrap_or_else(|| panic!("a scrape without the identity's series: {found:?}"));
        let value: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        values.insert(value);
    }
    let now = sigil_pki::unix_now();
    assert!(
        values.iter().all(|v| (now - 10..now + 10).contains(v)),
        "{values:?}"
    );
    assert!(values.len() >= 2, "renewals moved notAfter: {values:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_says_which_server_settings_need_a_restart() {
    // Before: a changed [server] section was ignored without a word.
    let dir = temp_dir();
    let d = dir.path();
    let sigil = Sigil::start(d, &hello_manifest("127.0.0.1:0", ""));
    std::fs::write(
        d.join("sigil.toml"),
        hello_manifest("127.0.0.1:1", "[limits]\ncpu_ms = 40\n"),
    )
    .unwrap();
    let reload = reqwest::Client::new()
        .post(format!("http://{}/reload", sigil.admin.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sigil
            .logs()
            .contains("server.http changed; it applies only at start"),
        "{}",
        sigil.logs()
    );
    let counted = series(&sigil, "sigil_reload_ignored_settings_total").await;
    assert!(
        counted
            .iter()
            .any(|l| l.contains("key=\"http\"") && l.ends_with(" 1")),
        "{counted:?}"
    );
    // Still serving where it started.
    assert_eq!(
        reqwest::get(sigil.http_url("/")).await.unwrap().status(),
        200
    );
}

/// The admin endpoints answer operators' tools, not web pages: a page on
/// another site could POST /reload (CSRF), and one reaching a loopback
/// listener through DNS rebinding could read /metrics. Before, both got 200.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_refuses_what_web_pages_send() {
    let dir = temp_dir();
    let sigil = Sigil::start(dir.path(), &hello_manifest("127.0.0.1:0", ""));
    let admin = sigil.admin.unwrap();
    let c = reqwest::Client::new();
    let reload = format!("http://{admin}/reload");
    let metrics = format!("http://{admin}/metrics");
    // What curl, Prometheus and the tests send.
    assert_eq!(c.post(&reload).send().await.unwrap().status(), 200);
    assert_eq!(c.get(&metrics).send().await.unwrap().status(), 200);
    let localhost = format!("http://localhost:{}/healthz", admin.port());
    assert_eq!(c.get(&localhost).send().await.unwrap().status(), 200);
    // A form or fetch() on another site.
    let csrf = c
        .post(&reload)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(csrf.status(), 403);
    assert!(csrf.text().await.unwrap().contains("web pages"));
    let fetched = c
        .post(&reload)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 403);
    // DNS rebinding: the page's own name in Host, on a loopback listener.
    let rebound = c
        .get(&metrics)
        .header("host", format!("evil.example:{}", admin.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    assert!(
        rebound
            .text()
            .await
            .unwrap()
            .contains("not a loopback name")
    );
}

/// An identity CA that expires while Sigil runs: renewal fails once, says
/// the CA expired, and is tried again 30 s later. Before, the failure was
/// logged at every renewal tick (twice a second per worker) and said only
/// "certificate expired".
#[tokio::test(flavor = "multi_thread")]
async fn an_identity_ca_that_expires_while_serving_is_reported_once_not_every_tick() {
    let dir = temp_dir();
    let d = dir.path();
    let now = time::OffsetDateTime::now_utc();
    let ca = sigil_pki::CertificateAuthority::generate_with_validity(
        "Brief Identity CA",
        now - time::Duration::hours(1),
        now + time::Duration::seconds(4),
    )
    .unwrap();
    std::fs::write(d.join("id-ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(d.join("id-ca.key"), ca.key_pem()).unwrap();
    let identity = format!(
        "[identity]\ntrust_domain = \"sigil.test\"\nca_cert = \"{}\"\nca_key = \"{}\"\nttl_secs = 2\n",
        d.join("id-ca.pem").display(),
        d.join("id-ca.key").display()
    );
    let sigil = Sigil::start(d, &hello_manifest("127.0.0.1:0", &identity));
    tokio::time::sleep(Duration::from_secs(9)).await;
    let logs = sigil.logs();
    let failures: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("identity renewal failed"))
        .collect();
    assert!(!failures.is_empty(), "no renewal failed:\n{logs}");
    assert!(
        failures.len() <= 2,
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        failures[0].contains("the CA expired at") && failures[0].contains("next try in 30 s"),
        "{}",
        failures[0]
    );
}
