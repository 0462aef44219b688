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

/// Whether `asyncio.Task` takes `eager_start` (Python 3.12+): before, no task starts
/// before the loop steps it.
pub(crate) fn eager_start_exists(py: Python<'_>) -> bool {
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
    static KEYWORDS: callables::Keywords =
        callables::Keywords::new(&["loop", "context", "eager_start"]);
    let none = py.None();
    let context = context.map_or(none.bind(py), |context| context);
    let eager = pyo3::types::PyBool::new(py, true);
    callables::call_with_keywords(
        callables::task(py)?,
        awaitable,
        &KEYWORDS,
        &[event_loop, context, eager.as_any()],
    )
}
