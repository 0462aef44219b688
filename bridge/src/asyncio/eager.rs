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
//! 3.11. On 3.11 such a loop gets the plain Task its `create_task` would build, made here
//! directly (`asyncio.Task(coro, loop=, context=)`): asyncio's `create_task` is Python code,
//! and only checks that the running loop is not closed (it cannot be) and names the task
//! as the constructor does. The factory is read where `create_task` reads it.

use std::cell::RefCell;
use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::asyncio::create_task;
use crate::callables;

/// `asyncio.Task(coro, loop=event_loop, context=context)` (with `eager_start=True` on
/// 3.12+) when the loop would build a plain Task for `create_task` (see the module docs),
/// else [`create_task`]. `event_loop` must be the loop running on this thread: only a
/// running loop starts a task eagerly.
pub(crate) fn create_task_here<'py>(
    py: Python<'py>,
    event_loop: &Bound<'py, PyAny>,
    awaitable: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: plain type check on a valid object pointer.
    let is_coroutine = unsafe { pyo3::ffi::PyCoro_CheckExact(awaitable.as_ptr()) } != 0;
    if is_coroutine && task_takes_context(py) && has_no_task_factory(py, event_loop)? {
        return plain_task(py, event_loop, awaitable, context);
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

/// Whether `asyncio.Task` takes `context` (Python 3.11+), as the loops' `create_task` then
/// pass it.
fn task_takes_context(py: Python<'_>) -> bool {
    static TAKES: OnceLock<bool> = OnceLock::new();
    *TAKES.get_or_init(|| py.version_info() >= (3, 11))
}

/// Whose `create_task` a loop class has.
#[derive(Clone, Copy)]
enum CreateTask {
    /// asyncio's `BaseEventLoop.create_task`: a plain Task unless `self._task_factory` is set.
    Asyncio,
    /// uvloop's `Loop.create_task`: a plain Task unless its factory field is set, which
    /// uvloop's own `Loop.get_task_factory` reads (`callables::uvloop_get_task_factory`).
    Uvloop,
    /// The class's own: it decides.
    Other,
}

use CreateTask::{Asyncio, Other, Uvloop};

thread_local! {
    /// The loop class last asked about, and the answer: loops of one class run on a
    /// thread, one after another.
    static LAST_CLASS: RefCell<Option<(Py<PyType>, CreateTask)>> = const { RefCell::new(None) };
}

/// Whether `event_loop`'s `create_task` would build a plain `asyncio.Task(coro, loop=,
/// context=)`: it is asyncio's or uvloop's own and no task factory is set.
fn has_no_task_factory(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
    let factory = match create_task_of(py, event_loop)? {
        Asyncio => event_loop.getattr(pyo3::intern!(py, "_task_factory"))?,
        Uvloop => callables::uvloop_get_task_factory(py)?.call1((event_loop,))?,
        Other => return Ok(false),
    };
    Ok(factory.is_none())
}

/// Whose `create_task` the class of `event_loop` has (asyncio's `BaseEventLoop.create_task`,
/// uvloop's `Loop.create_task`, or another).
fn create_task_of(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<CreateTask> {
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
    let answer = if method.is(callables::stock_create_task(py)?) {
        Asyncio
    } else if is_uvloop_create_task(&method) && callables::uvloop_get_task_factory(py).is_ok() {
        Uvloop
    } else {
        Other
    };
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

/// `asyncio.Task(awaitable, loop=event_loop, context=context)`, with `eager_start=True`
/// where it exists.
fn plain_task<'py>(
    py: Python<'py>,
    event_loop: &Bound<'py, PyAny>,
    awaitable: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    static EAGER: callables::Keywords =
        callables::Keywords::new(&["loop", "context", "eager_start"]);
    static PLAIN: callables::Keywords = callables::Keywords::new(&["loop", "context"]);
    let none = py.None();
    let context = context.map_or(none.bind(py), |context| context);
    let eager = pyo3::types::PyBool::new(py, true);
    let (keywords, values) = if eager_start_exists(py) {
        (&EAGER, &[event_loop, context, eager.as_any()][..])
    } else {
        (&PLAIN, &[event_loop, context][..])
    };
    callables::call_with_keywords(callables::task(py)?, awaitable, keywords, values)
}
