//! Reloads: the triggers (SIGHUP, polling the files a generation was built
//! from, `POST /reload`) all send a [`ReloadRequest`]; one loop serves them
//! in turn, builds the new generation off the async threads, and swaps it
//! in whole — or keeps serving the current one and says why.

use super::Loader;
use crate::config::{self, ManifestError, ManifestErrors};
use crate::state::{ReloadRequest, Runtime};
use crate::telemetry::metrics::{ReloadLabels, ReloadResult, metrics};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};

/// Serve reload requests one at a time until `stop` turns true.
pub(super) async fn run(
    runtime: Arc<Runtime>,
    loader: Arc<Loader>,
    manifest: PathBuf,
    mut requests: mpsc::Receiver<ReloadRequest>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let request = tokio::select! {
            r = requests.recv() => match r {
                Some(r) => r,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let outcome = reload(&runtime, &loader, &manifest, request.trigger).await;
        let _ = request.reply.send(outcome);
    }
}

/// Re-read the manifest and every file it names, validate everything, and
/// swap in the new generation; on any error keep serving the current one.
async fn reload(
    runtime: &Runtime,
    loader: &Arc<Loader>,
    manifest: &Path,
    trigger: &'static str,
) -> Result<(), ManifestErrors> {
    let (path, builder) = (manifest.to_path_buf(), loader.clone());
    let built = tokio::task::spawn_blocking(move || builder.build(&config::load(&path)?))
        .await
        .unwrap_or_else(|e| {
            Err(ManifestErrors(vec![ManifestError {
                file: manifest.to_path_buf(),
                item: String::new(),
                message: format!("reload task failed: {e}"),
            }]))
        });
    let result = match built {
        Ok(built) => {
            for w in &built.generation.warnings {
                tracing::warn!("{w}");
            }
            runtime.swap(built.generation);
            loader.commit(built.pools);
            runtime.current().export_expiry_metrics();
            tracing::info!(trigger, "configuration reloaded");
            Ok(())
        }
        Err(errors) => {
            tracing::error!(
                trigger,
                "reload refused; still serving the previous configuration:\n{errors}"
            );
            Err(errors)
        }
    };
    let result_label = match result {
        Ok(()) => ReloadResult::ok,
        Err(_) => ReloadResult::failed,
    };
    metrics()
        .reloads
        .get_or_create(&ReloadLabels {
            result: result_label,
        })
        .inc();
    result
}

/// Size and mtime of every file of the current generation.
fn files_fingerprint(runtime: &Runtime) -> Vec<(PathBuf, Option<(u64, SystemTime)>)> {
    runtime
        .current()
        .files
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)));
            (p.clone(), meta)
        })
        .collect()
}

/// Ask for a reload on SIGHUP and, every `poll_secs` (0 = never), when a
/// file of the current generation changed.
pub(super) fn spawn_triggers(runtime: Arc<Runtime>, poll_secs: u64, stop: watch::Receiver<bool>) {
    #[cfg(unix)]
    tokio::spawn(on_hangup(runtime.clone(), stop.clone()));
    if poll_secs > 0 {
        tokio::spawn(on_file_change(
            runtime,
            Duration::from_secs(poll_secs),
            stop,
        ));
    }
}

#[cfg(unix)]
async fn on_hangup(runtime: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            got = hup.recv() => {
                if got.is_none() { return; }
                let _ = runtime.reload("SIGHUP").await;
            }
            _ = stop.changed() => return,
        }
    }
}

async fn on_file_change(runtime: Arc<Runtime>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut last = files_fingerprint(&runtime);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = files_fingerprint(&runtime);
        if now != last {
            let _ = runtime.reload("file change").await;
            // Whether it succeeded or not, wait for the next change.
            last = files_fingerprint(&runtime);
        }
    }
}
