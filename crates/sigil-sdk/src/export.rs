//! Glue between the guest's exports and a worker's handler. Used by
//! [`export_handler!`](crate::export_handler); not called directly.

use crate::codec;
use crate::http::{Request, Response};
use crate::wire::{FetchError, HandlerOutput, Invocation, LogLevel};

/// A handler failure: the host answers with `status` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// HTTP status to answer with.
    pub status: u16,
    /// Human-readable message (sent in the body and logged).
    pub message: String,
}

impl Error {
    /// An error answered with `status`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for Error {}

impl From<FetchError> for Error {
    /// A failed subrequest becomes `502 Bad Gateway`, except mistakes of the
    /// worker itself (unknown binding, host not allowed, limit), which are `500`.
    fn from(e: FetchError) -> Self {
        let status = match e {
            FetchError::UnknownBinding { .. }
            | FetchError::HostNotAllowed { .. }
            | FetchError::SubrequestLimit { .. }
            | FetchError::InvalidRequest { .. } => 500,
            FetchError::Timeout { .. } => 504,
            _ => 502,
        };
        Error::new(status, e.to_string())
    }
}

/// What a handler may return.
pub trait IntoHandlerOutput {
    /// Convert into the wire value returned to the host.
    fn into_output(self) -> HandlerOutput;
}

impl IntoHandlerOutput for Response {
    fn into_output(self) -> HandlerOutput {
        HandlerOutput::Response(self.into_wire())
    }
}

impl<E: Into<Error>> IntoHandlerOutput for Result<Response, E> {
    fn into_output(self) -> HandlerOutput {
        match self {
            Ok(r) => r.into_output(),
            Err(e) => {
                let e = e.into();
                HandlerOutput::Error {
                    status: e.status,
                    message: e.message,
                }
            }
        }
    }
}

/// Allocate `len` bytes the host fills with an encoded [`Invocation`].
pub fn alloc(len: usize) -> *mut u8 {
    let buf = vec![0u8; len].into_boxed_slice();
    Box::into_raw(buf) as *mut u8
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            let message = match info.location() {
                Some(loc) => format!("{payload} at {}:{}", loc.file(), loc.line()),
                None => payload,
            };
            crate::log::log(LogLevel::Panic, &message);
        }));
    });
}

/// Decode the invocation at `ptr`/`len`, run `handler`, and return the packed
/// location of the encoded [`HandlerOutput`] (left allocated for the host).
///
/// # Safety
/// `ptr`/`len` must come from [`alloc`], filled by the host.
pub unsafe fn run<F, R>(ptr: *mut u8, len: usize, handler: F) -> u64
where
    F: FnOnce(Request) -> R,
    R: IntoHandlerOutput,
{
    install_panic_hook();
    // SAFETY: the caller guarantees `ptr`/`len` are exactly a buffer returned
    // by `alloc(len)` (a leaked `Box<[u8]>` of `len` bytes, initialised), not
    // freed and not aliased since; rebuilding the box takes ownership back once.
    let bytes = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) };
    let output = match codec::decode::<Invocation>(&bytes, codec::MAX_DECODE) {
        Ok(inv) => {
            give_up(bytes);
            handler(Request::from_wire(inv.request, inv.client_auth)).into_output()
        }
        Err(e) => HandlerOutput::Error {
            status: 500,
            message: format!("worker could not decode its invocation: {e}"),
        },
    };
    let size = match &output {
        HandlerOutput::Response(response) => response.encoded_size(),
        HandlerOutput::Error { message, .. } => 16 + message.len(),
    };
    let encoded = codec::encode_sized(&output, size).unwrap_or_default();
    // Not freed: the instance is discarded after this call (see `give_up`).
    std::mem::forget(output);
    let len = encoded.len() as u32;
    // Leaked, not shrunk to a boxed slice (which would copy it): the host
    // reads it and then discards the whole instance.
    let ptr = encoded.leak().as_mut_ptr() as usize as u32;
    codec::pack(ptr, len)
}

/// Inputs at most this big are not freed after decoding.
const KEEP_INPUT: usize = 64 << 10;

/// Drop `bytes` only when freeing it gives the handler room: every request
/// runs in a fresh instance that is discarded afterwards, so freeing a small
/// block is wasted work (and makes the allocator consolidate before its next
/// large allocation).
fn give_up(bytes: Box<[u8]>) {
    if bytes.len() > KEEP_INPUT {
        drop(bytes);
    } else {
        std::mem::forget(bytes);
    }
}

/// Export `handler` as this module's request handler.
///
/// The handler takes a [`Request`](crate::Request) and returns a
/// [`Response`](crate::Response) or a `Result<Response, E>` where `E` converts
/// into [`Error`] (a [`FetchError`] does, so `?` works on subrequests).
///
/// ```ignore
/// use sigil_sdk::{Request, Response};
/// fn handle(req: Request) -> Response { Response::ok("hello") }
/// sigil_sdk::export_handler!(handle);
/// ```
#[macro_export]
macro_rules! export_handler {
    ($handler:path) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn sigil_abi_version() -> u32 {
            $crate::wire::ABI_VERSION
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn sigil_alloc(len: usize) -> *mut u8 {
            $crate::export::alloc(len)
        }

        #[unsafe(no_mangle)]
        #[allow(clippy::not_unsafe_ptr_arg_deref)]
        pub extern "C" fn sigil_handle(ptr: *mut u8, len: usize) -> u64 {
            // SAFETY: the host passes a buffer it obtained from `sigil_alloc`.
            unsafe { $crate::export::run(ptr, len, $handler) }
        }
    };
}
