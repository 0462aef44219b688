//! Starting a coroutine as a task on the loop thread, eagerly where Python can.
//!
//! Python 3.12 can run a new task's first step inside its constructor
//! (`asyncio.Task(coro, eager_start=True)`): a coroutine that finishes without suspending
//! is then done before `create_task` returns, with its own `current_task()` and its own
//! context copy, and costs no trip through the loop. `into_future` on the loop thread uses
//! it when the loop would build a plain `asyncio.Task` itself: no task factory set, and
//! `create_task` is asyncio's or uvloop's own. A loop with a task factory goes through
//! `create_task`, so the factory decides (asyncio's `eager_task_factory` starts eagerly
//! too); so does a loop whose class has a `create_task` of its own, and every Python before
//! 3.12.

use std::cell::RefCell;
use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::asyncio::create_task;
use crate::callables;

/// `asyncio.Task(coro, loop=event_loop, context=context, eager_start=True)` when the loop
/// would build a plain Task for `create_task` (see the module docs), else
/// [`create_task`]. `event_loop` must be the loop running on this thread: only a running
/// loop starts a task eagerly.
pub(crate) fn create_task_here<'py>(
    py: Python<'py>,
    event_loop: &Bound<'py, PyAny>,
    awaitable: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: plain type check on a valid object pointer.
    let is_coroutine = unsafe { pyo3::ffi::PyCoro_CheckExact(awaitable.as_ptr()) } != 0;
    if is_coroutine && eager_start_exists(py) && builds_plain_tasks(py, event_loop)? {
        let factory = event_loop.call_method0(pyo3::intern!(py, "get_task_factory"))?;
        if factory.is_none() {
            return eager_task(py, event_loop, awaitable, context);
        }
    }
    create_task(py, event_loop, awaitable, context)
}

/// Whether `asyncio.Task` takes `eager_start` (Python 3.12+).
fn eager_start_exists(py: Python<'_>) -> bool {
    // Cached: `version_info` formats and parses the version string on every call.
    static EXISTS: OnceLock<bool> = OnceLock::new();
    *EXISTS.get_or_init(|| py.version_info() >= (3, 12))
}

thread_local! {
    /// The loop class last asked about, and the answer: loops of one class run on a
    /// thread, one after another.
    static LAST_CLASS: RefCell<Option<(Py<PyType>, bool)>> = const { RefCell::new(None) };
}

/// Whether the class of `event_loop` creates tasks with asyncio's `BaseEventLoop.create_task`
/// or uvloop's `Loop.create_task`, which build `asyncio.Task(coro, loop=, context=)` when no
/// task factory is set.
fn builds_plain_tasks(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
    let class = event_loop.get_type();
    let cached = LAST_CLASS.with(|last| {
        last.borrow()
            .as_ref()
            .filter(|(known, _)| known.is(&class))
            .map(|(_, answer)| *answer)
    });
    if let Some(answer) = cached {
        return Ok(answer);
    }
    let method = class.getattr(pyo3::intern!(py, "create_task"))?;
    let answer = method.is(callables::stock_create_task(py)?) || is_uvloop_create_task(&method);
    let old = LAST_CLASS.with(|last| last.borrow_mut().replace((class.unbind(), answer)));
    drop(old);
    Ok(answer)
}

/// Whether `method` is uvloop's `Loop.create_task` (a Cython function of the extension
/// class `uvloop.loop.Loop`, or a method descriptor of it in older builds).
fn is_uvloop_create_task(method: &Bound<'_, PyAny>) -> bool {
    let text = |object: &Bound<'_, PyAny>, attribute: &str| {
        object
            .getattr(attribute)
            .and_then(|value| value.extract::<String>())
            .ok()
    };
    let module = text(method, "__module__").or_else(|| {
        method
            .getattr("__objclass__")
            .ok()
            .and_then(|owner| text(&owner, "__module__"))
    });
    module.as_deref() == Some("uvloop.loop")
        && text(method, "__qualname__").as_deref() == Some("Loop.create_task")
}

/// `asyncio.Task(awaitable, loop=event_loop, context=context, eager_start=True)`.
fn eager_task<'py>(
    py: Python<'py>,
    event_loop: &Bound<'py, PyAny>,
    awaitable: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let task_class = callables::task(py)?;
    let none = py.None();
    let context = context.map_or(none.bind(py), |context| context);
    let eager = pyo3::types::PyBool::new(py, true);
    #[cfg(not(Py_LIMITED_API))]
    {
        static KEYWORDS: PyOnceLock<Py<pyo3::types::PyTuple>> = PyOnceLock::new();
        let keywords = KEYWORDS.get_or_try_init(py, || {
            pyo3::types::PyTuple::new(py, ["loop", "context", "eager_start"]).map(Bound::unbind)
        })?;
        // Slot 0 is scratch space the callee may use (PY_VECTORCALL_ARGUMENTS_OFFSET).
        let args = [
            std::ptr::null_mut(),
            awaitable.as_ptr(),
            event_loop.as_ptr(),
            context.as_ptr(),
            eager.as_ptr(),
        ];
        // SAFETY: the GIL is held (`py`); `args[1..]` are valid borrowed references that
        // outlive the call (one positional argument, then one per name in `keywords`, a
        // tuple of strings); slot 0 exists, as PY_VECTORCALL_ARGUMENTS_OFFSET allows the
        // callee to overwrite it. The call returns a new reference, or NULL with an
        // exception set, which `from_owned_ptr_or_err` turns into the error.
        unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                pyo3::ffi::PyObject_Vectorcall(
                    task_class.as_ptr(),
                    args.as_ptr().add(1),
                    1 | pyo3::ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                    keywords.as_ptr(),
                ),
            )
        }
    }
    #[cfg(Py_LIMITED_API)]
    {
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("loop", event_loop)?;
        kwargs.set_item("context", context)?;
        kwargs.set_item("eager_start", eager)?;
        task_class.call((awaitable,), Some(&kwargs))
    }
}
