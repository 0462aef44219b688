//! The `am_send` slot of [`RustCoroutine`]: `await` and the Task step the coroutine without
//! a `StopIteration` per result.

use pyo3::prelude::*;
#[cfg(all(not(Py_LIMITED_API), not(PyPy)))]
use pyo3::sync::PyOnceLock;

#[cfg(all(not(Py_LIMITED_API), not(PyPy)))]
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
        let this = this.cast::<RustCoroutine>()?.get();
        // SAFETY: as above.
        let sent = (!arg.is_null()).then(|| unsafe { Bound::from_borrowed_ptr(py, arg) });
        if let Some(sent) = &sent {
            this.check_sent(sent)?;
        }
        this.step(py, sent.as_ref())
    }));
    let outcome = outcome.unwrap_or_else(|payload| Err(crate::panic::panic_to_pyerr(payload)));
    // SAFETY: `result` is the out-pointer CPython passed to this slot.
    unsafe { send_result(py, outcome, result) }
}

/// Python 3.12+ `tp_iternext`: what `await` calls there (its `SEND` instruction uses
/// `am_send` only for CPython's own generators and coroutines). PyO3's `__next__` returns a
/// value as a `StopIteration` made by calling the class, through a `PyErr`; this builds
/// the instance directly (see [`new_stop_iteration`]), and a `None` result is no exception
/// at all (CPython reads a NULL without one as a return of `None`). Python-level
/// `__next__` stays PyO3's.
#[cfg(all(Py_3_12, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn iternext(slf: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    // SAFETY: as in `am_send`: CPython calls type slots with the thread attached.
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: CPython passes a valid borrowed reference for `slf`.
        let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
        let this = this.cast::<RustCoroutine>()?;
        this.get().step(py, Some(&py.None().into_bound(py)))
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
/// back as `value`: a `None` result is no exception at all (CPython reads a NULL without one
/// as a return of `None`).
#[cfg(all(Py_3_12, not(Py_LIMITED_API), not(PyPy)))]
fn set_stop_iteration(py: Python<'_>, value: Py<PyAny>) {
    use pyo3::ffi;
    if value.is_none(py) {
        return;
    }
    // A `Bound`: dropped here, a `Py` would go to PyO3's deferred-decref pool (its drop
    // cannot see the GIL that this slot holds without PyO3's trampoline).
    let value = value.into_bound(py);
    let Some(instance) = new_stop_iteration(value.as_ptr()) else {
        crate::errors::stop_iteration(py, value.unbind()).restore(py);
        return;
    };
    // SAFETY: the GIL is held; `instance` is a new reference to a `StopIteration`.
    unsafe {
        if handling_an_exception() {
            // Raised inside `except`: `PyErr_SetObject` chains the exception being handled
            // as the new one's `__context__`, as Python's own raise does.
            ffi::PyErr_SetObject(ffi::PyExc_StopIteration, instance);
            ffi::Py_DECREF(instance);
        } else {
            ffi::PyErr_SetRaisedException(instance);
        }
    }
}

/// Whether the thread is inside an `except` block (or a `finally` after an exception),
/// whose exception a new one gets as its `__context__`.
#[cfg(all(Py_3_12, not(Py_LIMITED_API), not(PyPy)))]
fn handling_an_exception() -> bool {
    // SAFETY: the GIL is held; the call returns a new reference, or NULL when none.
    unsafe {
        let handled = pyo3::ffi::PyErr_GetHandledException();
        if handled.is_null() {
            return false;
        }
        let handling = handled != pyo3::ffi::Py_None();
        pyo3::ffi::Py_DECREF(handled);
        handling
    }
}

/// A new `StopIteration(value)` as `StopIteration.__new__` and `__init__` make it (a fresh
/// instance, `args == (value,)`, `value`, whatever `value` is: a tuple or an exception is
/// not reinterpreted), without calling the class: `PyErr_SetObject(StopIteration, value)`
/// calls it through the generic call path, `BaseException.__new__` and `__init__`'s
/// argument parsing, which cost more than the rest of a ready await on 3.12 (whose `await`
/// reads a result only from the exception, except for CPython's own coroutines). `None`
/// when an allocation failed (no exception set).
#[cfg(all(Py_3_12, not(Py_LIMITED_API), not(PyPy)))]
fn new_stop_iteration(value: *mut pyo3::ffi::PyObject) -> Option<*mut pyo3::ffi::PyObject> {
    use pyo3::ffi;
    // SAFETY: the GIL is held and `value` is a valid object. `PyExc_StopIteration` is the
    // exact built-in class, whose instances are `PyStopIterationObject`s; its `tp_alloc`
    // gives one zero-filled (no dict, notes, traceback, context or cause) and tracked by
    // the collector, as `BaseException.__new__` has it before setting `args`. Each field
    // set here gets its own reference, which the instance's dealloc releases.
    unsafe {
        let class = ffi::PyExc_StopIteration.cast::<ffi::PyTypeObject>();
        let alloc = (*class).tp_alloc?;
        let args = ffi::PyTuple_New(1);
        if args.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        ffi::PyTuple_SET_ITEM(args, 0, ffi::Py_NewRef(value));
        let instance = alloc(class, 0);
        if instance.is_null() {
            ffi::PyErr_Clear();
            ffi::Py_DECREF(args);
            return None;
        }
        let stop = instance.cast::<ffi::PyStopIterationObject>();
        (*stop).args = args;
        (*stop).value = ffi::Py_NewRef(value);
        Some(instance)
    }
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
    #[cfg(all(not(Py_GIL_DISABLED), not(Py_LIMITED_API), not(PyPy)))]
    {
        static INSTALLED_SLOTS: PyOnceLock<()> = PyOnceLock::new();
        INSTALLED_SLOTS.get_or_init(py, || {
            let type_object = py.get_type::<RustCoroutine>().as_type_ptr();
            crate::coroutine::freelist::install(type_object);
            // SAFETY: `type_object` is the heap type PyO3 created for `RustCoroutine`; a slot
            // is changed after creation by writing it and calling PyType_Modified, with the
            // GIL held so no one reads it meanwhile.
            unsafe {
                #[cfg(Py_3_12)]
                {
                    (*type_object).tp_iternext = Some(iternext);
                }
                pyo3::ffi::PyType_Modified(type_object);
            }
        });
    }
    #[cfg(all(Py_3_12, Py_GIL_DISABLED, not(Py_LIMITED_API), not(PyPy)))]
    {
        static INSTALLED_NEXT: PyOnceLock<()> = PyOnceLock::new();
        INSTALLED_NEXT.get_or_init(py, || {
            let type_object = py.get_type::<RustCoroutine>().as_type_ptr();
            // SAFETY: as above.
            unsafe {
                (*type_object).tp_iternext = Some(iternext);
                pyo3::ffi::PyType_Modified(type_object);
            }
        });
    }
    #[cfg(not(all(Py_3_10, not(Py_LIMITED_API), not(PyPy))))]
    let _ = py;
}
