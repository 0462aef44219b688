//! The `am_send` slot of [`RustCoroutine`]: `await` and the Task step the coroutine without
//! a `StopIteration` per result.

use pyo3::prelude::*;
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
use pyo3::sync::PyOnceLock;

use crate::coroutine::RustCoroutine;
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
use crate::slots::{Step, install_send_slot, send_result};

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

/// `tp_iternext` (`__next__`) of `RustCoroutine`: Python 3.12's `await` steps an awaitable
/// that is not a native coroutine through it (not `am_send`), so a value returned must
/// travel as `StopIteration`. Here it is set as the current exception directly (none at all
/// for `None`, which the interpreter reads as returning `None`), without the
/// exception-object round trip of a Python-visible `__next__`.
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn iternext(slf: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    // SAFETY: CPython calls type slots with the thread attached to the interpreter (see
    // `am_send` for why not `Python::attach`).
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: CPython passes a valid borrowed reference for `slf`.
        let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
        RustCoroutine::step(this.cast::<RustCoroutine>()?, None)
    }));
    match outcome.unwrap_or_else(|payload| Err(crate::panic::panic_to_pyerr(payload))) {
        Ok(Step::Yield(value)) => value.into_ptr(),
        Ok(Step::Return(value)) => {
            set_stop_iteration(py, value);
            std::ptr::null_mut()
        }
        Err(error) => {
            error.restore(py);
            std::ptr::null_mut()
        }
    }
}

/// Sets `StopIteration(value)` as the current exception, as a generator's `return value`
/// does: nothing for `None`; the value wrapped in an instance when it is a tuple or an
/// exception (which `PyErr_SetObject` would otherwise take as arguments or as the error).
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
fn set_stop_iteration(py: Python<'_>, value: Py<PyAny>) {
    if value.is_none(py) {
        return;
    }
    // SAFETY: plain type checks on a valid object pointer.
    let wrap = unsafe {
        pyo3::ffi::PyTuple_Check(value.as_ptr()) != 0
            || pyo3::ffi::PyExceptionInstance_Check(value.as_ptr()) != 0
    };
    if wrap {
        crate::errors::stop_iteration(py, value).restore(py);
        return;
    }
    // SAFETY: the GIL is held; both pointers are valid; PyErr_SetObject takes its own
    // references.
    unsafe { pyo3::ffi::PyErr_SetObject(pyo3::ffi::PyExc_StopIteration, value.as_ptr()) };
}

/// Puts [`am_send`] on the `RustCoroutine` type, once per process (and registers the
/// classes with the shared `pyo3_aio` module).
pub(crate) fn install_am_send(py: Python<'_>) {
    crate::shared::register_types(py);
    #[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
    {
        static INSTALLED: PyOnceLock<()> = PyOnceLock::new();
        install_send_slot::<RustCoroutine>(py, &INSTALLED, am_send);
        static ITERNEXT: PyOnceLock<()> = PyOnceLock::new();
        ITERNEXT.get_or_init(py, || {
            let type_object = py.get_type::<RustCoroutine>().as_type_ptr();
            // SAFETY: `type_object` is the heap type PyO3 created for `RustCoroutine`; writing
            // a slot and then calling PyType_Modified is how slots are changed after
            // creation; we hold the GIL, so no one reads it meanwhile.
            unsafe {
                (*type_object).tp_iternext = Some(iternext);
                pyo3::ffi::PyType_Modified(type_object);
            }
        });
    }
    #[cfg(not(all(Py_3_10, not(Py_LIMITED_API), not(PyPy))))]
    let _ = py;
}
