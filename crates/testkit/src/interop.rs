//! Origins for the identity tests: the shared recording rustls origin
//! (`support::origin`), nginx (the Debian package) and a Python `ssl` origin,
//! all on 127.0.0.1; plus an independent SPIFFE X.509-SVID check with
//! x509-parser.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::*;

pub use crate::origin::{Body, Origin, unix_now, uri_sans};

/// The origin the identity tests record with: the shared test origin,
/// client certificates optional, answering `cn=<cn> uri=<uri> path=<path>`.
pub async fn recording_origin(cert: &Path, key: &Path, client_ca: &Path) -> Origin {
    Origin::start_with(cert, key, &[client_ca], false, Body::CnAndUri).await
}

/// Check `der` is a Sigil worker X.509-SVID in `trust_domain` the way an
/// origin would (the rules `sigil_origin::IdentityVerifier` applies): exactly
/// one URI SAN `spiffe://<trust_domain>/worker/<name>` with a valid path,
/// leaf not a CA, no keyCertSign / cRLSign, clientAuth EKU. Returns the
/// worker name.
pub fn identify_worker(der: &[u8], trust_domain: &str) -> Result<String, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| format!("parse: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the certificate".into());
    }
    let uris = uri_sans(&cert);
    if uris.len() != 1 {
        return Err(format!(
            "{} URI SANs ({uris:?}); an SVID has exactly one",
            uris.len()
        ));
    }
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) if bc.ca => {
                return Err("leaf is a CA (basicConstraints CA:true)".into());
            }
            ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => {
                return Err("leaf has keyCertSign or cRLSign".into());
            }
            _ => {}
        }
    }
    let eku = cert
        .extended_key_usage()
        .map_err(|e| format!("EKU: {e}"))?
        .ok_or("no extended key usage extension")?;
    if !eku.value.client_auth {
        return Err("EKU lacks clientAuth".into());
    }
    let prefix = format!("spiffe://{trust_domain}/worker/");
    let name = uris[0]
        .strip_prefix(&prefix)
        .ok_or_else(|| format!("{:?} is not a worker of {trust_domain}", uris[0]))?;
    let ok_segment = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !ok_segment || uris[0].len() > 2048 {
        return Err(format!("{:?}: invalid SPIFFE worker path", uris[0]));
    }
    Ok(name.to_string())
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until `port` accepts TCP connections, or panic with `describe()` if
/// `child` exits or `timeout` passes.
fn wait_listening(
    port: u16,
    child: &mut Child,
    timeout: Duration,
    what: &str,
    describe: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening:\n{}",
                describe()
            );
        }
        if Instant::now() > deadline {
            panic!(
                "{what} did not listen on 127.0.0.1:{port} within {timeout:?}:\n{}",
                describe()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process killed (and reaped) on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The nginx binary the Debian package installs.
pub const NGINX: &str = "/usr/sbin/nginx";

/// nginx as an mTLS origin, killed on drop.
pub struct Nginx {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its directory (config, logs, temp paths).
    pub dir: PathBuf,
    _child: Killed,
}

impl Nginx {
    /// Install nginx when it is missing (never skip; fail saying what to
    /// install when that is not possible).
    pub fn require() {
        crate::ensure_tool(NGINX, "-v", "nginx-light");
    }

    /// Start nginx on a free port in `dir`, with server `cert`/`key`,
    /// requiring client certificates from `client_ca`, and `locations` (the
    /// body of the `server` block after the TLS settings).
    pub fn start(dir: &Path, cert: &Path, key: &Path, client_ca: &Path, locations: &str) -> Nginx {
        Self::require();
        let dir = dir.join("nginx");
        std::fs::create_dir_all(&dir).unwrap();
        let version = Command::new(NGINX).arg("-V").output().unwrap();
        let build = String::from_utf8_lossy(&version.stderr).into_owned();
        let d = dir.display();
        let mut temp_paths = format!("    client_body_temp_path {d}/client_body;\n");
        for module in ["proxy", "fastcgi", "uwsgi", "scgi"] {
            if !build.contains(&format!("--without-http_{module}_module")) {
                temp_paths.push_str(&format!("    {module}_temp_path {d}/{module};\n"));
            }
        }
        // Running as root, nginx would hand its temp paths to `nobody`.
        let user = if rustix::process::geteuid().is_root() {
            "user root;\n"
        } else {
            ""
        };
        let port = free_port();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\n{user}\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             {temp_paths}\
             \x20   access_log {d}/access.log;\n\
             \x20   default_type text/plain;\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port} ssl;\n\
             \x20       server_name localhost;\n\
             \x20       ssl_certificate {cert};\n\
             \x20       ssl_certificate_key {key};\n\
             \x20       ssl_client_certificate {ca};\n\
             \x20       ssl_verify_client on;\n\
             \x20       ssl_verify_depth 2;\n\
             {locations}\n\
             \x20   }}\n\
             }}\n",
            cert = cert.display(),
            key = key.display(),
            ca = client_ca.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, &conf).unwrap();
        let test = Command::new(NGINX)
            .arg("-t")
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .output()
            .unwrap();
        assert!(
            test.status.success(),
            "nginx -t refused the generated config:\n{}\n{conf}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut child = Killed(child);
        let log = dir.join("error.log");
        wait_listening(
            port,
            &mut child.0,
            Duration::from_secs(20),
            "nginx",
            &|| std::fs::read_to_string(&log).unwrap_or_default(),
        );
        Nginx {
            port,
            dir,
            _child: child,
        }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// A Python `ssl` HTTPS origin requiring a client certificate from the CA
/// and answering with what `getpeercert()` gave it.
const PYTHON_ORIGIN: &str = r#"
import http.server, ssl, sys

port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(ca)

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        peer = self.connection.getpeercert() or {}
        uris = [v for (k, v) in peer.get("subjectAltName", ()) if k == "URI"]
        cn = [v for rdn in peer.get("subject", ()) for (k, v) in rdn if k == "commonName"]
        worker = self.headers.get("sigil-worker", "")
        body = ("uri=%s cn=%s worker=%s" % (",".join(uris), ",".join(cn), worker)).encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("python-origin: " + (fmt % args) + "\n")

server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
# Handshake in the handler thread, so a failing client cannot stall accept().
server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
print("ready", flush=True)
server.serve_forever()
"#;

/// The Python origin, killed on drop.
pub struct PythonOrigin {
    /// Its port on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
    _child: Killed,
}

impl PythonOrigin {
    /// Write the script into `dir` and start it with server `cert`/`key`,
    /// requiring client certificates from `client_ca`.
    pub fn start(dir: &Path, cert: &Path, key: &Path, client_ca: &Path) -> PythonOrigin {
        crate::ensure_tool("python3", "--version", "python3");
        let script = dir.join("origin.py");
        std::fs::write(&script, PYTHON_ORIGIN).unwrap();
        let log = dir.join("python-origin.log");
        let port = free_port();
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(cert)
            .arg(key)
            .arg(client_ca)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 must be installed to run the Python ssl interop test");
        let mut child = Killed(child);
        let log2 = log.clone();
        wait_listening(
            port,
            &mut child.0,
            Duration::from_secs(20),
            "python3",
            &|| std::fs::read_to_string(&log2).unwrap_or_default(),
        );
        PythonOrigin {
            port,
            log,
            _child: child,
        }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// What the script wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
