//! CPython type slots PyO3 has no name for: `am_send` (results returned without raising
//! `StopIteration`) and a plain `am_await`, put on our types once per process. The types
//! bring their own `am_send` functions (`coroutine/send_slot.rs`, `stream/ready.rs`); this
//! module installs them and hands their outcome to CPython.

use pyo3::prelude::*;
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
use pyo3::sync::PyOnceLock;

/// What one step of the coroutine produced.
pub(crate) enum Step {
    /// Suspend: hand this (the waiter) to the Task.
    Yield(Py<PyAny>),
    /// Finish with this value.
    Return(Py<PyAny>),
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
