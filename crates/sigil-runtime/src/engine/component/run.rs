//! Running one request of a component worker: an instance (fresh, or idle
//! from an earlier request when reuse is on), the request's limits armed on
//! its store, `wasi:http/incoming-handler.handle` in a task of its own (the
//! guest keeps writing its response body after handing over the head), and
//! every way it can fail turned into the same errors as for SDK workers.

use super::body::{FailureSlot, ResponseBody};
use super::hooks::ComponentHooks;
use super::inbound;
use super::state::ComponentState;
use super::worker::{ComponentWorker, InstanceReuse};
use crate::config::LimitExceeded;
use crate::engine::cpu::{CpuMeter, Metered};
use crate::engine::sdk_worker::allowed_status;
use crate::engine::{CallContext, MAX_HEADER_VALUE, MAX_RESPONSE_HEADERS};
use crate::state::{WorkerBody, WorkerError, WorkerRequest};
use crate::telemetry::logging::escape_controls;
use crate::telemetry::metrics::{WorkerErrorLabels, metrics};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// An instance and the store it lives in (not yet instantiated when fresh).
pub(super) struct Instance {
    store: Store<ComponentState>,
    proxy: Option<Proxy>,
    served: u32,
}

/// Idle instances of one worker, when it reuses them. Every idle instance
/// holds a slot of the component engine's pool, so all workers' idle
/// instances together stay within the engine's idle budget (the pool has
/// room for `max_instances` running instances beside them).
pub(super) struct IdlePool {
    reuse: InstanceReuse,
    idle: Mutex<Vec<Instance>>,
    budget: Arc<AtomicUsize>,
}

impl IdlePool {
    pub(super) fn new(reuse: InstanceReuse, budget: Arc<AtomicUsize>) -> Arc<Self> {
        Arc::new(IdlePool {
            reuse,
            idle: Mutex::new(Vec::new()),
            budget,
        })
    }

    fn take(&self) -> Option<Instance> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if taken.is_some() {
            self.budget.fetch_add(1, Ordering::AcqRel);
        }
        taken
    }

    /// Keep `instance` for a later request, unless it served its share or
    /// neither this worker nor the engine has room for another idle one.
    fn put(&self, instance: Instance) {
        if instance.served >= self.reuse.max_requests {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= self.reuse.max_idle {
            return;
        }
        let reserved = self
            .budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if reserved.is_ok() {
            idle.push(instance);
        }
    }
}

impl Drop for IdlePool {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().unwrap_or_else(|p| p.into_inner());
        self.budget.fetch_add(idle.len(), Ordering::AcqRel);
    }
}

/// A fresh store for `worker`'s requests, its limits armed.
fn fresh(worker: &ComponentWorker, call: CallContext) -> Instance {
    let hooks = ComponentHooks {
        call,
        outbound: worker.outbound.clone(),
        started: 0,
        logged: 0,
    };
    let state = ComponentState::new(hooks, worker.limits.memory_bytes, &worker.vars);
    let mut store = Store::new(&worker.engine.engine, state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_callback(|mut cx| {
        let state = cx.data_mut();
        let used = state.cpu.tick();
        let limit = state.hooks.call.limits.cpu;
        if used > limit {
            return Err(wasmtime::Error::new(LimitExceeded::Cpu {
                limit_ms: limit.as_millis() as u64,
            }));
        }
        // Let other requests run; the meter stops while we are not polled.
        Ok(UpdateDeadline::Yield(1))
    });
    Instance {
        store,
        proxy: None,
        served: 0,
    }
}

impl Instance {
    /// Make the instance serve the request of `call`: its own hooks context,
    /// subrequest count, CPU meter and epoch deadline.
    fn begin(&mut self, call: CallContext) {
        let state = self.store.data_mut();
        state.hooks.call = call;
        state.hooks.started = 0;
        state.hooks.logged = 0;
        state.limiter.refused = false;
        state.cpu = CpuMeter::default();
        self.store.set_epoch_deadline(1);
    }
}

/// The error for a failure of the worker itself: clients get the first
/// line (cut at 200 bytes), the log the whole message.
pub(super) fn trap(worker: &str, message: String) -> WorkerError {
    let first = message.lines().next().unwrap_or_default();
    let mut end = first.len().min(200);
    while !first.is_char_boundary(end) {
        end -= 1;
    }
    WorkerError::Trap {
        worker: worker.to_string(),
        reason: escape_controls(&first[..end]).into_owned(),
        detail: escape_controls(&message).into_owned(),
    }
}

/// What a failed call means, from the error and what the store saw.
fn classify(err: wasmtime::Error, state: &ComponentState) -> WorkerError {
    let worker = state.hooks.call.worker.to_string();
    if let Some(limit) = err.downcast_ref::<LimitExceeded>() {
        return WorkerError::Limit {
            worker,
            limit: limit.clone(),
        };
    }
    if state.limiter.refused {
        let limit_mb = state.hooks.call.limits.memory_bytes >> 20;
        return WorkerError::Limit {
            worker,
            limit: LimitExceeded::Memory { limit_mb },
        };
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        let message = format!(
            "the worker called exit({}) instead of returning a response",
            exit.0
        );
        return trap(&worker, message);
    }
    let message = format!("{err:#}");
    if message.contains("concurrent") && message.contains("limit") {
        return WorkerError::Capacity { worker };
    }
    WorkerError::Trap {
        worker,
        reason: crate::engine::invoke::reason(&err),
        detail: crate::engine::invoke::detail(&err),
    }
}

/// One request's run on its instance, in a task of its own.
struct Job {
    pre: ProxyPre<ComponentState>,
    deadline: Instant,
    request_id: Arc<str>,
    /// Set when the guest handed over its response (from inside its call).
    answered: Arc<AtomicBool>,
    /// Set here when the guest failed after handing over its response, so
    /// the response body ends with an error instead of looking complete.
    cut: Arc<AtomicBool>,
    idle: Option<Arc<IdlePool>>,
    /// The request's instance slot, held until the guest's task ends (the
    /// response body holds it too, for as long as the client reads).
    _slot: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

impl Job {
    /// Run the guest's handler; returns its failure, if any (logged here
    /// when the response was already on its way).
    async fn run(
        self,
        mut instance: Instance,
        request: wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostIncomingRequest>,
        out: wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostResponseOutparam>,
    ) -> Option<WorkerError> {
        let meter = instance.store.data().cpu.clone();
        let pre = self.pre;
        let Instance { store, proxy, .. } = &mut instance;
        let call = async {
            if proxy.is_none() {
                *proxy = Some(pre.instantiate_async(&mut *store).await?);
            }
            let handler = proxy.as_ref().map(|p| p.wasi_http_incoming_handler());
            match handler {
                Some(h) => h.call_handle(&mut *store, request, out).await,
                None => Ok(()),
            }
        };
        let outcome =
            tokio::time::timeout_at(self.deadline.into(), Metered::new(call, meter)).await;
        let state = instance.store.data();
        state.log_output(&self.request_id);
        let failure = match outcome {
            Err(_elapsed) => Some(WorkerError::Limit {
                worker: state.hooks.call.worker.to_string(),
                limit: LimitExceeded::Timeout {
                    limit_ms: state.hooks.call.limits.timeout.as_millis() as u64,
                },
            }),
            Ok(Err(e)) => Some(classify(e, state)),
            Ok(Ok(())) => None,
        };
        match (&failure, self.idle) {
            (None, Some(pool)) if !instance.store.data_mut().can_still_answer() => {
                instance.served += 1;
                pool.put(instance);
            }
            (Some(e), _) if self.answered.load(Ordering::Acquire) => {
                // Before the instance (and with it the body's sender) is dropped.
                self.cut.store(true, Ordering::Release);
                late_failure(e, &instance.store.data().hooks.call)
            }
            _ => {}
        }
        failure
    }
}

/// A failure after the response head was sent: the body is cut off; log it.
fn late_failure(e: &WorkerError, call: &CallContext) {
    tracing::warn!(
        worker = &*call.worker,
        request_id = &*call.request_id,
        "{e} (after its response started; the response is cut off)"
    );
    metrics()
        .worker_errors
        .get_or_create(&WorkerErrorLabels {
            worker: call.worker.clone(),
            kind: e.kind(),
        })
        .inc();
}

/// Aborts a request's task when the request is dropped before its response.
struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

type Answer = Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;

/// Serve `request` on an instance of `worker`.
pub(super) async fn serve(
    worker: &ComponentWorker,
    request: WorkerRequest,
) -> Result<http::Response<WorkerBody>, WorkerError> {
    let call = worker.call_context(&request);
    let (deadline, request_id) = (request.deadline, request.request_id.clone());
    let slot = request.slot.clone();
    let call_request_id = request.request_id.clone();
    let idle = worker.idle.clone();
    let mut instance = match idle.as_ref().and_then(|p| p.take()) {
        Some(instance) => instance,
        None => fresh(worker, call.clone()),
    };
    instance.begin(call);
    let failure = FailureSlot::default();
    let (incoming, scheme) = inbound::incoming(request, failure.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<Answer>();
    let answered = Arc::new(AtomicBool::new(false));
    let (req, out) = {
        let mut http = instance.store.data_mut().http();
        let req = http.new_incoming_request(scheme, incoming);
        let set = answered.clone();
        let out = http.new_response_outparam_from_callback(move |answer| {
            set.store(true, Ordering::Release);
            let _ = tx.send(answer);
        });
        match (req, out) {
            (Ok(req), Ok(out)) => (req, out),
            (Err(e), _) | (_, Err(e)) => return Err(trap(&worker.name, format!("{e:#}"))),
        }
    };
    let cut = Arc::new(AtomicBool::new(false));
    let job = Job {
        pre: worker.module.pre.clone(),
        deadline,
        request_id,
        answered,
        cut: cut.clone(),
        idle,
        _slot: slot,
    };
    let task = tokio::spawn(job.run(instance, req, out));
    let mut guard = AbortOnDrop(Some(task.abort_handle()));
    let answer = Answered {
        rx,
        deadline,
        cut,
        request_id: call_request_id,
    };
    let result = respond(worker, answer, task, failure).await;
    guard.0 = None;
    result
}

/// Where the guest's answer arrives, by when, and the flag that cuts its
/// body off.
struct Answered {
    rx: tokio::sync::oneshot::Receiver<Answer>,
    deadline: Instant,
    cut: Arc<AtomicBool>,
    request_id: Arc<str>,
}

/// The client's response: the guest's (its body streaming, counted), or the
/// error that kept it from answering.
async fn respond(
    worker: &ComponentWorker,
    answered: Answered,
    task: tokio::task::JoinHandle<Option<WorkerError>>,
    failure: FailureSlot,
) -> Result<http::Response<WorkerBody>, WorkerError> {
    let body_failed = |failure: &FailureSlot| {
        failure.get().map(|f| WorkerError::Handler {
            status: f.status(),
            message: f.to_string(),
        })
    };
    // The guest's task ends by the deadline, and with it every sender of
    // the answer; the timeout also covers a sender kept somewhere else.
    let Ok(answer) = tokio::time::timeout_at(answered.deadline.into(), answered.rx).await else {
        return Err(WorkerError::Limit {
            worker: worker.name.to_string(),
            limit: LimitExceeded::Timeout {
                limit_ms: worker.limits.timeout.as_millis() as u64,
            },
        });
    };
    if let Some(e) = body_failed(&failure) {
        return Err(e);
    }
    match answer {
        Ok(Ok(response)) => response_of(worker, response, answered.cut, &answered.request_id),
        Ok(Err(code)) => Err(WorkerError::Handler {
            status: 500,
            message: format!(
                "worker \"{}\" answered with error-code {code:?}",
                worker.name
            ),
        }),
        Err(_) => Err(match task.await {
            Ok(Some(e)) => body_failed(&failure).unwrap_or(e),
            Ok(None) => trap(
                &worker.name,
                "the component returned without setting a response (response-outparam.set)".into(),
            ),
            Err(e) => trap(&worker.name, format!("the request's task failed: {e}")),
        }),
    }
}

/// The guest's response, its body limited to `max_response_body`, with the
/// same rules as an SDK worker's: a status from 200 to 599, at most
/// [`MAX_RESPONSE_HEADERS`] headers of at most [`MAX_HEADER_VALUE`] bytes
/// (the rest dropped and logged).
fn response_of(
    worker: &ComponentWorker,
    mut response: hyper::Response<HyperOutgoingBody>,
    cut: Arc<AtomicBool>,
    request_id: &str,
) -> Result<http::Response<WorkerBody>, WorkerError> {
    allowed_status(response.status().as_u16()).map_err(|problem| WorkerError::InvalidResponse {
        worker: worker.name.to_string(),
        problem,
    })?;
    cap_headers(worker, request_id, response.headers_mut());
    let limit = worker.limits.max_response_body;
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = declared.filter(|n| *n > limit) {
        return Err(WorkerError::Limit {
            worker: worker.name.to_string(),
            limit: LimitExceeded::ResponseBody { size, limit },
        });
    }
    let name = worker.name.clone();
    Ok(response.map(|body| WorkerBody::stream(ResponseBody::new(body, limit, name, cut))))
}

/// Drop response headers past [`MAX_RESPONSE_HEADERS`] or longer than
/// [`MAX_HEADER_VALUE`], logging once what was dropped.
fn cap_headers(worker: &ComponentWorker, request_id: &str, headers: &mut http::HeaderMap) {
    if headers.len() <= MAX_RESPONSE_HEADERS
        && headers.values().all(|v| v.len() <= MAX_HEADER_VALUE)
    {
        return;
    }
    let (mut kept, mut too_long, mut excess) = (http::HeaderMap::new(), 0usize, 0usize);
    for (name, value) in headers.iter() {
        if value.len() > MAX_HEADER_VALUE {
            too_long += 1;
        } else if kept.len() >= MAX_RESPONSE_HEADERS {
            excess += 1;
        } else {
            kept.append(name.clone(), value.clone());
        }
    }
    *headers = kept;
    tracing::warn!(
        worker = &*worker.name,
        request_id,
        "dropped response headers from the worker: {too_long} with a value over {MAX_HEADER_VALUE} bytes, {excess} past the first {MAX_RESPONSE_HEADERS} headers"
    );
}
