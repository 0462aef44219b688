//! The `am_send` slot of [`RustCoroutine`]: `await` and the Task step the coroutine without
//! a `StopIteration` per result.

use pyo3::prelude::*;
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
use pyo3::sync::PyOnceLock;

use crate::coroutine::RustCoroutine;
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
use crate::slots::{install_send_slot, send_result};

/// Python 3.10+ `am_send`: `await` and the Task resume the coroutine through this slot,
/// which returns the result directly instead of raising `StopIteration` (the slow part
/// of finishing a non-generator awaitable). PyO3 has no `#[pymethods]` name for the slot,
/// so [`install_am_send`] puts it on the type once.
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn am_send(
    slf: *mut pyo3::ffi::PyObject,
    arg: *mut pyo3::ffi::PyObject,
    result: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    // SAFETY: CPython calls type slots with the thread attached to the interpreter. (Not
    // `Python::attach`: outside PyO3's own trampolines its count is zero here, and it would
    // take `PyGILState_Ensure` on every call.)
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: CPython passes valid borrowed references for `slf` and `arg` (`arg` may
        // be NULL for "send None").
        let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
        let this = this.cast::<RustCoroutine>()?;
        // SAFETY: as above.
        let sent = (!arg.is_null()).then(|| unsafe { Bound::from_borrowed_ptr(py, arg) });
        if let Some(sent) = &sent {
            RustCoroutine::check_sent(this, sent)?;
        }
        RustCoroutine::step(this, sent.as_ref())
    }));
    let outcome = outcome.unwrap_or_else(|payload| Err(crate::panic::panic_to_pyerr(payload)));
    // SAFETY: `result` is the out-pointer CPython passed to this slot.
    unsafe { send_result(py, outcome, result) }
}

/// Puts [`am_send`] on the `RustCoroutine` type, once per process (and registers the
/// classes with the shared `pyo3_aio` module).
pub(crate) fn install_am_send(py: Python<'_>) {
    crate::shared::register_types(py);
    #[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
    {
        static INSTALLED: PyOnceLock<()> = PyOnceLock::new();
        install_send_slot::<RustCoroutine>(py, &INSTALLED, am_send);
    }
    #[cfg(not(all(Py_3_10, not(Py_LIMITED_API), not(PyPy))))]
    let _ = py;
}
