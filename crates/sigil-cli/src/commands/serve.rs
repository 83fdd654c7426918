//! `sigil serve`: serve a manifest until SIGTERM/SIGINT, printing the
//! addresses and a curl line per route and hostname once listening.

use sigil_runtime::config::{ClientCertMode, LoadedManifest};
use sigil_runtime::{BoundAddresses, Server};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Serve the manifest at `config`; drain requests for up to `drain` on shutdown.
pub async fn run(config: &Path, drain: Duration) -> anyhow::Result<()> {
    let server = match Server::load_with(config, &super::load_options()) {
        Ok(server) => server,
        Err(errors) => anyhow::bail!("the configuration is not valid:\n{errors}"),
    };
    let loaded = server.manifest().clone();
    server
        .serve(
            drain,
            |bound| print_try_urls(&loaded, bound),
            sigil_runtime::shutdown_signal(),
        )
        .await
}

/// `examples/../certs/x.pem` → `certs/x.pem`, for display.
fn tidy(path: &Path) -> String {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect::<PathBuf>().display().to_string()
}

fn print_try_urls(loaded: &LoadedManifest, bound: &BoundAddresses) {
    let m = &loaded.manifest;
    println!(
        "sigil: listening{}{}{}",
        bound.http.map(|a| format!(" http={a}")).unwrap_or_default(),
        bound
            .https
            .map(|a| format!(" https={a}"))
            .unwrap_or_default(),
        bound
            .admin
            .map(|a| format!(" admin={a}"))
            .unwrap_or_default()
    );
    let mut lines = Vec::new();
    for r in &m.routes {
        let host = r.host.as_deref().unwrap_or("*");
        let path = r.path.as_deref().unwrap_or("/");
        let protected = |name: &str| {
            m.hostnames
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(name) && h.client_cert != ClientCertMode::Off)
        };
        if let Some(a) = bound.http
            && !protected(host)
        {
            let (name, resolve) = if host == "*" {
                (a.ip().to_string(), String::new())
            } else {
                (
                    host.to_string(),
                    format!(" --resolve {host}:{}:{}", a.port(), a.ip()),
                )
            };
            lines.push(format!(
                "  {:<10} curl{resolve} http://{name}:{}{path}",
                r.worker,
                a.port()
            ));
        }
        let Some(a) = bound.https else { continue };
        for h in m
            .hostnames
            .iter()
            .filter(|h| host == "*" || h.name.eq_ignore_ascii_case(host))
        {
            // The development PKI keeps the issuing CA next to the certificate.
            let ca = h.cert.with_file_name("server-ca.pem");
            let cacert = if ca.exists() {
                format!(" --cacert {}", tidy(&ca))
            } else {
                " --cacert <server CA>".to_string()
            };
            let client = match h.client_cert {
                ClientCertMode::Off => String::new(),
                mode => format!(
                    " --cert <client.pem> --key <client.key>   ({} a certificate from {})",
                    if mode == ClientCertMode::Require {
                        "requires"
                    } else {
                        "accepts"
                    },
                    h.client_ca
                        .iter()
                        .map(|p| tidy(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            lines.push(format!(
                "  {:<10} curl --resolve {name}:{port}:{ip}{cacert} https://{name}:{port}{path}{client}",
                r.worker,
                name = h.name,
                port = a.port(),
                ip = a.ip()
            ));
        }
    }
    if !lines.is_empty() {
        println!("sigil: try");
        for l in lines {
            println!("{l}");
        }
    }
    if let Some(a) = bound.admin {
        println!("sigil: metrics at http://{a}/metrics");
    }
}
