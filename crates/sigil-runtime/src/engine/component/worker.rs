//! `ComponentWorker`: the [`WorkerHandler`] of `wasi:http/proxy` components.
//! Each request runs on a fresh instance from the component's `InstancePre`
//! (the pooling allocator makes that cheap), or, when the worker opts in, on
//! an instance that served earlier requests of the same worker (`reuse.rs`).

use super::engine::ComponentEngine;
use super::load::ComponentModule;
use super::run;
use super::subrequests::HttpSubrequests;
use crate::config::Limits;
use crate::engine::{CallContext, Subrequests};
use crate::state::{WorkerFuture, WorkerHandler, WorkerRequest};
use std::sync::Arc;

/// Instance reuse, opted in per worker: one instance serves up to
/// `max_requests` requests one after another (never two at once, never
/// across workers); its module globals carry over between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceReuse {
    /// Requests one instance serves before it is dropped.
    pub max_requests: u32,
    /// Idle instances kept between requests.
    pub max_idle: usize,
}

/// A `wasi:http/proxy` component worker.
pub struct ComponentWorker {
    /// The engine that runs it.
    pub engine: Arc<ComponentEngine>,
    /// Its compiled component.
    pub module: ComponentModule,
    /// Its name.
    pub name: Arc<str>,
    /// Its limits.
    pub limits: Limits,
    /// Its variables (WASI environment).
    pub vars: Arc<[(String, String)]>,
    /// Its outbound world, for the call context.
    pub subrequests: Arc<dyn Subrequests>,
    /// Where its outgoing `wasi:http` requests go.
    pub outbound: Arc<dyn HttpSubrequests>,
    /// Idle instances, when reuse is on.
    pub(super) idle: Option<Arc<super::run::IdlePool>>,
}

impl ComponentWorker {
    /// A worker for `module`, reusing instances when `reuse` says so.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Arc<ComponentEngine>,
        module: ComponentModule,
        name: Arc<str>,
        limits: Limits,
        vars: Arc<[(String, String)]>,
        subrequests: Arc<dyn Subrequests>,
        outbound: Arc<dyn HttpSubrequests>,
        reuse: Option<InstanceReuse>,
    ) -> Self {
        let idle = reuse.map(|r| run::IdlePool::new(r, engine.idle_budget.clone()));
        ComponentWorker {
            engine,
            module,
            name,
            limits,
            vars,
            subrequests,
            outbound,
            idle,
        }
    }

    /// The context the hooks of one request run in.
    pub(super) fn call_context(&self, request: &WorkerRequest) -> CallContext {
        CallContext {
            worker: self.name.clone(),
            request_id: request.request_id.clone(),
            limits: self.limits,
            subrequests: self.subrequests.clone(),
            forward: request.connection.forward.clone(),
            deadline: request.deadline,
            hop: request.hop,
            vars: self.vars.clone(),
        }
    }
}

impl WorkerHandler for ComponentWorker {
    fn handle(&self, request: WorkerRequest) -> WorkerFuture<'_> {
        Box::pin(run::serve(self, request))
    }

    fn streams_bodies(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        if self.idle.is_some() {
            "wasi:http/proxy component (instances reused)"
        } else {
            "wasi:http/proxy component"
        }
    }
}
