//! Running one request: a fresh store and instance, the call into the
//! guest's handler, and turning every way it can fail into a clear error.

use super::cpu::Metered;
use super::module::AbiExports;
use super::output::log_captured;
use super::sdk_worker::into_http;
use super::store::RequestState;
use super::{CallContext, Engine, WorkerModule};
use crate::config::LimitExceeded;
use crate::state::WorkerError;
use crate::telemetry::logging::escape_controls;
use crate::telemetry::metrics::WorkerStream;
use bytes::Bytes;
use sigil_sdk::codec;
use sigil_sdk::wire_ref::HandlerOutputView;
use wasmtime::{Store, TypedFunc, UpdateDeadline};

/// Bytes of ABI overhead allowed beyond the response body limit.
const ENVELOPE: u64 = 256 << 10;

impl Engine {
    /// A fresh store for one call: the memory limiter, and the epoch
    /// deadline that meters CPU time and yields to other requests.
    pub(super) fn new_store(&self, call: CallContext) -> Store<RequestState> {
        let mut store = Store::new(&self.engine, RequestState::new(call));
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| {
            let state = cx.data_mut();
            let used = state.cpu.tick();
            let limit = state.call.limits.cpu;
            if used > limit {
                return Err(wasmtime::Error::new(LimitExceeded::Cpu {
                    limit_ms: limit.as_millis() as u64,
                }));
            }
            // Let other requests run; the meter stops while we are not polled.
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// Run the encoded invocation `input` on a fresh instance of `module`;
    /// the worker's response, or how it failed.
    pub async fn invoke(
        &self,
        module: &WorkerModule,
        call: CallContext,
        input: &[u8],
    ) -> Result<http::Response<Bytes>, WorkerError> {
        let limits = call.limits;
        let deadline = call.deadline;
        let name = call.worker.clone();
        let mut store = self.new_store(call);
        let meter = store.data().cpu.clone();
        let call = Metered::new(call_handler(module, &mut store, input), meter);
        // The request's deadline: its own timeout, or less when a calling
        // request (another hop through Sigil) has less time left.
        let outcome = tokio::time::timeout_at(deadline.into(), call).await;
        let state = store.data_mut();
        log_captured(
            &state.call,
            &mut state.log,
            [
                (WorkerStream::stdout, &state.stdout),
                (WorkerStream::stderr, &state.stderr),
            ],
        );
        let state = store.data();
        let worker = || name.to_string();
        match outcome {
            Err(_elapsed) => Err(WorkerError::Limit {
                worker: worker(),
                limit: LimitExceeded::Timeout {
                    limit_ms: limits.timeout.as_millis() as u64,
                },
            }),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(CallError::Worker(e))) => Err(e),
            Ok(Err(CallError::Wasm(err))) => Err(classify(err, state, worker())),
            Ok(Err(CallError::Limit(limit))) => Err(WorkerError::Limit {
                worker: worker(),
                limit,
            }),
            Ok(Err(CallError::Abi(message))) => Err(WorkerError::Trap {
                worker: worker(),
                reason: message.clone(),
                detail: message,
            }),
        }
    }
}

enum CallError {
    /// The worker answered, but not with a response that can be sent.
    Worker(WorkerError),
    Wasm(wasmtime::Error),
    Limit(LimitExceeded),
    Abi(String),
}

impl From<wasmtime::Error> for CallError {
    fn from(e: wasmtime::Error) -> Self {
        CallError::Wasm(e)
    }
}

async fn call_handler(
    module: &WorkerModule,
    store: &mut Store<RequestState>,
    input: &[u8],
) -> Result<http::Response<Bytes>, CallError> {
    let instance = module.pre.instantiate_async(&mut *store).await?;
    let exports = &module.exports;
    let memory = instance
        .get_module_export(&mut *store, &exports.memory)
        .and_then(|e| e.into_memory())
        .ok_or_else(|| CallError::Abi("the module exports no memory".into()))?;
    store.data_mut().guest_memory = Some(memory);
    let (alloc, handle) = abi_functions(store, &instance, exports)?;

    let len = input.len() as u32;
    let ptr = alloc.call_async(&mut *store, len).await?;
    memory
        .write(&mut *store, ptr as usize, input)
        .map_err(|_| {
            CallError::Abi(format!(
                "sigil_alloc returned {ptr:#x}, outside the guest's memory"
            ))
        })?;

    let packed = handle.call_async(&mut *store, (ptr, len)).await?;
    let (out_ptr, out_len) = codec::unpack(packed);
    let limit = store.data().call.limits.max_response_body;
    let data = memory.data(&*store);
    let Some(output) = data.get(out_ptr as usize..out_ptr as usize + out_len as usize) else {
        return Err(CallError::Abi(format!(
            "sigil_handle's return value is malformed: it points to {out_len} bytes at offset {out_ptr:#x}, past the end of the guest's {}-byte memory (return the packed location of the encoded output, as sigil_sdk::export_handler! does)",
            data.len()
        )));
    };
    if out_len as u64 > limit + ENVELOPE {
        return Err(CallError::Limit(LimitExceeded::ResponseBody {
            size: out_len as u64,
            limit,
        }));
    }
    // Read in place: headers and body are borrowed from the guest's memory
    // and copied once, into the response.
    let view = codec::decode_view::<HandlerOutputView>(output, (limit + ENVELOPE) as usize)
        .map_err(|e| CallError::Abi(format!("sigil_handle returned a malformed result: {e}")))?;
    let call = &store.data().call;
    match view {
        HandlerOutputView::Response(resp) => {
            if resp.body.len() as u64 > limit {
                return Err(CallError::Limit(LimitExceeded::ResponseBody {
                    size: resp.body.len() as u64,
                    limit,
                }));
            }
            into_http(resp, call).map_err(CallError::Worker)
        }
        HandlerOutputView::Error { status, message } => {
            Err(CallError::Worker(WorkerError::Handler {
                status: if (400..=599).contains(&status) {
                    status
                } else {
                    500
                },
                message,
            }))
        }
    }
}

/// `sigil_alloc(len) -> ptr`.
type AllocFunc = TypedFunc<u32, u32>;
/// `sigil_handle(ptr, len) -> packed output location`.
type HandleFunc = TypedFunc<(u32, u32), u64>;

/// `sigil_alloc` and `sigil_handle` of `instance`, typed.
#[allow(unsafe_code)]
fn abi_functions(
    store: &mut Store<RequestState>,
    instance: &wasmtime::Instance,
    exports: &AbiExports,
) -> Result<(AllocFunc, HandleFunc), CallError> {
    let mut func = |export: &wasmtime::ModuleExport, name: &str| {
        instance
            .get_module_export(&mut *store, export)
            .and_then(|e| e.into_func())
            .ok_or_else(|| {
                CallError::Abi(format!("the module's export `{name}` is not a function"))
            })
    };
    let alloc = func(&exports.alloc, "sigil_alloc")?;
    let handle = func(&exports.handle, "sigil_handle")?;
    // SAFETY: `TypedFunc::new_unchecked` requires that `Func::typed` would
    // succeed for these types. `AbiExports::of` checked when the module was
    // loaded that its `sigil_alloc` is `(i32) -> i32` and its `sigil_handle`
    // `(i32, i32) -> i64` (wasmtime types `u32` as `i32` and `u64` as
    // `i64`), and `instance` was made from that module's `InstancePre`, so
    // these exports have those types. This skips the same check per request.
    unsafe {
        Ok((
            TypedFunc::new_unchecked(&*store, alloc),
            TypedFunc::new_unchecked(&*store, handle),
        ))
    }
}

/// Longest failure detail (trap text with its backtrace) kept for the log.
const MAX_DETAIL: usize = 16 << 10;

/// The full text of `err` (with its wasm backtrace) for the log, escaped and
/// cut to [`MAX_DETAIL`] bytes.
pub(super) fn detail(err: &wasmtime::Error) -> String {
    let text = format!("{err:?}");
    let mut end = text.len().min(MAX_DETAIL);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = escape_controls(&text[..end]).into_owned();
    if end < text.len() {
        out.push_str(&format!(" [cut: {} bytes]", text.len()));
    }
    out
}

/// What failed, in one short line without backtrace: the trap or the
/// host call's own message.
pub(super) fn reason(err: &wasmtime::Error) -> String {
    let root = err.root_cause().to_string();
    let first = root.lines().next().unwrap_or_default();
    let mut end = first.len().min(200);
    while !first.is_char_boundary(end) {
        end -= 1;
    }
    escape_controls(&first[..end]).into_owned()
}

fn classify(err: wasmtime::Error, state: &RequestState, worker: String) -> WorkerError {
    if let Some(limit) = err.downcast_ref::<LimitExceeded>() {
        return WorkerError::Limit {
            worker,
            limit: limit.clone(),
        };
    }
    if state.memory.refused {
        return WorkerError::Limit {
            worker,
            limit: LimitExceeded::Memory {
                limit_mb: state.call.limits.memory_bytes >> 20,
            },
        };
    }
    if let Some(message) = &state.panic_message {
        return WorkerError::Panic {
            worker,
            message: message.clone(),
            detail: detail(&err),
        };
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        let message = format!(
            "the worker called exit({}) instead of returning a response",
            exit.0
        );
        return WorkerError::Trap {
            worker,
            reason: message.clone(),
            detail: message,
        };
    }
    let message = format!("{err:#}");
    if message.contains("concurrent") && message.contains("limit") {
        return WorkerError::Capacity { worker };
    }
    WorkerError::Trap {
        worker,
        reason: reason(&err),
        detail: detail(&err),
    }
}
