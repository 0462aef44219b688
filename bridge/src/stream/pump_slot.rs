//! The `am_send` slot of the `into_stream` pump (`_StreamPump`): its Task resumes it without a
//! `StopIteration` per step.

use pyo3::prelude::*;

/// Puts the pump's `am_send` on its type, once per process: the Task resumes the pump
/// through it, and an item returned needs no `StopIteration`.
pub(crate) fn install_pump_am_send(py: Python<'_>) {
    #[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
    {
        static INSTALLED: pyo3::sync::PyOnceLock<()> = pyo3::sync::PyOnceLock::new();
        crate::slots::install_send_slot::<crate::stream::pump::StreamPump>(
            py,
            &INSTALLED,
            pump_am_send,
        );
    }
    #[cfg(not(all(Py_3_10, not(Py_LIMITED_API), not(PyPy))))]
    let _ = py;
}

/// The pump's `am_send` slot (see [`install_pump_am_send`]).
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn pump_am_send(
    slf: *mut pyo3::ffi::PyObject,
    arg: *mut pyo3::ffi::PyObject,
    result: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    // Attached (CPython calls type slots so), and counted as such, as PyO3's own
    // trampolines do: a `Py` dropped inside is released at once, not deferred to PyO3's
    // pool of pending decrefs.
    Python::attach(|py| {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: CPython passes a valid borrowed reference for `slf`, and for `arg` one or
            // NULL (for "send None").
            let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
            let this = this.cast::<crate::stream::pump::StreamPump>()?;
            let value = if arg.is_null() {
                py.None().into_bound(py)
            } else {
                // SAFETY: as above.
                unsafe { Bound::from_borrowed_ptr(py, arg) }
            };
            crate::stream::pump::StreamPump::resume(
                this,
                crate::stream::delegate::Input::Send(value),
            )
        }));
        let outcome = outcome.unwrap_or_else(|payload| Err(crate::panic::panic_to_pyerr(payload)));
        // SAFETY: `result` is the out-pointer CPython passed to this slot.
        unsafe { crate::slots::send_result(py, outcome, result) }
    })
}
