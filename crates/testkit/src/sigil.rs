//! Running the real `sigil` binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Path of the `sigil` binary under test: `$SIGIL_BIN` when set, else the
/// `sigil` beside the running test's `deps/` directory (where cargo builds a
/// package's binaries before running its integration tests).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SIGIL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let beside_deps = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("sigil"))
        .filter(|p| p.is_file());
    beside_deps.unwrap_or_else(|| {
        panic!(
            "cannot find the sigil binary next to {}; build it (cargo build -p sigil-cli) or set SIGIL_BIN",
            exe.display()
        )
    })
}

/// A running `sigil serve`; killed on drop.
pub struct Sigil {
    child: Child,
    /// Plain HTTP address.
    pub http: Option<SocketAddr>,
    /// HTTPS address.
    pub https: Option<SocketAddr>,
    /// Admin address.
    pub admin: Option<SocketAddr>,
    /// The manifest path.
    pub manifest: PathBuf,
    logs: Arc<Mutex<String>>,
}

fn parse_addr(line: &str, key: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|a| a.parse().ok())
}

impl Sigil {
    /// Write `manifest` to `dir/sigil.toml` and serve it; panics with the
    /// logs if it does not come up.
    pub fn start(dir: &Path, manifest: &str) -> Sigil {
        Self::try_start(dir, manifest).unwrap_or_else(|logs| panic!("sigil did not start:\n{logs}"))
    }

    /// Like [`start`](Self::start), returning the logs when it fails to come up.
    pub fn try_start(dir: &Path, manifest: &str) -> Result<Sigil, String> {
        let path = dir.join("sigil.toml");
        std::fs::write(&path, manifest).unwrap();
        Self::serve_file(&path)
    }

    /// Serve an existing manifest file.
    pub fn serve_file(path: &Path) -> Result<Sigil, String> {
        let mut child = Command::new(binary())
            .args(["serve", "--drain-secs", "10", "-c"])
            .arg(path)
            .env("RUST_LOG", "info,sigil_runtime=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sigil");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let err_logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = err_logs.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let out_logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("sigil: listening") {
                    let _ = tx.send(line.clone());
                }
                let mut l = out_logs.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => Ok(Sigil {
                child,
                http: parse_addr(&line, "http"),
                https: parse_addr(&line, "https"),
                admin: parse_addr(&line, "admin"),
                manifest: path.to_path_buf(),
                logs,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(logs.lock().unwrap().clone())
            }
        }
    }

    /// Everything the process printed so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The process's output once it contains every one of `wanted`, or
    /// whatever it printed after `timeout` (the caller's assertion then
    /// shows it). Lines reach the test through a reader thread, so output
    /// caused by a response just received may not be there yet.
    pub fn logs_containing(&self, wanted: &[&str], timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let logs = self.logs();
            if wanted.iter().all(|w| logs.contains(w)) || std::time::Instant::now() >= deadline {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal (e.g. "HUP", "TERM").
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Wait for the process to exit (after a signal), up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// `http://<http addr>`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http.expect("no http listener"))
    }
}

impl Drop for Sigil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `sigil check -c <path>`; returns (success, combined output).
pub fn check(path: &Path) -> (bool, String) {
    let out = Command::new(binary())
        .args(["check", "-c"])
        .arg(path)
        .output()
        .expect("run sigil check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
