//! The host side of the guest ABI: the `sigil.*` imports. See
//! `sigil_sdk`'s `abi` module for the guest side and the table of calls.

use super::output::{LogBudget, MAX_LINE, guest_log_line};
use super::sdk_worker::HeaderPairs;
use super::store::{FetchSlot, RequestState};
use super::subrequest::Fetched;
use crate::telemetry::metrics::{SubrequestLabels, SubrequestOutcome, WorkerStream, metrics};
use sigil_sdk::codec;
use sigil_sdk::wire::{FetchError, FetchResult, LogLevel};
use sigil_sdk::wire_ref::{FetchRequestView, FetchResultRef, ResponseRef};
use std::task::Poll;
use wasmtime::{AsContextMut, Caller, Linker, Memory, format_err};

/// The import module name.
pub const MODULE: &str = "sigil";

/// Bytes of ABI overhead allowed beyond a request body in an encoded subrequest.
const ENVELOPE: u64 = 256 << 10;

/// The calling guest's exported memory.
pub(super) fn memory(caller: &mut Caller<'_, RequestState>) -> wasmtime::Result<Memory> {
    // Known once instantiated; a start function's calls look it up.
    if let Some(memory) = caller.data().guest_memory {
        return Ok(memory);
    }
    caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or_else(|| format_err!("the module exports no memory"))
}

fn read_guest(
    caller: &mut Caller<'_, RequestState>,
    call: &str,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    ptr.checked_add(len)
        .and_then(|end| mem.data(&*caller).get(ptr..end))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            format_err!(
                "sigil.{call}: the guest passed {len} bytes at {ptr:#x}, outside its memory"
            )
        })
}

/// The bytes of the [`FetchResult`] the guest decodes, written straight
/// from the origin's header map and body.
fn encode_result(result: &Fetched) -> Vec<u8> {
    let encoded = match result {
        Ok(response) => {
            let headers = HeaderPairs(&response.headers);
            let size = 16 + response.body.len() + headers.encoded_size();
            let response = ResponseRef {
                status: response.status,
                headers,
                body: &response.body,
            };
            codec::encode_sized(&FetchResultRef::Ok(response), size)
        }
        // `Result::Err` is the same bytes whatever the `Ok` type.
        Err(error) => codec::encode(&Err::<(), _>(error)),
    };
    encoded.unwrap_or_else(|e| {
        codec::encode(&FetchResult::Err(FetchError::InvalidRequest {
            reason: e.0,
        }))
        .unwrap_or_default()
    })
}

/// Register the `sigil.*` imports.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        "fetch_start",
        |caller: Caller<'_, RequestState>, (ptr, len): (i32, i32)| {
            Box::new(fetch_start(caller, ptr, len))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "fetch_wait",
        |caller: Caller<'_, RequestState>, (handle,): (i32,)| Box::new(fetch_wait(caller, handle)),
    )?;
    linker.func_wrap(MODULE, "fetch_read", fetch_read)?;
    linker.func_wrap(MODULE, "log", log)?;
    Ok(())
}

/// Poll the request's pending subrequests until `handle` is finished (or,
/// with `None`, once). The time this takes is not the guest's CPU time:
/// the meter is paused around every poll.
async fn drive_subrequests(caller: &mut Caller<'_, RequestState>, handle: Option<u32>) {
    std::future::poll_fn(|cx| {
        let state = caller.data_mut();
        state.cpu.pause();
        let ready = state.fetches.poll_pending(cx, handle, encode_result);
        state.cpu.resume();
        match (handle, ready) {
            (None, _) => Poll::Ready(()),
            (Some(_), ready) => ready,
        }
    })
    .await
}

/// `sigil.fetch_start(ptr, len) -> handle`: decode a subrequest and start
/// it: its first poll takes a pooled connection or starts connecting.
async fn fetch_start(
    mut caller: Caller<'_, RequestState>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i64> {
    let limits = caller.data().call.limits;
    let max = limits.max_request_body + ENVELOPE;
    if len as u32 as u64 > max {
        let err = Err(FetchError::InvalidRequest {
            reason: format!(
                "the subrequest is {} bytes; the limit is {} bytes (limits.max_request_body)",
                len as u32, limits.max_request_body
            ),
        });
        let slot = FetchSlot::Done(encode_result(&err), None);
        return Ok(caller.data_mut().fetches.insert(slot) as i64);
    }
    let bytes = read_guest(&mut caller, "fetch_start", ptr, len)?;
    let request: FetchRequestView = codec::decode_view(&bytes, max as usize).map_err(|e| {
        format_err!("sigil.fetch_start: the guest sent a malformed subrequest ({e})")
    })?;
    let state = caller.data_mut();
    state.fetches.started += 1;
    let slot = if state.fetches.started > limits.subrequests {
        let err = Err(FetchError::SubrequestLimit {
            limit: limits.subrequests,
        });
        metrics()
            .subrequests
            .get_or_create(&SubrequestLabels {
                worker: state.call.worker.clone(),
                binding: "-".into(),
                outcome: SubrequestOutcome::subrequest_limit,
            })
            .inc();
        FetchSlot::Done(encode_result(&err), None)
    } else {
        let held = state.fetches.held().clone();
        match state.call.subrequests.start(request, &state.call, &held) {
            Ok(future) => FetchSlot::Pending(future),
            Err(e) => FetchSlot::Done(encode_result(&Err(e)), None),
        }
    };
    let handle = state.fetches.insert(slot);
    drive_subrequests(&mut caller, None).await;
    Ok(handle as i64)
}

/// `sigil.fetch_wait(handle) -> len`: wait for a subrequest; `-1` for an unknown handle.
async fn fetch_wait(mut caller: Caller<'_, RequestState>, handle: i32) -> wasmtime::Result<i64> {
    let handle = handle as u32;
    if !caller.data().fetches.slots.contains_key(&handle) {
        return Ok(-1i64);
    }
    drive_subrequests(&mut caller, Some(handle)).await;
    // Time spent waiting is not CPU time: restart the deadline.
    caller.as_context_mut().set_epoch_deadline(1);
    match caller.data().fetches.slots.get(&handle) {
        Some(FetchSlot::Done(bytes, _)) => Ok(bytes.len() as i64),
        _ => Ok(-1),
    }
}

/// `sigil.fetch_read(handle, ptr, len) -> 0`: copy a finished result into the guest.
fn fetch_read(
    mut caller: Caller<'_, RequestState>,
    handle: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    let handle = handle as u32;
    let (bytes, held) = match caller.data_mut().fetches.slots.remove(&handle) {
        Some(FetchSlot::Done(bytes, held)) if bytes.len() == len as u32 as usize => (bytes, held),
        Some(other) => {
            caller.data_mut().fetches.slots.insert(handle, other);
            return Ok(-1);
        }
        None => return Ok(-1),
    };
    let mem = memory(&mut caller)?;
    mem.write(&mut caller, ptr as u32 as usize, &bytes)
        .map_err(|_| {
            format_err!(
                "sigil.fetch_read: the guest's buffer at {:#x} is outside its memory",
                ptr as u32
            )
        })?;
    // The response's bytes stop counting as held once they are the guest's.
    drop((bytes, held));
    Ok(0)
}

/// `sigil.log(level, ptr, len)`: one log line from the guest, escaped and
/// within the request's log budget (a panic message is always kept for the
/// error, even when the budget is spent).
fn log(
    mut caller: Caller<'_, RequestState>,
    level: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    let level = LogLevel::from_raw(level);
    let full = len as u32 as usize;
    if caller.data().log.is_spent() && !matches!(level, LogLevel::Panic) {
        return Ok(());
    }
    let bytes = read_guest(&mut caller, "log", ptr, full.min(MAX_LINE) as i32)?;
    let message = guest_log_line(bytes, full);
    let state = caller.data_mut();
    if matches!(level, LogLevel::Panic) {
        state.panic_message = Some(message.clone());
    }
    if !state.log.admit(message.len()) {
        state
            .log
            .mark_truncated(&state.call, WorkerStream::log, &LogBudget::exhausted());
        return Ok(());
    }
    let worker = &*state.call.worker;
    let request_id = &*state.call.request_id;
    // The message as a `&str` field (written first, as a format string's
    // message is): the line is the same, without a `format_args!` pass.
    let text: &str = &message;
    match level {
        LogLevel::Trace => tracing::trace!(message = text, worker, request_id),
        LogLevel::Debug => tracing::debug!(message = text, worker, request_id),
        LogLevel::Info => tracing::info!(message = text, worker, request_id),
        LogLevel::Warn => tracing::warn!(message = text, worker, request_id),
        LogLevel::Error => tracing::error!(message = text, worker, request_id),
        LogLevel::Panic => tracing::error!(worker, request_id, "worker panicked: {message}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::FetchedResponse;
    use sigil_sdk::wire::WireResponse;

    /// The guest decodes what `encode_result` writes from a header map and
    /// body as the owned `FetchResult` it stands for.
    #[test]
    fn results_encode_as_the_wire_types() {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.append("set-cookie", "a=1".parse().unwrap());
        headers.append("set-cookie", "b=2".parse().unwrap());
        headers.insert(
            "x-latin1",
            http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        let fetched = Ok(FetchedResponse {
            status: 203,
            headers,
            body: bytes::Bytes::from_static(b"body bytes"),
            held: None,
        });
        let owned: FetchResult = Ok(WireResponse {
            status: 203,
            headers: vec![
                ("content-type".into(), "text/plain".into()),
                ("set-cookie".into(), "a=1".into()),
                ("set-cookie".into(), "b=2".into()),
                ("x-latin1".into(), "caf\u{fffd}".into()),
            ],
            body: b"body bytes".to_vec(),
        });
        assert_eq!(encode_result(&fetched), codec::encode(&owned).unwrap());

        let error = FetchError::Timeout {
            binding: Some("B".into()),
            host: "a.example:443".into(),
            after_ms: 5,
        };
        let bytes = encode_result(&Err(error.clone()));
        assert_eq!(bytes, codec::encode(&FetchResult::Err(error)).unwrap());
    }
}
