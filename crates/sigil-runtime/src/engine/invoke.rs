//! Running one request: a fresh store and instance, the call into the
//! guest's handler, and turning every way it can fail into a clear error.

use super::cpu::Metered;
use super::store::RequestState;
use super::{CallContext, Engine, WorkerModule};
use crate::config::LimitExceeded;
use crate::state::WorkerError;
use sigil_sdk::codec;
use sigil_sdk::wire::{HandlerOutput, Invocation, WireResponse};
use wasmtime::{Store, UpdateDeadline};

/// Bytes of ABI overhead allowed beyond the response body limit.
const ENVELOPE: u64 = 256 << 10;

impl Engine {
    /// Run `invocation` on a fresh instance of `module`.
    pub async fn invoke(
        &self,
        module: &WorkerModule,
        call: CallContext,
        invocation: &Invocation,
    ) -> Result<WireResponse, WorkerError> {
        let limits = call.limits;
        let deadline = call.deadline;
        let worker = call.worker.to_string();
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

        let meter = store.data().cpu.clone();
        let call = Metered::new(call_handler(module, &mut store, invocation), meter);
        // The request's deadline: its own timeout, or less when a calling
        // request (another hop through Sigil) has less time left.
        let outcome = tokio::time::timeout_at(deadline.into(), call).await;
        let state = store.data();
        log_output(state);
        match outcome {
            Err(_elapsed) => Err(WorkerError::Limit {
                worker,
                limit: LimitExceeded::Timeout {
                    limit_ms: limits.timeout.as_millis() as u64,
                },
            }),
            Ok(Ok(HandlerOutput::Response(resp))) => {
                if resp.body.len() as u64 > limits.max_response_body {
                    return Err(WorkerError::Limit {
                        worker,
                        limit: LimitExceeded::ResponseBody {
                            size: resp.body.len() as u64,
                            limit: limits.max_response_body,
                        },
                    });
                }
                Ok(resp)
            }
            Ok(Ok(HandlerOutput::Error { status, message })) => Err(WorkerError::Handler {
                status: if (400..=599).contains(&status) {
                    status
                } else {
                    500
                },
                message,
            }),
            Ok(Err(CallError::Wasm(err))) => Err(classify(err, state, worker)),
            Ok(Err(CallError::Limit(limit))) => Err(WorkerError::Limit { worker, limit }),
            Ok(Err(CallError::Abi(message))) => Err(WorkerError::Trap { worker, message }),
        }
    }
}

enum CallError {
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
    invocation: &Invocation,
) -> Result<HandlerOutput, CallError> {
    let instance = module.pre.instantiate_async(&mut *store).await?;
    let exports = &module.exports;
    let func = |store: &mut Store<RequestState>, export: &wasmtime::ModuleExport, name: &str| {
        instance
            .get_module_export(&mut *store, export)
            .and_then(|e| e.into_func())
            .ok_or_else(|| {
                CallError::Abi(format!("the module's export `{name}` is not a function"))
            })
    };
    let version = func(&mut *store, &exports.abi_version, "sigil_abi_version")?
        .typed::<(), u32>(&*store)?
        .call_async(&mut *store, ())
        .await?;
    if version != sigil_sdk::wire::ABI_VERSION {
        return Err(CallError::Abi(format!(
            "the module was built with a sigil-sdk speaking ABI version {version}; this runtime speaks version {} (rebuild the worker against this sigil-sdk)",
            sigil_sdk::wire::ABI_VERSION
        )));
    }
    let memory = instance
        .get_module_export(&mut *store, &exports.memory)
        .and_then(|e| e.into_memory())
        .ok_or_else(|| CallError::Abi("the module exports no memory".into()))?;
    let alloc = func(&mut *store, &exports.alloc, "sigil_alloc")?.typed::<u32, u32>(&*store)?;
    let handle =
        func(&mut *store, &exports.handle, "sigil_handle")?.typed::<(u32, u32), u64>(&*store)?;

    let input = codec::encode(invocation).map_err(|e| CallError::Abi(e.0))?;
    let len = input.len() as u32;
    let ptr = alloc.call_async(&mut *store, len).await?;
    memory
        .write(&mut *store, ptr as usize, &input)
        .map_err(|_| {
            CallError::Abi(format!(
                "sigil_alloc returned {ptr:#x}, outside the guest's memory"
            ))
        })?;
    drop(input);

    let packed = handle.call_async(&mut *store, (ptr, len)).await?;
    let (out_ptr, out_len) = codec::unpack(packed);
    let limit = store.data().call.limits.max_response_body;
    if out_len as u64 > limit + ENVELOPE {
        return Err(CallError::Limit(LimitExceeded::ResponseBody {
            size: out_len as u64,
            limit,
        }));
    }
    let mut output = vec![0u8; out_len as usize];
    memory
        .read(&*store, out_ptr as usize, &mut output)
        .map_err(|_| {
            CallError::Abi("sigil_handle returned a result outside the guest's memory".into())
        })?;
    codec::decode::<HandlerOutput>(&output, (limit + ENVELOPE) as usize)
        .map_err(|e| CallError::Abi(format!("sigil_handle returned a malformed result: {e}")))
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
        };
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return WorkerError::Trap {
            worker,
            message: format!(
                "the worker called exit({}) instead of returning a response",
                exit.0
            ),
        };
    }
    let message = format!("{err:#}");
    if message.contains("concurrent") && message.contains("limit") {
        return WorkerError::Capacity { worker };
    }
    WorkerError::Trap { worker, message }
}

fn log_output(state: &RequestState) {
    for (stream, pipe) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
        let bytes = pipe.contents();
        if bytes.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            tracing::info!(
                worker = &*state.call.worker,
                request_id = &*state.call.request_id,
                stream,
                "{line}"
            );
        }
    }
}
