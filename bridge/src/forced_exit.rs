//! A thread that CPython ends at finalization parks instead, before any Rust frame unwinds.
//!
//! Once finalization has started, CPython 3.9-3.13 end every other thread that tries to
//! take the GIL back (`take_gil` calls `PyThread_exit_thread`, that is `pthread_exit`). On
//! glibc that is a forced unwind of the thread's stack. Through the interpreter's own C
//! frames it is harmless, which is why a daemon thread running plain asyncio survives it;
//! through Rust frames it is not. A Rust frame whose call cannot unwind (an `extern "C"`
//! call, PyO3's trampolines) stops the unwind and the process aborts; a frame that can unwind
//! runs its destructors, which drop Python objects without the GIL while the finalizing
//! thread frees them (a segfault). Rust frames sit under Python code whenever Rust calls
//! Python: the drain resuming a task step, a callback of ours, a coroutine's `send`.
//!
//! CPython 3.14 parks such a thread instead of ending it (`PyThread_hang_thread`), and PyO3
//! does the same when the exit comes from a GIL acquisition of its own (pyo3-ffi wraps
//! `PyGILState_Ensure` and `PyEval_RestoreThread` in a guard that parks when unwound). A
//! switch of the GIL inside Python code that Rust called is beyond both: the exit starts in
//! the interpreter, under our frames. [`park_on_forced_exit`] does for the whole thread
//! what 3.14 does: it gives the thread a cleanup handler that parks it forever.
//!
//! Why the handler runs before any frame unwinds (glibc, `nptl/unwind.c`): a forced unwind
//! asks glibc's stop function about each frame before that frame's own unwind code runs,
//! innermost first, and the stop function calls every handler registered with
//! `_pthread_cleanup_push` whose buffer lies in a frame being left, comparing the buffer's
//! address with the frame's. A buffer off the thread's stack (ours is on the heap) compares
//! as left from the first frame on, so the handler runs at the first step, while every frame
//! is intact. `take_gil` released the GIL's mutex before exiting and holds no GIL, so the
//! parked thread blocks nobody; the process finalizes and exits around it, as on 3.14.
//!
//! Elsewhere this is a no-op: CPython 3.14+ never ends the thread, and musl's and macOS's
//! `pthread_exit` end it without unwinding its frames (a C library that unwinds them in
//! its own way, as FreeBSD's does, is not handled).

/// Makes a `pthread_exit` of this thread (CPython ending it at finalization) park it
/// forever instead, before any of its frames unwinds. Once per thread; cheap afterwards.
///
/// Call it on every thread where Rust frames of the bridge can sit under Python code: a
/// loop's thread (when its wake-up is installed) and a thread that attaches to run Python
/// work of ours.
#[inline]
pub(crate) fn park_on_forced_exit() {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(Py_3_14)))]
    glibc::register();
}

/// `Python::attach` on a thread that may not have been a loop's: for Python work the bridge
/// does wherever a Rust value is dropped (a runtime's worker), which can run Python code
/// (callbacks, `__del__`, warnings) and so switch the GIL away and back.
#[inline]
pub(crate) fn attach<F, R>(f: F) -> R
where
    F: for<'py> FnOnce(pyo3::Python<'py>) -> R,
{
    park_on_forced_exit();
    pyo3::Python::attach(f)
}

#[cfg(all(target_os = "linux", target_env = "gnu", not(Py_3_14)))]
mod glibc {
    use std::cell::RefCell;
    use std::ffi::c_int;
    use std::ffi::c_void;

    /// glibc's `struct _pthread_cleanup_buffer` (`pthread.h`).
    #[repr(C)]
    struct CleanupBuffer {
        routine: unsafe extern "C" fn(*mut c_void),
        arg: *mut c_void,
        canceltype: c_int,
        prev: *mut CleanupBuffer,
    }

    impl CleanupBuffer {
        fn new(routine: unsafe extern "C" fn(*mut c_void)) -> Self {
            Self {
                routine,
                arg: std::ptr::null_mut(),
                canceltype: 0,
                prev: std::ptr::null_mut(),
            }
        }
    }

    unsafe extern "C" {
        // The thread's chain of cleanup handlers, the form `pthread_cleanup_push` took
        // before glibc 2.3.3; still exported (from libc.so itself since 2.34), and still
        // run by the stop function of every forced unwind.
        fn _pthread_cleanup_push(
            buffer: *mut CleanupBuffer,
            routine: unsafe extern "C" fn(*mut c_void),
            arg: *mut c_void,
        );
        fn _pthread_cleanup_pop(buffer: *mut CleanupBuffer, execute: c_int);
    }

    /// The handler: never returns, so the unwind never reaches a frame.
    unsafe extern "C" fn park_forever(_: *mut c_void) {
        // `park` waits on a futex (no cancellation point) and may return spuriously.
        loop {
            std::thread::park();
        }
    }

    /// A handler that does nothing, for a registration that outlived its thread's use.
    unsafe extern "C" fn nothing(_: *mut c_void) {}

    /// This thread's registered buffer, on the heap: off the stack is what makes glibc run
    /// the handler at the first frame (see the module's doc). Unregistered when the thread
    /// ends normally (its thread-locals are dropped), so that a thread reusing the
    /// descriptor does not inherit it.
    struct Registration(*mut CleanupBuffer);

    impl Registration {
        fn new() -> Self {
            let buffer = Box::into_raw(Box::new(CleanupBuffer::new(park_forever)));
            // SAFETY: `buffer` is a valid, heap-allocated cleanup buffer that stays
            // allocated while it is registered (until `drop` unregisters it, or forever).
            unsafe { _pthread_cleanup_push(buffer, park_forever, std::ptr::null_mut()) };
            Self(buffer)
        }
    }

    impl Drop for Registration {
        fn drop(&mut self) {
            // Popping sets the chain's head to what was below ours: right only if ours is
            // the head.
            if chain_head() == self.0 {
                // SAFETY: ours is the head of this thread's chain: popping it restores the
                // chain as it was before we registered; then nothing refers to the buffer.
                unsafe {
                    _pthread_cleanup_pop(self.0, 0);
                    drop(Box::from_raw(self.0));
                }
            } else {
                // Something registered after us and is still registered (another copy of
                // the bridge whose thread-locals are dropped later): leave ours linked,
                // harmless from now on, and keep its few bytes.
                // SAFETY: the buffer is ours and allocated; glibc reads it only during an
                // unwind of this thread, which is not happening (we are running).
                unsafe { (*self.0).routine = nothing };
            }
        }
    }

    /// The head of this thread's chain: a probe pushed links to it, and is popped at once.
    fn chain_head() -> *mut CleanupBuffer {
        let mut probe = CleanupBuffer::new(nothing);
        let probe_ptr: *mut CleanupBuffer = &mut probe;
        // SAFETY: the probe lives on this frame and is popped before it returns; neither
        // call unwinds, and nothing else runs on this thread in between.
        unsafe {
            _pthread_cleanup_push(probe_ptr, nothing, std::ptr::null_mut());
            let head = (*probe_ptr).prev;
            _pthread_cleanup_pop(probe_ptr, 0);
            head
        }
    }

    thread_local! {
        static REGISTRATION: RefCell<Option<Registration>> = const { RefCell::new(None) };
    }

    pub(super) fn register() {
        let _ = REGISTRATION.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut()
                && slot.is_none()
            {
                *slot = Some(Registration::new());
            }
        });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// The registration pops itself when its thread ends, restoring the chain (a probe
        /// registered afterwards on the same thread finds the head it found before).
        #[test]
        fn registration_is_undone_when_the_thread_ends() {
            std::thread::spawn(|| {
                let before = chain_head();
                let registration = Registration::new();
                assert_eq!(chain_head(), registration.0);
                drop(registration);
                assert_eq!(chain_head(), before);
            })
            .join()
            .unwrap();
        }
    }
}
