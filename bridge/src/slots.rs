//! CPython type slots PyO3 has no name for: `am_send` (results returned without raising
//! `StopIteration`) and a plain `am_await`, put on our types once per process.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::coroutine::RustCoroutine;
use crate::stream::ready::Ready;

/// What one step of the coroutine produced.
pub(crate) enum Step {
    /// Suspend: hand this (the waiter) to the Task.
    Yield(Py<PyAny>),
    /// Finish with this value.
    Return(Py<PyAny>),
}

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
        if !arg.is_null() {
            // SAFETY: as above.
            RustCoroutine::check_sent(this, &unsafe { Bound::from_borrowed_ptr(py, arg) })?;
        }
        RustCoroutine::step(this)
    }));
    let outcome = outcome.unwrap_or_else(|payload| Err(crate::panic::panic_to_pyerr(payload)));
    // SAFETY: `result` is the out-pointer CPython passed to this slot.
    unsafe { send_result(py, outcome, result) }
}

/// Hands an `am_send` outcome to CPython: the value through `result`, or the error set as
/// the current exception.
///
/// # Safety
///
/// `result` must be the valid out-pointer CPython passed to the `am_send` slot.
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
pub(crate) unsafe fn send_result(
    py: Python<'_>,
    outcome: PyResult<Step>,
    result: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    use pyo3::ffi::PySendResult;
    let (value, status) = match outcome {
        Ok(Step::Yield(value)) => (value.into_ptr(), PySendResult::PYGEN_NEXT),
        Ok(Step::Return(value)) => (value.into_ptr(), PySendResult::PYGEN_RETURN),
        Err(error) => {
            error.restore(py);
            (std::ptr::null_mut(), PySendResult::PYGEN_ERROR)
        }
    };
    // SAFETY: the caller guarantees `result` is valid for writes.
    unsafe { *result = value };
    status
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

/// The `am_await` slot of types whose `__await__` returns the object itself.
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn await_self(slf: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    // SAFETY: CPython passes a valid object; the slot returns a new reference to it.
    unsafe { pyo3::ffi::Py_NewRef(slf) }
}

/// Sets the `am_send` slot of pyclass `T`'s type to `send`, once (`installed` guards it).
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
pub(crate) fn install_send_slot<T: pyo3::PyTypeInfo>(
    py: Python<'_>,
    installed: &PyOnceLock<()>,
    send: pyo3::ffi::sendfunc,
) {
    installed.get_or_init(py, || {
        let class = py.get_type::<T>();
        let type_object = class.as_type_ptr();
        // SAFETY: `type_object` is the heap type PyO3 created for `T`; its `tp_as_async`
        // points into that heap type (`T` defines `__await__`, so the table exists).
        // Writing a slot and then calling PyType_Modified is how slots are changed after
        // creation; we hold the GIL, so no one reads it meanwhile.
        unsafe {
            let methods = (*type_object).tp_as_async;
            if !methods.is_null() {
                (*methods).am_send = Some(send);
                // `__await__` returns the object itself: a plain C slot does that without
                // the trampoline of a Python-visible method.
                (*methods).am_await = Some(await_self);
                pyo3::ffi::PyType_Modified(type_object);
            }
        }
    });
}

/// `am_send` for [`Ready`]: hands the value back without raising `StopIteration`.
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
pub(crate) unsafe extern "C" fn ready_am_send(
    slf: *mut pyo3::ffi::PyObject,
    _arg: *mut pyo3::ffi::PyObject,
    result: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    // SAFETY: CPython calls type slots with the thread attached to the interpreter. (Not
    // `Python::attach`: outside PyO3's own trampolines its count is zero here, and it would
    // take `PyGILState_Ensure` on every call.)
    let py = unsafe { Python::assume_attached() };
    // SAFETY: CPython passes a valid borrowed reference to the object whose slot this is.
    let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
    let taken = match this.cast::<Ready>() {
        Ok(ready) => match ready.try_borrow_mut() {
            Ok(mut ready) => ready
                .0
                .take()
                .unwrap_or_else(|| Err(crate::errors::already_awaited())),
            Err(error) => Err(error.into()),
        },
        Err(error) => Err(error.into()),
    };
    // SAFETY: `result` is the out-pointer CPython passed to this slot.
    unsafe { crate::slots::send_result(py, taken.map(crate::slots::Step::Return), result) }
}

/// Puts the pump's `am_send` on its type, once per process: the Task resumes the pump
/// through it, and an item returned needs no `StopIteration`.
pub(crate) fn install_pump_am_send(py: Python<'_>) {
    #[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
    {
        static INSTALLED: pyo3::sync::PyOnceLock<()> = pyo3::sync::PyOnceLock::new();
        install_send_slot::<crate::stream::pump::StreamPump>(py, &INSTALLED, pump_am_send);
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
        unsafe { send_result(py, outcome, result) }
    })
}
