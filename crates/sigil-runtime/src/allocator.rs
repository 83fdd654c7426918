//! The process's memory allocator: the C library's by default, mimalloc
//! when an operator trades memory for CPU (`SIGIL_ALLOCATOR=mimalloc`).
//!
//! A binary opts in with
//! `#[global_allocator] static ALLOC: sigil_runtime::allocator::ProcessAllocator = ProcessAllocator;`
//! (the `sigil` command and the benchmarks do).
//!
//! Measured (BENCHMARKS.md, issue 13): every request allocates and frees on
//! two runtime threads (hyper's 8 KiB read buffer, header maps, the wasm
//! store), and glibc's allocator is 13–15 % of the serving process under
//! load; with mimalloc the server's CPU per response falls by 5–9 % (H1,
//! S1), but its resident memory grows 1.7–2.8× (36 against 21 MiB idle, 432
//! against 152 MiB with 10,000 hostnames). So glibc's stays the default.
//!
//! mimalloc reserves address space in large arenas up front, so a cap on the
//! address space (`RLIMIT_AS`, how the `sigil __compile` child bounds what
//! compiling a module may use) would not bound the allocations made under
//! it: the compiler child is always started with `SIGIL_ALLOCATOR=system`,
//! and refuses a memory cap under mimalloc.
//!
//! The choice is made once, at the process's first allocation (before
//! `main`), from the environment variable [`ALLOCATOR_ENV`]: `mimalloc`
//! selects mimalloc, anything else (or nothing) the C library's allocator.
//! It never changes afterwards, so every block is freed by the allocator
//! that allocated it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// The environment variable read once at start-up: `mimalloc` selects
/// mimalloc instead of the C library's allocator.
pub const ALLOCATOR_ENV: &str = "SIGIL_ALLOCATOR";

/// Which allocator the process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// mimalloc (`SIGIL_ALLOCATOR=mimalloc`).
    Mimalloc,
    /// The C library's allocator (the default).
    System,
}

const UNDECIDED: u8 = 0;
const MIMALLOC: u8 = 1;
const SYSTEM: u8 = 2;

static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The allocator [`ProcessAllocator`] chose, or `None` when this process's
/// global allocator is not a [`ProcessAllocator`] (tests, libraries).
pub fn in_use() -> Option<Choice> {
    match CHOICE.load(Ordering::Relaxed) {
        MIMALLOC => Some(Choice::Mimalloc),
        SYSTEM => Some(Choice::System),
        _ => None,
    }
}

/// Reads [`ALLOCATOR_ENV`] without allocating (this runs inside the first
/// allocation) and records the choice.
#[cold]
fn decide() -> u8 {
    // NUL-terminated for getenv.
    const NAME: &[u8] = b"SIGIL_ALLOCATOR\0";
    const _: () = assert!(NAME.len() == ALLOCATOR_ENV.len() + 1);
    // SAFETY: `NAME` is a NUL-terminated C string; `getenv` does not
    // allocate and returns either null or a pointer to a NUL-terminated
    // string in the environment, read at once, before anything could
    // change the environment (the first allocation happens before `main`).
    #[allow(unsafe_code)]
    let mimalloc = unsafe {
        let value = libc::getenv(NAME.as_ptr().cast());
        !value.is_null() && std::ffi::CStr::from_ptr(value).to_bytes() == b"mimalloc"
    };
    let choice = if mimalloc { MIMALLOC } else { SYSTEM };
    // Two threads deciding at once read the same variable and store the
    // same value.
    CHOICE.store(choice, Ordering::Relaxed);
    choice
}

#[inline]
fn choice() -> u8 {
    match CHOICE.load(Ordering::Relaxed) {
        UNDECIDED => decide(),
        c => c,
    }
}

/// The C library's allocator, or mimalloc under `SIGIL_ALLOCATOR=mimalloc`
/// (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessAllocator;

// SAFETY: every method forwards to one of two allocators that implement
// `GlobalAlloc` correctly; which one is fixed by the first call and never
// changes, so a block is always reallocated and freed by the allocator that
// returned it.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for ProcessAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if choice() == SYSTEM {
                System.alloc(layout)
            } else {
                mimalloc::MiMalloc.alloc(layout)
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if choice() == SYSTEM {
                System.alloc_zeroed(layout)
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees; `ptr` came from
        // the same allocator (the choice never changes).
        unsafe {
            if choice() == SYSTEM {
                System.dealloc(ptr, layout)
            } else {
                mimalloc::MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`.
        unsafe {
            if choice() == SYSTEM {
                System.realloc(ptr, layout, new_size)
            } else {
                mimalloc::MiMalloc.realloc(ptr, layout, new_size)
            }
        }
    }
}

/// How many times [`release_free_memory`] was asked for; each runtime thread
/// collects its own mimalloc heap once per release ([`on_thread_idle`]).
static RELEASES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last [`RELEASES`] count this thread collected its heap for.
    static COLLECTED: Cell<u64> = const { Cell::new(0) };
}

/// Return free memory to the operating system from whichever allocator the
/// process uses: glibc's `malloc_trim`, or mimalloc's `mi_collect` for this
/// thread's heap now and for every runtime thread's heap the next time it
/// goes idle ([`on_thread_idle`]; mimalloc keeps a heap per thread, and only
/// the thread that owns it can collect it). True when the runtime threads
/// still have to pass through [`on_thread_idle`] to finish the release.
pub fn release_free_memory() -> bool {
    if in_use() == Some(Choice::Mimalloc) {
        RELEASES.fetch_add(1, Ordering::Relaxed);
        collect_this_thread();
        return true;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `malloc_trim` has no preconditions: it takes the allocator's
    // own locks, touches only memory the allocator owns and already freed,
    // and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
    false
}

/// Call when a runtime thread is about to wait for work (tokio's
/// `on_thread_park`): collects this thread's mimalloc heap if a release was
/// asked for since it last did. One atomic load otherwise.
pub fn on_thread_idle() {
    let asked = RELEASES.load(Ordering::Relaxed);
    if asked != 0 && COLLECTED.with(Cell::get) != asked {
        collect_this_thread();
    }
}

fn collect_this_thread() {
    COLLECTED.with(|c| c.set(RELEASES.load(Ordering::Relaxed)));
    // SAFETY: `mi_collect` has no preconditions; it frees only memory
    // mimalloc owns and no longer hands out, and may run on any thread.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
