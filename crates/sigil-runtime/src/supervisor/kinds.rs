//! Building a worker's handler by the kind of its module: a `sigil-sdk`
//! core module becomes an [`SdkWorker`], a `wasi:http/proxy` component a
//! [`ComponentWorker`] on the component engine (created the first time a
//! manifest has one).

use crate::config::{Limits, WorkerSection};
use crate::engine::component::{
    ComponentEngine, ComponentModule, ComponentWorker, InstanceReuse, WorkerKind,
};
use crate::engine::{CompileLimits, Engine, EngineSettings, SdkWorker, WorkerModule, read_module};
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

    /// Read and compile worker `w`'s module, by its kind: the file is read
    /// once (a regular file within `server.max_module_mb`), its header says
    /// whether it is a `sigil-sdk` core module or a component.
    pub fn load(
        &self,
        w: &WorkerSection,
        compile: &CompileLimits,
        limits: &Limits,
    ) -> Result<LoadedModule, String> {
        let bytes = read_module(&w.module, compile).map_err(|e| e.to_string())?;
        if WorkerKind::of(&bytes) == Some(WorkerKind::Component) {
            let engine = self
                .components()
                .map_err(|e| format!("cannot create the component engine: {e:#}"))?;
            let module = engine
                .load_component_bytes(&w.module, &bytes, compile)
                .map_err(|e| e.to_string())?;
            return Ok(LoadedModule::Component(engine, module));
        }
        if w.instance_reuse.is_some_and(|n| n > 1) {
            return Err("instance_reuse applies to wasi:http component workers only; this module is a sigil-sdk worker, which always runs on a fresh instance".into());
        }
        self.sdk
            .load_module_bytes(&w.module, &bytes, compile, limits)
            .map(LoadedModule::Sdk)
            .map_err(|e| e.to_string())
    }

    /// The handler of worker `w` running `module`.
    pub fn handler(
        &self,
        w: &WorkerSection,
        module: LoadedModule,
        limits: Limits,
        outbound: Arc<WorkerOutbound>,
    ) -> Arc<dyn WorkerHandler> {
        let name: Arc<str> = w.name.as_str().into();
        let vars: Arc<[(String, String)]> =
            w.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        match module {
            LoadedModule::Component(engine, module) => {
                let reuse = w.instance_reuse.filter(|n| *n > 1).map(|n| InstanceReuse {
                    max_requests: n,
                    max_idle: DEFAULT_MAX_IDLE,
                });
                Arc::new(ComponentWorker::new(
                    engine,
                    module,
                    name,
                    limits,
                    vars,
                    outbound.clone(),
                    outbound,
                    reuse,
                ))
            }
            LoadedModule::Sdk(module) => Arc::new(SdkWorker {
                engine: self.sdk.clone(),
                module,
                name,
                limits,
                vars,
                subrequests: outbound,
            }),
        }
    }
}

/// A worker's compiled module, of either kind.
pub enum LoadedModule {
    /// A `sigil-sdk` core module.
    Sdk(WorkerModule),
    /// A `wasi:http/proxy` component, on the component engine.
    Component(Arc<ComponentEngine>, ComponentModule),
}
