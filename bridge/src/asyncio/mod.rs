//! Everything that speaks to asyncio.

pub(crate) mod eager;
pub(crate) mod running;

pub(crate) use running::{running_loop, runs_here};

use pyo3::prelude::*;

use crate::callables;
use pyo3::types::PyDict;
use pyo3::types::PyTuple;

/// Whether `error` must travel up to the loop instead of being reported: asyncio lets
/// `KeyboardInterrupt` and `SystemExit` escape callbacks and stop the loop.
pub(crate) fn is_interrupt(py: Python<'_>, error: &PyErr) -> bool {
    error.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
        || error.is_instance_of::<pyo3::exceptions::PySystemExit>(py)
}

/// `task.cancel()` from the drain; a failure goes to the task's loop's exception handler.
pub(crate) fn cancel_task(
    py: Python<'_>,
    task: &Bound<'_, PyAny>,
    msg: Option<&Py<PyAny>>,
    message: &str,
) {
    let cancel = pyo3::intern!(py, "cancel");
    let cancelled = match msg {
        Some(msg) => task.call_method1(cancel, (msg,)),
        None => task.call_method0(cancel),
    };
    if let Err(error) = cancelled {
        if let Ok(event_loop) = task.call_method0("get_loop") {
            report(py, &event_loop, message, error);
        }
    }
}

/// Reports an exception raised by a callback run from the drain, as asyncio reports
/// exceptions of callbacks (`loop.call_exception_handler`).
pub(crate) fn report(py: Python<'_>, event_loop: &Bound<'_, PyAny>, message: &str, error: PyErr) {
    let context = PyDict::new(py);
    let reported = context
        .set_item("message", message)
        .and_then(|()| context.set_item("exception", error.value(py)))
        .and_then(|()| event_loop.call_method1("call_exception_handler", (context,)));
    if let Err(error) = reported {
        error.write_unraisable(py, Some(event_loop));
    }
}

/// `contextvars.copy_context()`, without the Python call where the C API is available.
pub(crate) fn copy_current_context(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    #[cfg(not(Py_LIMITED_API))]
    {
        // SAFETY: the GIL is held (`py`); the call returns a new reference, or NULL with an
        // exception set, which `from_owned_ptr_or_err` turns into the error.
        unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyContext_CopyCurrent()) }
    }
    #[cfg(Py_LIMITED_API)]
    {
        py.import("contextvars")?.call_method0("copy_context")
    }
}

/// Whether `object` is an asyncio event loop (`asyncio.AbstractEventLoop`, which uvloop's
/// loops also are).
pub(crate) fn is_event_loop(object: &Bound<'_, PyAny>) -> PyResult<bool> {
    object.is_instance(callables::abstract_event_loop(object.py())?)
}

pub(crate) fn create_task<'py>(
    py: Python<'py>,
    event_loop: &Bound<'py, PyAny>,
    awaitable: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    // Cached: `version_info` formats and parses the version string on every call.
    static CREATE_TASK_HAS_CONTEXT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: plain type check on a valid object pointer.
    let is_coroutine = unsafe { pyo3::ffi::PyCoro_CheckExact(awaitable.as_ptr()) } != 0;
    let create_task = pyo3::intern!(py, "create_task");
    match context {
        // No explicit context: the task copies the current one.
        None if is_coroutine => return event_loop.call_method1(create_task, (awaitable,)),
        Some(context)
            if is_coroutine
                && *CREATE_TASK_HAS_CONTEXT.get_or_init(|| py.version_info() >= (3, 11)) =>
        {
            static CONTEXT: callables::Keywords = callables::Keywords::new(&["context"]);
            return callables::call_method_with_keywords(
                event_loop,
                create_task,
                awaitable,
                &CONTEXT,
                &[context],
            );
        }
        _ => {}
    }
    // Older Pythons, futures and other awaitables: `ensure_future` inside the context, so
    // a task it creates copies that context.
    let ensure_future = callables::ensure_future(py)?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("loop", event_loop)?;
    match context {
        Some(context) => context.call_method(
            pyo3::intern!(py, "run"),
            (ensure_future, awaitable),
            Some(&kwargs),
        ),
        None => ensure_future.call((awaitable,), Some(&kwargs)),
    }
}

/// `task.result()`.
pub(crate) fn task_result<'py>(task: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = task.py();
    match stock_method(task, callables::task_result) {
        Some(result) => result.call1((task,)),
        None => task.call_method0(pyo3::intern!(py, "result")),
    }
}

/// `task.done()`.
pub(crate) fn task_done(task: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = task.py();
    match stock_method(task, callables::task_done) {
        Some(done) => done.call1((task,)),
        None => task.call_method0(pyo3::intern!(py, "done")),
    }?
    .is_truthy()
}

/// `task.add_done_callback(callback)`.
pub(crate) fn add_done_callback(
    task: &Bound<'_, PyAny>,
    callback: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let py = task.py();
    match stock_method(task, callables::task_add_done_callback) {
        Some(add) => add.call1((task, callback)),
        None => task.call_method1(pyo3::intern!(py, "add_done_callback"), (callback,)),
    }
    .map(drop)
}

/// `asyncio.Task`'s own method (`method`), when calling it with `task` is what calling the
/// method by name on `task` does, without the look-up by name: `task` is exactly an
/// `asyncio.Task` (not a subclass, which may override it) and has no attributes of its own
/// (an instance attribute of that name would shadow the method). `None` otherwise, and
/// where the instance's dict cannot be read directly.
fn stock_method<'py>(
    task: &Bound<'py, PyAny>,
    method: fn(Python<'py>) -> PyResult<&'py Bound<'py, PyAny>>,
) -> Option<&'py Bound<'py, PyAny>> {
    #[cfg(not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy)))]
    {
        let py = task.py();
        let class = callables::task(py).ok()?;
        if !task.get_type().is(class) {
            return None;
        }
        // SAFETY: the GIL is held (`py`); `task`'s type is asyncio's Task class, a static
        // or heap type object we only read a field of. A positive `tp_dictoffset` is where
        // the instance keeps its `__dict__` pointer (NULL until an attribute is set), which
        // we read, and when set it is a dict, whose size we ask.
        let no_attributes = unsafe {
            let offset = (*task.get_type_ptr()).tp_dictoffset;
            if offset <= 0 {
                return None;
            }
            let dict = *task
                .as_ptr()
                .cast::<u8>()
                .offset(offset)
                .cast::<*mut pyo3::ffi::PyObject>();
            dict.is_null() || pyo3::ffi::PyDict_Size(dict) == 0
        };
        if no_attributes {
            return method(py).ok();
        }
        None
    }
    #[cfg(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy))]
    {
        let _ = (task, method);
        None
    }
}

/// Sets an `asyncio.Future`'s result or exception unless it is already done: a cancelled
/// future keeps its cancellation, and the result is dropped.
pub(crate) fn set_unless_done(
    future: &Bound<'_, PyAny>,
    result: PyResult<Py<PyAny>>,
) -> PyResult<()> {
    let py = future.py();
    if future
        .call_method0(pyo3::intern!(py, "done"))?
        .is_truthy()?
    {
        return Ok(());
    }
    match result {
        Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,)),
        Err(error) => future.call_method1(pyo3::intern!(py, "set_exception"), (error.value(py),)),
    }
    .map(drop)
}

pub(crate) fn cancelled_error(py: Python<'_>, message: Option<&Py<PyAny>>) -> PyErr {
    let class = match callables::cancelled_error(py) {
        Ok(class) => class,
        Err(error) => return error,
    };
    let args = match message {
        Some(message) => PyTuple::new(py, [message.bind(py)]),
        None => Ok(PyTuple::empty(py)),
    };
    match args.and_then(|args| class.call1(args)) {
        Ok(instance) => PyErr::from_value(instance),
        Err(error) => error,
    }
}

pub(crate) fn invalid_state(py: Python<'_>, message: &str) -> PyErr {
    match callables::invalid_state_error(py).and_then(|class| class.call1((message,))) {
        Ok(instance) => PyErr::from_value(instance),
        Err(error) => error,
    }
}
