//! Driving a Rust future to completion while Python's event loop owns the thread.
//!
//! Applications that embed Python call these from `main` (the `#[main]` attributes do it
//! for them): the Rust future runs on the runtime's workers, and the calling thread runs
//! the asyncio loop until the future is done, so Python coroutines awaited from Rust are
//! served by it.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors::{closed_cell, not_an_event_loop, producer_dropped};

use crate::event_loop::signal::{Pipe, nonblocking_pipe};
use crate::sync::lock;
use pyo3::types::{PyDict, PyList};
use pyo3_aio_core::{Spawner, completion};

use crate::coroutine::local_future_into_py_with;
use crate::coroutine::{Running, drive};
use crate::locals::{LocalsSlot, TaskLocals, scoped};
use crate::options::FirstPoll;

/// Runs `future` on `spawner` while `event_loop` runs on this thread, until the future is
/// done; returns its output. The loop must not be running already.
///
/// The future's task locals are `event_loop` and a copy of the current context, so
/// [`into_future`](crate::into_future) inside it needs no scope. If the loop run ends early
/// (`KeyboardInterrupt`, `loop.stop()`), the Rust future is dropped and the error returned.
///
/// # Errors
///
/// The future's own error; `RustPanic` when it panicked; `RuntimeError` when its runtime
/// dropped it or the loop stopped first; whatever `run_until_complete` raised.
pub fn run_until_complete<S, F, T>(
    event_loop: Bound<'_, PyAny>,
    spawner: S,
    future: F,
) -> PyResult<T>
where
    S: Spawner,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
{
    let py = event_loop.py();
    // Checked before anything is made: a failure after `create_task` would leave a task on
    // the loop and wait for the runtime to let go of the future.
    if !crate::asyncio::is_event_loop(&event_loop)? {
        return Err(not_an_event_loop(
            "run_until_complete needs an asyncio event loop, got",
            &event_loop,
        )?);
    }
    if event_loop.call_method0("is_closed")?.is_truthy()? {
        return Err(PyRuntimeError::new_err(
            "run_until_complete: the event loop is closed",
        ));
    }
    if event_loop.call_method0("is_running")?.is_truthy()?
        || crate::asyncio::running_loop(py)?.is_some()
    {
        return Err(PyRuntimeError::new_err(
            "run_until_complete: an event loop is already running on this thread; await the \
             converted future instead",
        ));
    }
    let locals = TaskLocals::new(event_loop.clone()).copy_context(py)?;
    let slot: LocalsSlot = Arc::new(OnceLock::from(locals));
    let (producer, consumer) = completion::<PyResult<T>>();
    let outcome: Arc<Mutex<Option<PyResult<T>>>> = Arc::new(Mutex::new(None));
    let delivered = outcome.clone();
    let runtime = spawner.name();
    let released = Arc::new(Released::default());
    let release_on_drop = ReleaseOnDrop(released.clone());
    // The waiting side lives on the loop thread: woken by the runtime, no hop back. It
    // spawns the Rust future on its first poll, once the loop is running, so that code in
    // the future always finds the loop running.
    let waiting = local_future_into_py_with(py, FirstPoll::Inline, async move {
        spawner
            .spawn(Box::pin(async move {
                let _release = release_on_drop;
                drive(Running::new(Box::pin(scoped(slot, future))), producer).await
            }))
            .map_err(crate::errors::refused)?;
        let result = match consumer.await {
            Ok(result) => result,
            Err(closed) => Err(closed_cell(closed, || producer_dropped(runtime))),
        };
        *lock(&delivered) = Some(result);
        Ok(())
    })?;
    let task = match event_loop.call_method1(pyo3::intern!(py, "create_task"), (&waiting,)) {
        Ok(task) => task,
        Err(error) => {
            // Never started: closed, so that it does not warn it was never awaited.
            let _ = waiting.call_method0(pyo3::intern!(py, "close"));
            return Err(error);
        }
    };
    if let Err(error) = event_loop.call_method1(pyo3::intern!(py, "run_until_complete"), (&task,)) {
        // Cancelling the task drops the waiting side, which cancels the cell, which makes
        // the runtime drop the Rust future.
        let _ = task.call_method0(pyo3::intern!(py, "cancel"));
        // As asyncio.run does on Ctrl-C: run the loop until the cancelled task is done,
        // then wait (without the GIL: the future's drop may need it) until the runtime has
        // dropped the Rust future, so that its destructors have run when we return.
        let _ = event_loop.call_method1(pyo3::intern!(py, "run_until_complete"), (&task,));
        py.detach(|| released.wait(Duration::from_secs(5)));
        return Err(error);
    }
    let result = lock(&outcome).take();
    result.unwrap_or_else(|| {
        Err(PyRuntimeError::new_err(
            "the event loop stopped before the Rust future completed",
        ))
    })
}

/// Whether the runtime has let go of the Rust future (finished it or dropped it).
#[derive(Default)]
struct Released {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Released {
    /// Waits until the future is released, at most `timeout`: a future stuck in a blocking
    /// call must not keep the program from exiting.
    pub(crate) fn wait(&self, timeout: Duration) {
        let done = lock(&self.done);
        let _ = self
            .changed
            .wait_timeout_while(done, timeout, |done| !*done);
    }
}

/// Moved into the spawned task; marks the future released when the task ends or is dropped.
struct ReleaseOnDrop(Arc<Released>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        *lock(&self.0.done) = true;
        self.0.changed.notify_all();
    }
}

/// Runs `future` to completion on a new asyncio event loop, like `asyncio.run`, and closes
/// the loop afterwards (cancelling leftover tasks, closing async generators).
///
/// # Errors
///
/// As [`run_until_complete`].
pub fn run<S, F, T>(py: Python<'_>, spawner: S, future: F) -> PyResult<T>
where
    S: Spawner,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
{
    run_with_loop_factory(
        py,
        spawner,
        |py| py.import("asyncio")?.call_method0("new_event_loop"),
        future,
    )
}

/// [`run`] on a loop made by `factory` (for example `uvloop.new_event_loop`).
///
/// # Errors
///
/// `TypeError` when the factory returns something that is not an
/// `asyncio.AbstractEventLoop`; otherwise as [`run_until_complete`].
pub fn run_with_loop_factory<'py, S, F, T>(
    py: Python<'py>,
    spawner: S,
    factory: impl FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
    future: F,
) -> PyResult<T>
where
    S: Spawner,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
{
    let asyncio = py.import("asyncio")?;
    let event_loop = factory(py)?;
    if !crate::asyncio::is_event_loop(&event_loop)? {
        return Err(not_an_event_loop(
            "the event loop factory returned",
            &event_loop,
        )?);
    }
    asyncio.call_method1("set_event_loop", (&event_loop,))?;
    let interrupts = InterruptWakeup::install(py, &event_loop)?;
    let result = run_until_complete(event_loop.clone(), spawner, future);
    let closed = close(py, &event_loop);
    drop(interrupts);
    let _ = asyncio.call_method1("set_event_loop", (py.None(),));
    let value = result?;
    closed?;
    Ok(value)
}

/// What `asyncio.run` does on the way out: cancel what is left, let it finish, close
/// async generators and the default executor, close the loop.
fn close(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<()> {
    let asyncio = py.import("asyncio")?;
    let finish = || -> PyResult<()> {
        let tasks = asyncio.call_method1("all_tasks", (event_loop,))?;
        let tasks = PyList::new(py, tasks.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
        if !tasks.is_empty() {
            for task in tasks.iter() {
                task.call_method0("cancel")?;
            }
            let kwargs = PyDict::new(py);
            kwargs.set_item("return_exceptions", true)?;
            let gathered = asyncio
                .getattr("gather")?
                .call(tasks.to_tuple(), Some(&kwargs))?;
            event_loop.call_method1("run_until_complete", (gathered,))?;
        }
        let generators = event_loop.call_method0("shutdown_asyncgens")?;
        event_loop.call_method1("run_until_complete", (generators,))?;
        if event_loop.hasattr("shutdown_default_executor")? {
            let executor = event_loop.call_method0("shutdown_default_executor")?;
            event_loop.call_method1("run_until_complete", (executor,))?;
        }
        Ok(())
    };
    let finished = finish();
    event_loop.call_method0("close")?;
    finished
}

/// Makes Ctrl-C reach a loop blocked in `select`/`epoll` even when the signal lands on a
/// runtime worker thread: Python's handler is installed if none is, and its wake-up fd is
/// a pipe the loop watches. Restores both on drop. Only on the main thread (where Python
/// handles signals).
struct InterruptWakeup<'py> {
    py: Python<'py>,
    event_loop: Bound<'py, PyAny>,
    previous_handler: Option<Bound<'py, PyAny>>,
    previous_fd: Option<Bound<'py, PyAny>>,
    pipe: Option<Pipe>,
}

impl<'py> InterruptWakeup<'py> {
    fn install(py: Python<'py>, event_loop: &Bound<'py, PyAny>) -> PyResult<Self> {
        let mut this = Self {
            py,
            event_loop: event_loop.clone(),
            previous_handler: None,
            previous_fd: None,
            pipe: None,
        };
        let threading = py.import("threading")?;
        let is_main = threading
            .call_method0("current_thread")?
            .is(&threading.call_method0("main_thread")?);
        if !is_main {
            return Ok(this);
        }
        let signal = py.import("signal")?;
        let sigint = signal.getattr("SIGINT")?;
        let current = signal.call_method1("getsignal", (&sigint,))?;
        if current.is(&signal.getattr("SIG_DFL")?) || current.is_none() {
            signal.call_method1("signal", (&sigint, signal.getattr("default_int_handler")?))?;
            this.previous_handler = Some(current);
        }
        let Ok(pipe) = nonblocking_pipe() else {
            return Ok(this);
        };
        let (read, write) = (pipe.read.as_raw_fd(), pipe.write.as_raw_fd());
        this.pipe = Some(pipe);
        let discard = py.import("os")?.getattr("read")?;
        let reader = py
            .import("functools")?
            .call_method1("partial", (discard, read, 4096))?;
        if event_loop
            .call_method1("add_reader", (read, reader))
            .is_ok()
        {
            this.previous_fd = Some(signal.call_method1("set_wakeup_fd", (write,))?);
        }
        Ok(this)
    }
}

impl Drop for InterruptWakeup<'_> {
    fn drop(&mut self) {
        let Ok(signal) = self.py.import("signal") else {
            return;
        };
        if let Some(previous) = self.previous_fd.take() {
            let _ = signal.call_method1("set_wakeup_fd", (previous,));
        }
        if let Some(previous) = self.previous_handler.take() {
            if let Ok(sigint) = signal.getattr("SIGINT") {
                let _ = signal.call_method1("signal", (sigint, previous));
            }
        }
        if let Some(pipe) = self.pipe.take() {
            if !self
                .event_loop
                .call_method0("is_closed")
                .and_then(|closed| closed.is_truthy())
                .unwrap_or(true)
            {
                let _ = self
                    .event_loop
                    .call_method1("remove_reader", (pipe.read.as_raw_fd(),));
            }
            // Both ends close here: they are no longer the wake-up fd nor watched.
            drop(pipe);
        }
    }
}

/// Runs `future` as the main task of a new `trio.run` on this thread and returns its
/// output; see [`generic::run_trio`](crate::generic::run_trio).
pub(crate) fn run_trio<S, F, T>(py: Python<'_>, spawner: S, future: F) -> PyResult<T>
where
    S: Spawner + Clone,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
{
    let output = Arc::new(Mutex::new(None));
    let slot = output.clone();
    let coroutine = crate::coroutine::future_into_py_with(
        py,
        spawner,
        crate::Options::default(),
        async move {
            let value = future.await?;
            *lock(&slot) = Some(value);
            Ok(())
        },
    )?;
    crate::trio::task_function(py, "run")?.call1((coroutine,))?;
    let value = lock(&output).take();
    value.ok_or_else(|| PyRuntimeError::new_err("the trio run ended without the future's output"))
}
