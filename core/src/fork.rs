//! Which process this is: a counter that `fork()` bumps in the child.
//!
//! After `fork()` only the forking thread exists in the child. A runtime's worker threads,
//! a reactor thread, the thread that held a lock: all gone. State built before the fork
//! (a runtime, an event loop's wake-up descriptor) must therefore not be used in the
//! child. Whoever builds such state records [`generation`] next to it and compares on use:
//! a different value means "built in another process" (the parent, or an earlier parent).
//!
//! The counter is bumped by a `pthread_atfork` child handler, installed the first time
//! [`generation`] is called, so it is installed before any state that records a generation
//! exists. Reading it is one relaxed atomic load: cheap enough for every conversion.
//!
//! ```
//! let before = pyo3_aio_core::fork::generation();
//! // ... no fork in between ...
//! assert_eq!(pyo3_aio_core::fork::generation(), before);
//! assert!(pyo3_aio_core::fork::is_current(before));
//! ```

// Not through the `sync` shim: this is process-wide bookkeeping, not a race loom models
// (the only writer runs in a child that has a single thread).
use core::sync::atomic::{AtomicUsize, Ordering};

/// Bumped once in each child, by the handler below.
static GENERATION: AtomicUsize = AtomicUsize::new(0);

#[cfg(unix)]
extern "C" fn after_fork_in_child() {
    // Runs in the child before `fork()` returns there, on its only thread: nothing can race
    // it, and a relaxed increment is async-signal-safe.
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

#[cfg(unix)]
fn install() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: registers a handler that only does an atomic increment; it is never
        // unregistered, and the function lives for the whole process (a static item).
        let status = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        // ENOMEM is the only documented failure: then forks go unnoticed, as before.
        debug_assert_eq!(status, 0, "pthread_atfork failed");
    });
}

#[cfg(not(unix))]
fn install() {}

/// The fork generation of this process: 0 in a process that was not forked from one where
/// this crate was loaded, one more in each forked child.
///
/// Record it when building per-process state and compare with [`is_current`] on use.
#[inline]
pub fn generation() -> usize {
    install();
    // Relaxed: the only write happened in this process before any other thread existed
    // (in the child handler), so every thread sees it.
    GENERATION.load(Ordering::Relaxed)
}

/// Whether state recorded at `generation` was built in this process (no fork since).
pub fn is_current(generation: usize) -> bool {
    self::generation() == generation
}
