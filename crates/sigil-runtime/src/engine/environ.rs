//! WASI preview 1 `environ_sizes_get` and `environ_get`, answered from the
//! worker's `vars` without building the request's WASI context.
//!
//! `std::env::var` in a Rust worker (how workers read their `vars`) makes
//! these two calls on every request, since every request runs in a fresh
//! instance. Served by `wasmtime_wasi`, the first of them built the whole
//! WASI context (random number generators, descriptor tables, clocks): about
//! 3% of the server's CPU in the S1 benchmark. These implementations shadow
//! `wasmtime_wasi`'s and write the same bytes: `KEY=VALUE\0` for each
//! variable, in the manifest's order. As in `wasmtime_wasi` (and the WASI
//! witx rules), a pointer outside the guest's memory or a misaligned pointer
//! traps; every other WASI call still builds the context on first use.

use super::abi::memory;
use super::store::RequestState;
use wasmtime::{Caller, Linker, format_err};

/// The WASI preview 1 import module.
const WASI: &str = "wasi_snapshot_preview1";

/// `errno::success`.
const SUCCESS: i32 = 0;

/// `errno::overflow`: the variables do not fit the guest's 32-bit sizes.
const OVERFLOW: i32 = 61;

/// Register the two functions, replacing `wasmtime_wasi`'s.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(WASI, "environ_sizes_get", environ_sizes_get)?;
    linker.func_wrap(WASI, "environ_get", environ_get)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The number of variables and the bytes their `KEY=VALUE\0` strings take.
fn sizes(vars: &[(String, String)]) -> Option<(u32, u32)> {
    let count = u32::try_from(vars.len()).ok()?;
    let bytes = vars
        .iter()
        .map(|(k, v)| k.len() + 1 + v.len() + 1)
        .sum::<usize>();
    Some((count, u32::try_from(bytes).ok()?))
}

/// Write `bytes` at `at` in the guest's memory, or trap. `align` is the
/// alignment the pointer must have (4 for a `u32` or a pointer).
fn write(memory: &mut [u8], call: &str, at: u64, align: u64, bytes: &[u8]) -> wasmtime::Result<()> {
    if !at.is_multiple_of(align) {
        return Err(format_err!(
            "{WASI}.{call}: the guest passed the misaligned pointer {at:#x}"
        ));
    }
    let end = at + bytes.len() as u64;
    match memory.get_mut(at as usize..end as usize) {
        Some(slot) => {
            slot.copy_from_slice(bytes);
            Ok(())
        }
        _ => Err(format_err!(
            "{WASI}.{call}: the guest passed {} bytes at {at:#x}, outside its memory",
            bytes.len()
        )),
    }
}

/// `environ_sizes_get(count_ptr, size_ptr) -> errno`.
fn environ_sizes_get(
    mut caller: Caller<'_, RequestState>,
    count_ptr: i32,
    size_ptr: i32,
) -> wasmtime::Result<i32> {
    let Some((count, bytes)) = sizes(&caller.data().call.vars) else {
        return Ok(OVERFLOW);
    };
    let mem = memory(&mut caller)?;
    let data = mem.data_mut(&mut caller);
    let call = "environ_sizes_get";
    write(data, call, count_ptr as u32 as u64, 4, &count.to_le_bytes())?;
    write(data, call, size_ptr as u32 as u64, 4, &bytes.to_le_bytes())?;
    Ok(SUCCESS)
}

/// `environ_get(environ, environ_buf) -> errno`: a pointer to each
/// variable's `KEY=VALUE\0` at `environ`, the strings at `environ_buf`.
fn environ_get(
    mut caller: Caller<'_, RequestState>,
    environ: i32,
    environ_buf: i32,
) -> wasmtime::Result<i32> {
    let vars = caller.data().call.vars.clone();
    if sizes(&vars).is_none() {
        return Ok(OVERFLOW);
    }
    let mem = memory(&mut caller)?;
    let data = mem.data_mut(&mut caller);
    let call = "environ_get";
    let (mut slot, mut at) = (environ as u32 as u64, environ_buf as u32 as u64);
    for (key, value) in vars.iter() {
        let pointer = u32::try_from(at).map_err(|_| {
            format_err!("{WASI}.{call}: the variables run past the end of the guest's memory")
        })?;
        write(data, call, slot, 4, &pointer.to_le_bytes())?;
        slot += 4;
        for part in [key.as_bytes(), b"=", value.as_bytes(), b"\0"] {
            write(data, call, at, 1, part)?;
            at += part.len() as u64;
        }
    }
    Ok(SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sizes_count_key_equals_value_and_nul() {
        assert_eq!(sizes(&[]), Some((0, 0)));
        assert_eq!(
            sizes(&vars(&[("A", "1"), ("EMPTY", ""), ("U", "ž")])),
            Some((3, 4 + 7 + 5))
        );
    }

    #[test]
    fn writes_outside_memory_or_misaligned_fail() {
        let mut memory = vec![0u8; 16];
        assert!(write(&mut memory, "t", 12, 4, &[1, 2, 3, 4]).is_ok());
        assert_eq!(&memory[12..], &[1, 2, 3, 4]);
        assert!(write(&mut memory, "t", 13, 4, &[1, 2, 3, 4]).is_err());
        assert!(write(&mut memory, "t", 14, 1, &[1, 2, 3]).is_err());
        assert!(write(&mut memory, "t", u32::MAX as u64, 1, &[1]).is_err());
        assert!(write(&mut memory, "t", 16, 1, &[]).is_ok());
    }
}
