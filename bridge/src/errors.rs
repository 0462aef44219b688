//! Python exceptions the bridge raises in several places, each built here once.

use pyo3::exceptions::PyStopIteration;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3_aio_core::Closed;

/// The exception `throw(typ, val, tb)` raises, built as generators do: an exception
/// instance as given, or the class called with `val`; `tb` becomes its traceback.
pub(crate) fn thrown(
    typ: &Bound<'_, PyAny>,
    val: Option<&Bound<'_, PyAny>>,
    tb: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyErr> {
    let error = if let Ok(class) = typ.cast::<PyType>() {
        let instance = match val {
            Some(value) if value.is_instance(class)? => value.clone(),
            Some(value) if !value.is_none() => class.call1((value,))?,
            _ => class.call0()?,
        };
        PyErr::from_value(instance)
    } else {
        PyErr::from_value(typ.clone())
    };
    if let Some(traceback) = tb.filter(|tb| !tb.is_none()) {
        error
            .value(typ.py())
            .call_method1("with_traceback", (traceback,))?;
    }
    Ok(error)
}

/// PEP 479 for Rust futures: a `StopIteration` error would read as a return value to
/// whoever resumes the coroutine, so it becomes a `RuntimeError` with it as the cause, as
/// in a Python coroutine.
pub(crate) fn no_stop_iteration(py: Python<'_>, error: PyErr) -> PyErr {
    if !error.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) {
        return error;
    }
    let replaced = PyRuntimeError::new_err("coroutine raised StopIteration");
    replaced.set_cause(py, Some(error));
    replaced
}

/// `StopIteration(value)` as a Python coroutine's `send` raises it: built as an instance
/// so a tuple value is not taken as args, `StopIteration()` for `None`, and raised once with
/// `PyErr_SetObject`, which chains an exception being handled as its `__context__`.
pub(crate) fn stop_iteration(py: Python<'_>, value: Py<PyAny>) -> PyErr {
    let class = py.get_type::<PyStopIteration>();
    let made = if value.is_none(py) {
        class.call0()
    } else {
        class.call1((value,))
    };
    let instance = match made {
        Ok(instance) => instance,
        Err(error) => return error,
    };
    // SAFETY: the GIL is held; both are valid objects, and the instance is of the class, so
    // the call raises it as it is (taking its own reference).
    unsafe { pyo3::ffi::PyErr_SetObject(class.as_ptr(), instance.as_ptr()) };
    PyErr::fetch(py)
}

/// Error for a Rust future whose producer vanished (runtime shutdown, task dropped).
pub(crate) fn producer_dropped(runtime: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "the Rust future was dropped by the {runtime} runtime before it completed \
         (the runtime shut down, or dropped the task)"
    ))
}

/// The error for a conversion that needs an asyncio event loop where none runs. Under trio
/// (or anyio's trio backend) it says so: only asyncio-compatible loops are supported. The
/// check runs only on this error path, and imports nothing: trio is asked only if it is
/// already loaded.
pub(crate) fn no_running_loop(py: Python<'_>, message: &str) -> PyErr {
    if trio_running(py) {
        return PyRuntimeError::new_err(format!(
            "no running asyncio event loop: this runs under trio, and pyo3-aio supports \
             asyncio-compatible event loops only (asyncio, uvloop, ...); run it on asyncio, \
             e.g. with anyio's asyncio backend or trio-asyncio ({message})"
        ));
    }
    PyRuntimeError::new_err(message.to_owned())
}

/// Whether trio runs on this thread (asked only if trio is already loaded).
pub(crate) fn trio_running(py: Python<'_>) -> bool {
    py.import("sys")
        .and_then(|sys| sys.getattr("modules"))
        .and_then(|modules| modules.get_item("trio"))
        .and_then(|trio| trio.getattr("lowlevel"))
        .and_then(|lowlevel| lowlevel.call_method0("current_trio_token"))
        .is_ok()
}

/// `RuntimeError: cannot reuse already awaited coroutine`, what CPython raises when a
/// finished coroutine is resumed.
pub(crate) fn already_awaited() -> PyErr {
    PyRuntimeError::new_err("cannot reuse already awaited coroutine")
}

/// A runtime's refusal (a spawn it refused, or a runtime that cannot run futures here) as
/// the `RuntimeError` carrying its reason.
pub(crate) fn refused(reason: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(reason.to_string())
}

/// A completion cell that closed without a value, as the consumer's error: `dropped` for
/// a producer that went away, the cell's own message otherwise.
pub(crate) fn closed_cell(closed: Closed, dropped: impl FnOnce() -> PyErr) -> PyErr {
    match closed {
        Closed::ProducerDropped => dropped(),
        closed => PyRuntimeError::new_err(closed.to_string()),
    }
}

/// `TypeError: <what> '<type>', which is not an asyncio event loop`.
pub(crate) fn not_an_event_loop(what: &str, object: &Bound<'_, PyAny>) -> PyResult<PyErr> {
    Ok(PyTypeError::new_err(format!(
        "{what} '{}', which is not an asyncio event loop",
        object.get_type().name()?
    )))
}
