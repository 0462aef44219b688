//! The `am_send` slot of [`RustCoroutine`]: `await` and the Task step the coroutine without
//! a `StopIteration` per result.

use pyo3::prelude::*;
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
use pyo3::sync::PyOnceLock;

#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
use crate::coroutine::RustCoroutine;
#[cfg(all(Py_3_12, not(Py_LIMITED_API), not(PyPy)))]
use crate::slots::Step;
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

/// Python 3.12+ `tp_iternext`: what `await` calls there (its `SEND` instruction uses
/// `am_send` only for CPython's own generators and coroutines). PyO3's `__next__` returns a
/// value as a `StopIteration` made by calling the class with a tuple, through a `PyErr`;
/// this sets it with one `PyErr_SetObject`, and a `None` result with no exception at all
/// (CPython reads a NULL without one as a return of `None`). Python-level `__next__` stays
/// PyO3's.
#[cfg(all(Py_3_12, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn iternext(slf: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    // SAFETY: as in `am_send`: CPython calls type slots with the thread attached.
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: CPython passes a valid borrowed reference for `slf`.
        let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
        let this = this.cast::<RustCoroutine>()?;
        RustCoroutine::step(this, Some(&py.None().into_bound(py)))
    }));
    match outcome.unwrap_or_else(|payload| Err(crate::panic::panic_to_pyerr(payload))) {
        Ok(Step::Yield(yielded)) => yielded.into_ptr(),
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

/// Sets `StopIteration(value)` as the current exception, the cheapest way CPython reads it
/// back as `value`.
#[cfg(all(Py_3_12, not(Py_LIMITED_API), not(PyPy)))]
fn set_stop_iteration(py: Python<'_>, value: Py<PyAny>) {
    if value.is_none(py) {
        return;
    }
    let value = value.into_bound(py);
    // SAFETY: plain type checks on a valid object pointer.
    let wrapped = unsafe {
        pyo3::ffi::PyTuple_Check(value.as_ptr()) != 0
            || pyo3::ffi::PyExceptionInstance_Check(value.as_ptr()) != 0
    };
    if wrapped {
        // `PyErr_SetObject` would take a tuple as the arguments, an exception instance as
        // the exception: make the instance first.
        crate::errors::stop_iteration(py, value.unbind()).restore(py);
        return;
    }
    // SAFETY: the GIL is held; `PyExc_StopIteration` is a valid exception class and
    // `value` a valid object (the call takes its own reference).
    unsafe { pyo3::ffi::PyErr_SetObject(pyo3::ffi::PyExc_StopIteration, value.as_ptr()) };
}

/// Puts [`am_send`] on the `RustCoroutine` type, once per process (and registers the
/// classes with the shared `pyo3_aio` module); on 3.12+ also its own `tp_iternext`.
pub(crate) fn install_am_send(py: Python<'_>) {
    crate::shared::register_types(py);
    #[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
    {
        static INSTALLED: PyOnceLock<()> = PyOnceLock::new();
        install_send_slot::<RustCoroutine>(py, &INSTALLED, am_send);
    }
    #[cfg(all(Py_3_12, not(Py_LIMITED_API), not(PyPy)))]
    {
        static INSTALLED_NEXT: PyOnceLock<()> = PyOnceLock::new();
        INSTALLED_NEXT.get_or_init(py, || {
            let type_object = py.get_type::<RustCoroutine>().as_type_ptr();
            // SAFETY: `type_object` is the heap type PyO3 created for `RustCoroutine`; a slot
            // is changed after creation by writing it and calling PyType_Modified, with the
            // GIL held so no one reads it meanwhile.
            unsafe {
                (*type_object).tp_iternext = Some(iternext);
                pyo3::ffi::PyType_Modified(type_object);
            }
        });
    }
    #[cfg(not(all(Py_3_10, not(Py_LIMITED_API), not(PyPy))))]
    let _ = py;
}
