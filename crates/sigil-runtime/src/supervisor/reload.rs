//! Reloads: the triggers (SIGHUP, polling the files a generation was built
//! from, `POST /reload`) all send a [`ReloadRequest`]; one loop serves them
//! in turn, builds the new generation off the async threads, and swaps it
//! in whole — or keeps serving the current one and says why.

use super::file_stamps::{self, changed, loaded_with, stamps};
use super::{Built, Loader};
use crate::config::ServerSection;
use crate::config::{self, ManifestError, ManifestErrors};
use crate::state::{FileStamp, ReloadRequest, Runtime};
use crate::telemetry::metrics::{ReloadLabels, ReloadResult, SettingLabel, metrics};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// A build the loader thread runs: the manifest to load, where the result goes.
type Job = (PathBuf, oneshot::Sender<Result<Built, ManifestErrors>>);

/// Start the one thread that builds generations. Builds run off the async
/// threads, always on the same thread: its allocations come from one malloc
/// arena, so resident memory does not grow with each reload landing on
/// another blocking-pool thread.
fn spawn_loader_thread(loader: Arc<Loader>) -> std::io::Result<std::sync::mpsc::Sender<Job>> {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("sigil-loader".into())
        .spawn(move || {
            for (path, reply) in queue {
                loader.naming(&path);
                let build = || config::load(&path).and_then(|m| loader.build(&m));
                let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(build))
                    .unwrap_or_else(|_| {
                        Err(ManifestErrors(vec![ManifestError {
                            file: path.clone(),
                            item: String::new(),
                            message: "building the configuration panicked (a bug: please report it); still serving the previous one".into(),
                        }]))
                    });
                let _ = reply.send(built);
            }
        })?;
    Ok(jobs)
}

/// Serve reload requests one at a time until `stop` turns true.
pub(super) async fn run(
    runtime: Arc<Runtime>,
    loader: Arc<Loader>,
    manifest: PathBuf,
    started: ServerSection,
    mut requests: mpsc::Receiver<ReloadRequest>,
    mut stop: watch::Receiver<bool>,
) {
    let jobs = match spawn_loader_thread(loader.clone()) {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::error!("cannot start the loader thread; reloads are off: {e}");
            return;
        }
    };
    loop {
        let request = tokio::select! {
            r = requests.recv() => match r {
                Some(r) => r,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let outcome = reload(&runtime, &loader, &jobs, &manifest, request.trigger).await;
        if let Ok(server) = &outcome {
            warn_restart_keys(&started, server);
        }
        let outcome = outcome.map(|_| ());
        let _ = request.reply.send(outcome);
    }
}

/// Re-read the manifest and every file it names, validate everything, and
/// swap in the new generation; on any error keep serving the current one.
/// Say which `[server]` settings a reload changed that apply only at start.
fn warn_restart_keys(started: &ServerSection, now: &ServerSection) {
    for key in started.restart_keys_changed(now) {
        tracing::warn!(
            key,
            "server.{key} changed; it applies only at start: restart to apply it (still using the value Sigil started with)"
        );
        metrics()
            .reload_ignored_settings
            .get_or_create(&SettingLabel { key: key.into() })
            .inc();
    }
}

/// Swap in `built` (requests in flight keep their generation).
fn swap_in(
    runtime: &Runtime,
    loader: &Loader,
    built: Built,
    trigger: &'static str,
) -> ServerSection {
    for w in &built.generation.warnings {
        tracing::warn!("{w}");
    }
    let previous = runtime.current();
    runtime.swap(built.generation);
    loader.commit(built.parts);
    runtime.current().export_not_after(Some(&previous));
    tracing::info!(trigger, "configuration reloaded");
    built.server
}

/// Re-read the manifest and every file it names, validate everything, and
/// swap in the new generation (returning its `[server]` section); on any
/// error keep serving the current one.
async fn reload(
    runtime: &Runtime,
    loader: &Loader,
    jobs: &std::sync::mpsc::Sender<Job>,
    manifest: &Path,
    trigger: &'static str,
) -> Result<ServerSection, ManifestErrors> {
    let (reply, result) = oneshot::channel();
    let failed = |message: String| {
        Err(ManifestErrors(vec![ManifestError {
            file: manifest.to_path_buf(),
            item: String::new(),
            message,
        }]))
    };
    // Stamped before the build reads them: a file replaced while it runs
    // no longer matches afterwards, and the poller reloads again.
    let before = stamps(&runtime.current().files);
    let built = match jobs.send((manifest.to_path_buf(), reply)) {
        Ok(()) => result
            .await
            .unwrap_or_else(|_| failed("the loader thread stopped".into())),
        Err(_) => failed("the loader thread stopped".into()),
    };
    let result = match built {
        Ok(mut built) => {
            built.generation.files_seen = loaded_with(&built.generation.files, &before);
            let server = swap_in(runtime, loader, built, trigger);
            // The replaced generation is freed unless requests still hold
            // it: give its memory back, or resident memory creeps up with
            // each reload of a large manifest.
            crate::memory::release_now().await;
            Ok(server)
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
        Ok(_) => ReloadResult::ok,
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

/// Ask for a reload on SIGHUP and, every `poll_secs` (0 = never), when a
/// file of the current generation changed.
pub(super) fn spawn_triggers(
    runtime: Arc<Runtime>,
    loader: Arc<Loader>,
    poll_secs: u64,
    stop: watch::Receiver<bool>,
) {
    #[cfg(unix)]
    tokio::spawn(on_hangup(runtime.clone(), stop.clone()));
    if poll_secs > 0 {
        tokio::spawn(on_file_change(
            runtime,
            loader,
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

async fn on_file_change(
    runtime: Arc<Runtime>,
    loader: Arc<Loader>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // After a refused reload: the generation it was refused for and the
    // stamps it saw, of that generation's files and of the files the
    // refused manifest named (a certificate that did not exist yet:
    // creating it is the fix, and it is what gets the reload retried).
    let mut refused: Option<(u64, Vec<(PathBuf, FileStamp)>)> = None;
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let generation = runtime.current();
        let due = match &refused {
            Some((id, seen)) if *id == generation.id => changed(seen),
            // Compared with what the generation was built from, whichever
            // trigger built it: a SIGHUP reload needs no second one.
            _ => changed(&generation.files_seen),
        };
        if !due {
            continue;
        }
        let mut watched = generation.files.clone();
        if let Some((id, seen)) = &refused
            && *id == generation.id
        {
            for (p, _) in seen {
                if !watched.contains(p) {
                    watched.push(p.clone());
                }
            }
        }
        let seen = stamps(&watched);
        match runtime.reload("file change").await {
            Ok(()) => refused = None,
            Err(_) => {
                let mut seen = seen;
                for f in loader.named_files() {
                    if !seen.iter().any(|(p, _)| *p == f) {
                        let stamp = file_stamps::stamp(&f);
                        seen.push((f, stamp));
                    }
                }
                refused = Some((generation.id, seen));
            }
        }
    }
}
