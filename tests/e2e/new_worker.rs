//! End to end: `sigil new` writes a working starter in each language,
//! `sigil build` builds it (installing the toolchain when missing) and it
//! serves.

use crate::support::sigil::{Sigil, binary};
use crate::support::{ensure_tool, temp_dir};
use std::process::Command;

/// Run `sigil <args>` in `dir`: (success, stdout and stderr).
fn run_sigil(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run sigil");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Run `sigil <args>` in `dir` and require success; its output.
fn sigil(dir: &std::path::Path, args: &[&str]) -> String {
    let (ok, text) = run_sigil(dir, args);
    assert!(ok, "sigil {args:?} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn sigil_new_writes_a_starter_in_each_language_that_builds_and_serves() {
    ensure_tool("npm", "--version", "npm");
    let dir = temp_dir();
    let d = dir.path();
    let langs = [
        ("hello-sdk", "rust"),
        ("hello-wasi", "rust-component"),
        ("hello-js", "js"),
        ("hello-py", "python"),
    ];
    for (name, lang) in langs {
        let out = sigil(d, &["new", name, "--lang", lang]);
        assert!(
            out.contains(&format!("added worker \"{name}\" to sigil.toml")),
            "{out}"
        );
    }
    // The same name twice is refused.
    let again = Command::new(binary())
        .args(["new", "hello-js", "--lang", "js"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let manifest = std::fs::read_to_string(d.join("sigil.toml")).unwrap();
    assert!(
        manifest.contains("build = { lang = \"js\", entry = \"hello-js/worker.js\" }"),
        "{manifest}"
    );
    let built = sigil(d, &["build"]);
    assert!(
        built.contains("componentize-js") && built.contains("componentize-py"),
        "{built}"
    );
    let checked = sigil(d, &["check"]);
    assert!(
        checked.contains("worker \"hello-sdk\": sigil-sdk module"),
        "{checked}"
    );
    assert!(
        checked.contains("worker \"hello-py\": wasi:http/proxy component"),
        "{checked}"
    );
    // Serve them on a free port: each answers.
    let text = manifest.replace("http = \"127.0.0.1:8080\"", "http = \"127.0.0.1:0\"");
    std::fs::write(d.join("sigil.toml"), text).unwrap();
    let s = Sigil::serve_file(&d.join("sigil.toml")).expect("serve the starters");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (name, _) in langs {
        let resp = client
            .get(s.http_url("/hi"))
            .header("host", format!("{name}.localhost"))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{name}: {body}");
        assert!(
            body.starts_with(&format!("hello from {name}: ")),
            "{name}: {body}"
        );
        assert!(body.contains("/hi"), "{name}: {body}");
    }
}

/// `sigil new` never leaves a manifest that stops loading. Before, a second
/// `sigil new my-worker` (its directory moved away) appended a duplicate
/// worker and route, and an invalid manifest was appended to without a word.
#[test]
fn sigil_new_refuses_a_duplicate_worker_and_an_invalid_manifest() {
    let dir = temp_dir();
    let d = dir.path();
    let run = |args: &[&str]| run_sigil(d, args);
    let (ok, out) = run(&["new", "my-worker", "--lang", "js"]);
    assert!(ok, "{out}");
    std::fs::rename(d.join("my-worker"), d.join("moved")).unwrap();
    let before = std::fs::read_to_string(d.join("sigil.toml")).unwrap();
    let (ok, out) = run(&["new", "my-worker", "--lang", "python"]);
    assert!(!ok, "a duplicate worker was added:\n{out}");
    assert!(
        out.contains("worker \"my-worker\" is already declared; choose another name"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("sigil.toml")).unwrap(),
        before
    );
    assert!(!d.join("my-worker").exists(), "files were written anyway");
    // An invalid manifest: refused, named, left as it was.
    let broken = format!("bogus = 1\n{before}");
    std::fs::write(d.join("sigil.toml"), &broken).unwrap();
    let (ok, out) = run(&["new", "other", "--lang", "js"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("is not a valid manifest, so `sigil new` adds nothing to it"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("sigil.toml")).unwrap(),
        broken
    );
    assert!(!d.join("other").exists());
    // A valid manifest whose workers are an inline array: appending a
    // [[workers]] table would break it (before: "added", then invalid).
    let inline = "workers = []\n\n[server]\nhttp = \"127.0.0.1:8080\"\n";
    std::fs::write(d.join("sigil.toml"), inline).unwrap();
    let (ok, out) = run(&["new", "zz", "--lang", "js"]);
    assert!(!ok, "{out}");
    assert!(out.contains("would leave it invalid"), "{out}");
    assert_eq!(
        std::fs::read_to_string(d.join("sigil.toml")).unwrap(),
        inline
    );
    assert!(!d.join("zz").exists());
}

/// `sigil new -c` naming a device or a FIFO is refused as `check` and
/// `serve` refuse it. Before, `/dev/zero` was read until memory ran out
/// and a FIFO blocked forever.
#[test]
fn sigil_new_refuses_a_manifest_that_is_a_device_or_a_fifo() {
    let dir = temp_dir();
    let d = dir.path();
    let fifo = d.join("fifo.toml");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    for (manifest, what) in [("/dev/zero", "a character device"), ("fifo.toml", "a FIFO")] {
        let mut child = Command::new(binary())
            .args(["new", "zz", "--lang", "js", "-c", manifest])
            .current_dir(d)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run sigil");
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(20) {
                child.kill().unwrap();
                panic!("sigil new -c {manifest} did not finish");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains(&format!("it is {what}, not a regular file")),
            "{manifest}: {text}"
        );
        assert!(!d.join("zz").exists(), "files were written anyway");
    }
}
