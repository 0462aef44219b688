//! Scenario 1's floor: the cheapest awaitable an extension module can return from a call
//! for a value it already has. No Rust future, no state machine: `__await__` is the object
//! itself, and its one step returns the value.
//!
//! The slots are CPython's own where PyO3 has no cheaper path: `am_await` returns the
//! object (no Python-visible method call), `am_send` (3.10+, what `await` and a Task use on
//! 3.10 and 3.11) returns the value without an exception, and `tp_iternext` (what `await`
//! uses on 3.12+ for anything but CPython's own coroutines) raises `StopIteration(value)`
//! built directly, not by calling the class. Whatever pyo3-aio's ready await costs above
//! this is what turning a Rust future into a Python coroutine costs.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// An awaitable whose result is known when it is made.
#[pyclass(frozen, name = "ReadyValue", module = "pyo3_aio_bench")]
pub(crate) struct ReadyValue {
    value: Py<PyAny>,
}

#[pymethods]
impl ReadyValue {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<()> {
        Err(pyo3::exceptions::PyStopIteration::new_err((self
            .value
            .clone_ref(py),)))
    }
}

/// `floor(value)`: a `ReadyValue` for `value` (see the module's doc).
#[pyfunction]
pub(crate) fn floor(value: Bound<'_, PyAny>) -> PyResult<Bound<'_, ReadyValue>> {
    let py = value.py();
    install_slots(py);
    Bound::new(
        py,
        ReadyValue {
            value: value.unbind(),
        },
    )
}

/// `ReadyValue`'s value as a new reference.
///
/// # Safety
///
/// `slf` must be a valid `ReadyValue` and the thread attached to the interpreter.
unsafe fn value_of(slf: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    // SAFETY: the caller guarantees the thread is attached.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: the caller guarantees `slf` is a valid `ReadyValue` (the slots below are only
    // on its type, and the type cannot be subclassed).
    let this = unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<ReadyValue>() };
    this.get().value.clone_ref(py).into_ptr()
}

#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn am_send(
    slf: *mut pyo3::ffi::PyObject,
    _arg: *mut pyo3::ffi::PyObject,
    result: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    // SAFETY: CPython calls type slots with the thread attached, on an object of the type
    // that has the slot; `result` is its out-pointer.
    unsafe { *result = value_of(slf) };
    pyo3::ffi::PySendResult::PYGEN_RETURN
}

#[cfg(all(Py_3_12, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn iternext(slf: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    use pyo3::ffi;
    // SAFETY: CPython calls type slots with the thread attached, on an object of the type
    // that has the slot.
    let value = unsafe { value_of(slf) };
    // SAFETY: `value` is an owned reference (moved into the tuple) and the thread attached.
    // The cheapest `StopIteration(value)` an extension can raise: the instance allocated
    // and filled in as `StopIteration.__new__`/`__init__` leave it (`args`, `value`;
    // `tp_alloc` zero-fills the rest), not made by calling the class, which is what
    // `PyErr_SetObject(PyExc_StopIteration, value)` does (bench/README.md has that one's
    // count too). No `__context__` chaining: the benchmark awaits outside `except`.
    // Errors (allocation) are left set.
    unsafe {
        if ffi::Py_IsNone(value) != 0 {
            ffi::Py_DECREF(value);
            return std::ptr::null_mut();
        }
        let class = ffi::PyExc_StopIteration.cast::<ffi::PyTypeObject>();
        let args = ffi::PyTuple_New(1);
        if args.is_null() {
            ffi::Py_DECREF(value);
            return std::ptr::null_mut();
        }
        ffi::PyTuple_SET_ITEM(args, 0, ffi::Py_NewRef(value));
        let instance = match (*class).tp_alloc {
            Some(alloc) => alloc(class, 0),
            None => std::ptr::null_mut(),
        };
        if instance.is_null() {
            ffi::Py_DECREF(args);
            ffi::Py_DECREF(value);
            return std::ptr::null_mut();
        }
        let stop = instance.cast::<ffi::PyStopIterationObject>();
        (*stop).args = args;
        (*stop).value = value;
        ffi::PyErr_SetRaisedException(instance);
    }
    std::ptr::null_mut()
}

#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn await_self(slf: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    // SAFETY: CPython passes a valid object; the slot returns a new reference to it.
    unsafe { pyo3::ffi::Py_NewRef(slf) }
}

/// Puts the slots on `ReadyValue`'s type, once.
fn install_slots(py: Python<'_>) {
    static INSTALLED: PyOnceLock<()> = PyOnceLock::new();
    INSTALLED.get_or_init(py, || {
        #[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
        {
            let type_object = py.get_type::<ReadyValue>().as_type_ptr();
            // SAFETY: `type_object` is the heap type PyO3 made for `ReadyValue`, which has an
            // async table (it defines `__await__`); slots are changed after creation by
            // writing them and calling PyType_Modified, with the GIL held.
            unsafe {
                let methods = (*type_object).tp_as_async;
                if !methods.is_null() {
                    (*methods).am_send = Some(am_send);
                    (*methods).am_await = Some(await_self);
                }
                #[cfg(Py_3_12)]
                {
                    (*type_object).tp_iternext = Some(iternext);
                }
                pyo3::ffi::PyType_Modified(type_object);
            }
        }
    });
}
