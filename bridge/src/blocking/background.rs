//! Background loops: asyncio loops on daemon threads of their own, for Python work that Rust
//! starts where no other loop can run it.
//!
//! Two callers need one: a [`block_on`](super::block_on) made on the thread of a running
//! loop (that loop is blocked until the call returns, so a coroutine the Rust future awaits
//! cannot run there), and `into_future` with no loop running anywhere in the process. The
//! loops live in `blocking.py`, one copy per process however many extensions use pyo3-aio:
//! loop `k` serves blocking calls made on loop `k - 1`'s thread, so a blocking call made by
//! Python code that itself runs on a background loop never waits on its own thread.
//!
//! A loop starts on first need, and stops with [`shutdown_background_loops`] or at
//! interpreter exit (an `atexit` handler does the same with a 1 s deadline). In a process
//! forked from one that used them, fresh loops start on need (the threads do not exist in
//! the child).

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

/// The name in `sys.modules`.
const NAME: &str = "pyo3_aio._blocking";

/// The process's `pyo3_aio._blocking` module, made by the first extension that needs it;
/// looked up once per copy of the bridge (the module object outlives fork).
pub(super) fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || make(py).map(Bound::unbind))
        .map(|module| module.bind(py).clone())
}

fn make(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let modules = py.import("sys")?.getattr("modules")?;
    if let Ok(existing) = modules.get_item(NAME) {
        return Ok(existing.cast_into::<PyModule>()?);
    }
    let module = PyModule::from_code(
        py,
        pyo3::ffi::c_str!(include_str!("blocking.py")),
        c"pyo3_aio/_blocking.py",
        c"pyo3_aio._blocking",
    )?;
    modules.set_item(NAME, &module)?;
    // `pyo3_aio.RustTask`, for isinstance checks and type hints, next to RustCoroutine.
    crate::shared::module(py)?.setattr("RustTask", module.getattr("RustTask")?)?;
    Ok(module)
}

/// The background loop for Python work of a call blocking the loop `here` runs on this
/// thread: the next one after `here` if `here` is itself a background loop, else the first.
pub(crate) fn loop_after<'py>(here: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let module = module(here.py())?;
    let depth: isize = module.call_method1("depth_of", (here,))?.extract()?;
    module.call_method1("loop_for", (depth + 1,))
}

/// The first background loop, started if needed.
pub(crate) fn first_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    module(py)?.call_method1("loop_for", (0,))
}

/// Whether `event_loop` is one of the background loops.
pub(crate) fn is_background(event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = event_loop.py();
    // No module yet (in this copy or any other): no background loop was ever started.
    let started = py.import("sys")?.getattr("modules")?.contains(NAME)?;
    if !started {
        return Ok(false);
    }
    module(py)?
        .call_method1("is_background", (event_loop,))?
        .extract()
}

/// Stops every background loop: cancels the tasks still running there, waits up to
/// `timeout` for them to finish, then stops and closes the loops. Returns `true` when every
/// loop thread has ended. A later call that needs a background loop starts a fresh one.
///
/// Interpreter exit does the same (with a 1 s deadline); call this to choose the moment,
/// say before tearing down what those tasks use. A `RustTask` ([`spawn_task`](crate::generic::spawn_task)) still
/// pending then gets its result when its future finishes only if a background loop runs by
/// then; cancel such tasks first.
///
/// ```
/// use pyo3::prelude::*;
///
/// Python::attach(|py| -> PyResult<()> {
///     assert!(pyo3_aio::blocking::shutdown_background_loops(py, std::time::Duration::from_secs(1))?);
///     Ok(())
/// })
/// .unwrap();
/// ```
///
/// # Errors
///
/// When the loops' module cannot be made or a Python call fails.
pub fn shutdown_background_loops(py: Python<'_>, timeout: Duration) -> PyResult<bool> {
    module(py)?
        .call_method1("shutdown", (timeout.as_secs_f64(),))?
        .extract()
}
