//! Everything that speaks to trio: the trio side of the seam (see `framework.rs`).
//!
//! - finding the run: `trio.lowlevel.current_trio_token()`, asked only when `trio` is
//!   already imported and no asyncio loop runs on this thread;
//! - the run's wake queue: a [`LoopShared`] per `trio.run`, kept in a `RunVar` (so it goes
//!   with the run), whose eventfd a system task (`drain` in `tasks.py`) waits on with
//!   `trio.lowlevel.wait_readable`: runtime threads wake the run without the GIL, one write
//!   per burst, and the task drains every queued completion in one step;
//! - suspending a task on a Rust future (`wait.rs`): the coroutine yields what
//!   `trio.lowlevel.wait_task_rescheduled` yields, and the drain resumes the task with
//!   `trio.lowlevel.reschedule(task, outcome)`.

pub(crate) mod wait;

pub(crate) use wait::{TrioWait, suspend};

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::Weak;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::callables;
use crate::event_loop::LoopShared;
use crate::sync::lock;

/// The current run's `TrioToken`, if trio runs on this thread. Imports nothing: a process
/// that never imported trio pays one dictionary lookup.
pub(crate) fn current_token(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    if !trio_imported(py) {
        return None;
    }
    callables::trio_current_token(py)
        .and_then(|current| current.call0())
        .ok()
}

/// Whether `object` is a trio run's token (what [`TaskLocals`](crate::TaskLocals) holds
/// as its loop under trio).
pub(crate) fn is_token(object: &Bound<'_, PyAny>) -> bool {
    let py = object.py();
    trio_imported(py)
        && callables::trio_token(py).is_ok_and(|class| object.is_instance(class).unwrap_or(false))
}

/// Whether `trio` is in `sys.modules`.
fn trio_imported(py: Python<'_>) -> bool {
    // SAFETY: the GIL is held (`py`); PyImport_GetModuleDict returns a borrowed reference
    // to `sys.modules`, turned into a new one at once.
    let modules = unsafe { Bound::from_borrowed_ptr(py, pyo3::ffi::PyImport_GetModuleDict()) };
    modules
        .cast::<PyDict>()
        .is_ok_and(|modules| modules.contains(pyo3::intern!(py, "trio")).unwrap_or(false))
}

/// The drain of one trio run's wake queue: called by the run's drain task each time the
/// descriptor is readable; closed when that task ends with the run.
#[pyclass(frozen, name = "_TrioRun", module = "pyo3_aio")]
pub(crate) struct TrioRun {
    shared: Arc<LoopShared>,
}

#[pymethods]
impl TrioRun {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.clear_fd();
        self.shared.drain(py)
    }

    /// The run ends: nothing will drain again, so what is queued is dropped and every
    /// conversion still pending is released (its Rust future dropped).
    fn close(&self) {
        lock(&RUNS).retain(|(_, shared)| !std::ptr::eq(shared.as_ptr(), Arc::as_ptr(&self.shared)));
        self.shared.close();
    }
}

thread_local! {
    /// The run this thread last looked up, with its state; the token is held so that its
    /// address cannot be reused by another run's while cached.
    static LAST: RefCell<Option<(Py<PyAny>, Arc<LoopShared>)>> = const { RefCell::new(None) };
}

/// The shared state of the trio run `token` belongs to, made on first use (with the drain
/// task). Called on the run's thread, inside the run.
pub(crate) fn run_shared(py: Python<'_>, token: &Bound<'_, PyAny>) -> PyResult<Arc<LoopShared>> {
    let cached = LAST.with(|last| {
        last.borrow()
            .as_ref()
            .filter(|(cached, shared)| cached.is(token) && shared.is_current())
            .map(|(_, shared)| shared.clone())
    });
    if let Some(shared) = cached {
        return Ok(shared);
    }
    let run_var = run_var(py)?;
    let known = run_var.call_method1(pyo3::intern!(py, "get"), (py.None(),))?;
    let shared = if known.is_none() {
        let (shared, fd) = LoopShared::watched_fd()?;
        let run = Bound::new(
            py,
            TrioRun {
                shared: shared.clone(),
            },
        )?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("name", "pyo3_aio.drain")?;
        let drain = task_function(py, "drain")?;
        callables::trio_spawn_system_task(py)?.call((drain, fd, &run), Some(&kwargs))?;
        run_var.call_method1(pyo3::intern!(py, "set"), (run,))?;
        lock(&RUNS).push((token.clone().unbind(), Arc::downgrade(&shared)));
        shared
    } else {
        known.cast::<TrioRun>()?.get().shared.clone()
    };
    let old = LAST.with(|last| {
        last.borrow_mut()
            .replace((token.clone().unbind(), shared.clone()))
    });
    drop(old);
    Ok(shared)
}

/// The `RunVar` that holds each run's [`TrioRun`].
fn run_var(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static RUN_VAR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    RUN_VAR
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(callables::trio_run_var(py)?.call1(("pyo3_aio",))?.unbind())
        })
        .map(|var| var.bind(py))
}

/// A function of `trio/tasks.py` (`drain`, `run_awaitable`, `run`), compiled once.
pub(crate) fn task_function<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static TASKS: PyOnceLock<Py<pyo3::types::PyModule>> = PyOnceLock::new();
    TASKS
        .get_or_try_init(py, || {
            let module = pyo3::types::PyModule::from_code(
                py,
                pyo3::ffi::c_str!(include_str!("tasks.py")),
                c"pyo3_aio_trio_tasks.py",
                c"pyo3_aio_trio_tasks",
            )?;
            Ok::<_, PyErr>(module.unbind())
        })?
        .bind(py)
        .getattr(name)
}

/// The state of the run `token` stands for, from any thread: made on first use on the
/// run's own thread; elsewhere the run must have hosted a conversion already.
pub(crate) fn state_of(py: Python<'_>, token: &Bound<'_, PyAny>) -> PyResult<Arc<LoopShared>> {
    if current_token(py).is_some_and(|current| current.is(token)) {
        return run_shared(py, token);
    }
    shared_of(token).ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err(
            "this trio run has ended, or never hosted a pyo3-aio conversion: from another \
             thread, into_future and into_stream need a run that awaited a converted Rust \
             future",
        )
    })
}

/// The runs that hosted a conversion and have not ended, with their state: what
/// `into_future` called from a runtime thread finds. Touched with the GIL held only.
static RUNS: Mutex<Vec<(Py<PyAny>, Weak<LoopShared>)>> = Mutex::new(Vec::new());

/// The tokens of the trio runs that hosted a conversion and still run.
pub(crate) fn running_runs(py: Python<'_>) -> Vec<Bound<'_, PyAny>> {
    lock(&RUNS)
        .iter()
        .filter(|(_, shared)| shared.upgrade().is_some_and(|shared| shared.is_current()))
        .map(|(token, _)| token.bind(py).clone())
        .collect()
}

/// The state of the run `token` stands for, if it hosted a conversion and still runs.
pub(crate) fn shared_of(token: &Bound<'_, PyAny>) -> Option<Arc<LoopShared>> {
    lock(&RUNS)
        .iter()
        .find(|(known, _)| known.is(token))
        .and_then(|(_, shared)| shared.upgrade())
}

/// What a coroutine suspended under trio returns when resumed: trio sends an `outcome`
/// (`Value` or `Error`), which is unwrapped as `wait_task_rescheduled` does.
pub(crate) fn unwrap_sent(sent: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
    match sent {
        Some(outcome) if !outcome.is_none() => outcome
            .call_method0(pyo3::intern!(outcome.py(), "unwrap"))
            .map(Bound::unbind),
        _ => Err(pyo3::exceptions::PyTypeError::new_err(
            "a coroutine suspended under trio must be resumed by trio (with an outcome), \
             not with send(None)",
        )),
    }
}

/// What `into_stream`'s pump needs of its loop, under trio: `create_future()` (an
/// awaitable the consumer resolves when it makes room) and `create_task(coroutine)` (a
/// system task, cancelled through its own cancel scope when the Rust side drops the stream);
/// see `StreamHost` in `tasks.py`.
pub(crate) fn stream_host(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    task_function(py, "STREAM_HOST")
}
