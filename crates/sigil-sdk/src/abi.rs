//! The raw host imports (module `sigil`). Only this file touches them.
//!
//! | import | signature | meaning |
//! |---|---|---|
//! | `fetch_start` | `(ptr, len) -> i64` | start a subrequest from an encoded [`FetchRequest`](crate::wire::FetchRequest); returns a handle |
//! | `fetch_wait` | `(handle) -> i64` | wait for it; returns the length of the encoded [`FetchResult`](crate::wire::FetchResult), `-1` for an unknown handle |
//! | `fetch_read` | `(handle, ptr, len) -> i32` | copy that result into guest memory and release it; `0` on success |
//! | `log` | `(level, ptr, len)` | log a UTF-8 message at a [`LogLevel`](crate::wire::LogLevel) |
//!
//! Off wasm32 the functions exist as stubs that panic, so crates that depend
//! on the SDK still build and unit-test on the host.

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "sigil")]
    unsafe extern "C" {
        pub fn fetch_start(ptr: *const u8, len: usize) -> i64;
        pub fn fetch_wait(handle: u32) -> i64;
        pub fn fetch_read(handle: u32, ptr: *mut u8, len: usize) -> i32;
        pub fn log(level: i32, ptr: *const u8, len: usize);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imports {
    //! Stand-ins with the same signatures as the wasm imports, so the
    //! callers' `unsafe` blocks are identical on every target.
    const OUTSIDE: &str = "sigil-sdk host calls only work inside the Sigil runtime (wasm32-wasip1)";
    /// # Safety
    /// None beyond the wasm import's: it never touches memory.
    pub unsafe fn fetch_start(_: *const u8, _: usize) -> i64 {
        panic!("{OUTSIDE}")
    }
    /// # Safety
    /// None: it never touches memory.
    pub unsafe fn fetch_wait(_: u32) -> i64 {
        panic!("{OUTSIDE}")
    }
    /// # Safety
    /// None: it never touches memory.
    pub unsafe fn fetch_read(_: u32, _: *mut u8, _: usize) -> i32 {
        panic!("{OUTSIDE}")
    }
    /// # Safety
    /// `ptr` must point to `len` initialised bytes that stay valid for the call.
    pub unsafe fn log(_: i32, ptr: *const u8, len: usize) {
        // Off wasm, print instead so unit tests of workers can still log.
        // SAFETY: the caller passes a live `&str`'s pointer and length.
        let msg = unsafe { std::slice::from_raw_parts(ptr, len) };
        eprintln!("{}", String::from_utf8_lossy(msg));
    }
}

/// Start a subrequest; returns its handle.
pub(crate) fn fetch_start(encoded: &[u8]) -> u32 {
    // SAFETY: `encoded` is a live slice: its pointer is valid for reads of
    // `len` bytes for the whole call, and the host only reads that range (it
    // copies the bytes before returning and keeps no pointer).
    let handle = unsafe { imports::fetch_start(encoded.as_ptr(), encoded.len()) };
    handle as u32
}

/// Wait for a subrequest and return its encoded result.
pub(crate) fn fetch_wait(handle: u32) -> Option<Vec<u8>> {
    // SAFETY: only integers cross; the host touches no guest memory here.
    let len = unsafe { imports::fetch_wait(handle) };
    if len < 0 {
        return None;
    }
    let mut buf = vec![0u8; len as usize];
    // SAFETY: `buf` is a live, initialised, exclusively borrowed buffer of
    // `buf.len()` bytes; the host writes at most that many bytes into it (it
    // refuses a length that differs from the result's) and keeps no pointer.
    let rc = unsafe { imports::fetch_read(handle, buf.as_mut_ptr(), buf.len()) };
    (rc == 0).then_some(buf)
}

/// Send a log line to the host.
pub(crate) fn log(level: i32, message: &str) {
    // SAFETY: `message` is a live `&str`: valid for reads of its length for
    // the whole call; the host copies at most that many bytes and keeps no pointer.
    unsafe { imports::log(level, message.as_ptr(), message.len()) }
}
