//! Servers in their own processes, so each one's CPU time can be read from
//! `/proc/<pid>/stat` apart from the load generator's and from each other's.
//!
//! The parent starts a binary that handles `--serve-child <spec.json>` (the
//! `suite` binary re-executing itself) with [`ChildServer::spawn`]. The
//! child ([`child_main`]) starts the [`ServerSpec`]'s server in-process on
//! `127.0.0.1:0`, prints one line `SERVING {"addr": .., "info": {..}}`, then
//! reads commands on stdin: `counters` answers `COUNTERS {json}` (the
//! origin's handshake and request counters), `stop` or the end of input
//! shuts the server down and exits. Its stderr goes to a file next to the
//! spec. The parent kills a child that does not stop in time, and
//! `kill_on_drop` covers every other way the parent lets go of it.

mod serve;
mod spec;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Mutex;

pub use serve::child_main;
pub use spec::{BareProxySpec, BareServerSpec, OriginSpec, ServerSpec};

/// The hidden command-line flag a server child is started with.
pub const CHILD_FLAG: &str = "--serve-child";

/// Prefix of the line a child prints once it serves.
const SERVING: &str = "SERVING";
/// Prefix of a child's answer to `counters`.
const COUNTERS: &str = "COUNTERS";

/// Longest a child may take to start serving (Sigil with 10,000
/// hostnames loads in a few seconds; a cold module cache compiles).
pub const START_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest a child may take to answer a command or to stop.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// What a child prints once it serves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ready {
    /// The address clients connect to.
    pub addr: SocketAddr,
    /// Server details (Sigil: load time, workers, hostnames, pools).
    pub info: serde_json::Value,
}

/// The child's stdin and stdout, shared by whoever sends it commands.
struct Pipes {
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// A handle to send commands to a child; cheap to clone.
#[derive(Clone)]
pub struct Control {
    name: Arc<str>,
    pipes: Arc<Mutex<Pipes>>,
}

impl Control {
    /// The child's counters (`{}` for servers that count nothing).
    pub async fn counters(&self) -> Result<serde_json::Value> {
        let mut p = self.pipes.lock().await;
        p.stdin.write_all(b"counters\n").await?;
        p.stdin.flush().await?;
        let line = tokio::time::timeout(COMMAND_TIMEOUT, expect(&mut p.stdout, COUNTERS))
            .await
            .with_context(|| format!("{} did not answer `counters`", self.name))??;
        Ok(serde_json::from_str(&line)?)
    }
}

/// Reads lines until one starts with `prefix`; returns the rest of it.
async fn expect(lines: &mut Lines<BufReader<ChildStdout>>, prefix: &str) -> Result<String> {
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix(prefix) {
            return Ok(rest.trim().to_string());
        }
    }
    anyhow::bail!("the child closed its output before a {prefix} line")
}

/// A server running in a child process.
pub struct ChildServer {
    name: String,
    pid: u32,
    ready: Ready,
    child: Child,
    control: Control,
    stderr: PathBuf,
}

impl ChildServer {
    /// Writes `spec` to `<dir>/<name>.json` and runs `exe --serve-child`
    /// on it (stderr to `<dir>/<name>.stderr`); returns once it serves.
    pub async fn spawn(exe: &Path, dir: &Path, name: &str, spec: &ServerSpec) -> Result<Self> {
        let spec_path = dir.join(format!("{name}.json"));
        std::fs::write(&spec_path, serde_json::to_vec(spec)?)
            .with_context(|| format!("writing {}", spec_path.display()))?;
        let stderr = dir.join(format!("{name}.stderr"));
        let mut child = tokio::process::Command::new(exe)
            .arg(CHILD_FLAG)
            .arg(&spec_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let pid = child.id().context("the child has no pid")?;
        let stdin = child.stdin.take().context("no child stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("no child stdout")?).lines();
        let ready = match tokio::time::timeout(START_TIMEOUT, expect(&mut stdout, SERVING)).await {
            Ok(Ok(line)) => serde_json::from_str::<Ready>(&line)?,
            Ok(Err(e)) => return Err(e.context(start_failure(name, &stderr))),
            Err(_) => anyhow::bail!(
                "server child {name} did not start within {START_TIMEOUT:?}; {}",
                tail(&stderr)
            ),
        };
        let control = Control {
            name: name.into(),
            pipes: Arc::new(Mutex::new(Pipes { stdin, stdout })),
        };
        Ok(ChildServer {
            name: name.to_string(),
            pid,
            ready,
            child,
            control,
            stderr,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.ready.addr
    }

    /// What the child said about its server when it was ready.
    pub fn info(&self) -> &serde_json::Value {
        &self.ready.info
    }

    /// A handle to send the child commands.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Tells the child to stop and waits for it; kills it if it does not
    /// exit within 15 s. Fails if it exited unsuccessfully.
    pub async fn stop(mut self) -> Result<()> {
        {
            let mut p = self.control.pipes.lock().await;
            let _ = p.stdin.write_all(b"stop\n").await;
            let _ = p.stdin.shutdown().await;
        }
        let status = match tokio::time::timeout(COMMAND_TIMEOUT, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                self.child.kill().await?;
                anyhow::bail!("{} did not stop within {COMMAND_TIMEOUT:?}", self.name);
            }
        };
        anyhow::ensure!(
            status.success(),
            "{} exited with {status}; {}",
            self.name,
            tail(&self.stderr)
        );
        Ok(())
    }
}

/// "`name` did not start" with the end of its stderr.
fn start_failure(name: &str, stderr: &Path) -> String {
    format!("server child {name} did not start; {}", tail(stderr))
}

/// The last lines of a child's stderr file, for an error message.
fn tail(stderr: &Path) -> String {
    let text = std::fs::read_to_string(stderr).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    if lines.is_empty() {
        format!("its stderr ({}) is empty", stderr.display())
    } else {
        format!(
            "stderr ({}):\n{}",
            stderr.display(),
            lines[start..].join("\n")
        )
    }
}
