//! `sigil check`: validate a manifest and every file it names.

use sigil_runtime::Server;
use std::path::Path;

/// Check the manifest at `config`, printing warnings and a summary.
pub fn check(config: &Path) -> anyhow::Result<()> {
    // Warnings are printed below, once, not also logged.
    let options = sigil_runtime::LoadOptions {
        caller_prints_warnings: true,
        ..super::load_options()
    };
    match Server::load_with(config, &options) {
        Ok(server) => {
            let g = server.runtime().current();
            for w in &g.warnings {
                println!("warning: {w}");
            }
            let mut workers: Vec<_> = g.workers.values().collect();
            workers.sort_by(|a, b| a.name.cmp(&b.name));
            for w in workers {
                println!("worker \"{}\": {}", w.name, w.handler.kind());
            }
            println!(
                "{}: ok ({} workers, {} hostnames, {} certificates, {} routes)",
                config.display(),
                g.workers.len(),
                g.hostnames.len(),
                server.manifest().manifest.certificates.len(),
                server.manifest().manifest.routes.len()
            );
            Ok(())
        }
        Err(errors) => anyhow::bail!("{} problem(s):\n{errors}", errors.0.len()),
    }
}
