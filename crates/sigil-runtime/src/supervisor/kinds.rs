//! Building a worker's handler by the kind of its module: a `sigil-sdk`
//! core module becomes an [`SdkWorker`], a `wasi:http/proxy` component a
//! [`ComponentWorker`] on the component engine (created the first time a
//! manifest has one).

use crate::config::{Findings, Limits, WorkerSection};
use crate::engine::component::{ComponentEngine, ComponentWorker, InstanceReuse, WorkerKind};
use crate::engine::{Engine, EngineSettings, SdkWorker};
use crate::outbound::WorkerOutbound;
use crate::state::WorkerHandler;
use std::sync::{Arc, Mutex};

/// Idle instances a reusing worker keeps.
pub const DEFAULT_MAX_IDLE: usize = 64;

/// The engines workers run on: SDK modules' and, once needed, components'.
pub struct Engines {
    /// The SDK modules' engine.
    pub sdk: Arc<Engine>,
    settings: EngineSettings,
    components: Mutex<Option<Arc<ComponentEngine>>>,
}

impl Engines {
    /// `sdk`, and settings for the component engine when one is needed.
    pub fn new(sdk: Arc<Engine>, settings: EngineSettings) -> Self {
        Engines {
            sdk,
            settings,
            components: Mutex::new(None),
        }
    }

    /// The component engine, created on first use.
    pub fn components(&self) -> anyhow::Result<Arc<ComponentEngine>> {
        let mut slot = self.components.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(engine) = &*slot {
            return Ok(engine.clone());
        }
        let engine = Arc::new(ComponentEngine::new(&self.settings)?);
        *slot = Some(engine.clone());
        Ok(engine)
    }

    /// The handler of worker `w`, by the kind of its module; problems go to
    /// `findings` under `item`.
    pub fn handler(
        &self,
        w: &WorkerSection,
        limits: Limits,
        outbound: Arc<WorkerOutbound>,
        findings: &mut Findings<'_>,
    ) -> Option<Arc<dyn WorkerHandler>> {
        let item = format!("worker \"{}\"", w.name);
        let name: Arc<str> = w.name.as_str().into();
        let vars: Arc<[(String, String)]> =
            w.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if WorkerKind::of_file(&w.module) == Some(WorkerKind::Component) {
            let engine = self
                .components()
                .map_err(|e| {
                    findings.error(&item, format!("cannot create the component engine: {e:#}"))
                })
                .ok()?;
            let module = engine
                .load_component(&w.module)
                .map_err(|e| findings.error(&item, e.to_string()))
                .ok()?;
            let reuse = w.instance_reuse.filter(|n| *n > 1).map(|n| InstanceReuse {
                max_requests: n,
                max_idle: DEFAULT_MAX_IDLE,
            });
            let worker = ComponentWorker::new(
                engine,
                module,
                name,
                limits,
                vars,
                outbound.clone(),
                outbound,
                reuse,
            );
            return Some(Arc::new(worker));
        }
        if w.instance_reuse.is_some_and(|n| n > 1) {
            findings.error(
                &item,
                "instance_reuse applies to wasi:http component workers only; this module is a sigil-sdk worker, which always runs on a fresh instance",
            );
        }
        let module = self
            .sdk
            .load_module(&w.module)
            .map_err(|e| findings.error(&item, e.to_string()))
            .ok()?;
        Some(Arc::new(SdkWorker {
            engine: self.sdk.clone(),
            module,
            name,
            limits,
            vars,
            subrequests: outbound,
        }))
    }
}
