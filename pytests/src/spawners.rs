//! Spawners of the tests' own, through `pyo3_aio::generic`: one that counts spawns, a
//! thread per task, and runtimes that drop or refuse what they are handed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3_aio::generic::{BoxFuture, SpawnError, Spawner};

use crate::Runtime;
use crate::poll_fn::{after, yield_now};
use crate::probes::never_counted;

static SPAWNS: AtomicUsize = AtomicUsize::new(0);

/// Wraps a runtime's spawner and counts the futures handed to it.
#[derive(Clone)]
struct Counting<S>(S);

impl<S: Spawner> Spawner for Counting<S> {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        SPAWNS.fetch_add(1, Ordering::SeqCst);
        self.0.spawn(future)
    }
    fn enter(&self, f: &mut dyn FnMut()) {
        self.0.enter(f)
    }
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn usable(&self) -> Result<(), SpawnError> {
        self.0.usable()
    }
}

/// `ready` through a spawner that counts spawns (see `spawns()`).
#[pyfunction]
fn counted_ready<'py>(
    py: Python<'py>,
    runtime: Runtime,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let spawner = Counting(runtime.spawner());
    pyo3_aio::generic::future_into_py(py, spawner, async move { Ok(value) })
}

/// `sleep` through a spawner that counts spawns (see `spawns()`). It yields once first, so
/// its inline first poll is pending even when a loaded machine polls it after the sleep's
/// deadline (a future ready on that poll is never spawned).
#[pyfunction]
fn counted_sleep<'py>(
    py: Python<'py>,
    runtime: Runtime,
    seconds: f64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let spawner = Counting(runtime.spawner());
    let nap = runtime.sleep(seconds);
    let future = async move {
        yield_now().await;
        after(nap, move || Ok(value)).await
    };
    pyo3_aio::generic::future_into_py(py, spawner, named_here!(future))
}

/// How many futures the counting spawner was handed so far.
#[pyfunction]
fn spawns() -> usize {
    SPAWNS.load(Ordering::SeqCst)
}

static DRIVEN: AtomicUsize = AtomicUsize::new(0);

/// Runs each future on a fresh thread of its own (which never touches Python), and counts
/// in `driven()` the futures whose whole run, completion path included, has returned.
#[derive(Clone)]
struct ThreadPerTask;

impl Spawner for ThreadPerTask {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        std::thread::spawn(move || {
            smol::block_on(future);
            DRIVEN.fetch_add(1, Ordering::SeqCst);
        });
        Ok(())
    }
    fn name(&self) -> &'static str {
        "thread-per-task"
    }
}

/// Sleeps `seconds` on a thread of its own, then returns `value` (a Rust string, so nothing
/// on that thread needs Python).
#[pyfunction]
fn thread_sleep(py: Python<'_>, seconds: f64, value: String) -> PyResult<Bound<'_, PyAny>> {
    let duration = Duration::from_secs_f64(seconds);
    pyo3_aio::generic::future_into_py(py, ThreadPerTask, async move {
        smol::Timer::after(duration).await;
        Ok(value)
    })
}

/// Never completes, on a thread of its own; counts its drop in `dropped()`.
#[pyfunction]
fn thread_never(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    pyo3_aio::generic::future_into_py(py, ThreadPerTask, named_here!(never_counted()))
}

/// How many futures run by `thread_sleep` / `thread_never` have returned from their thread.
#[pyfunction]
fn driven() -> usize {
    DRIVEN.load(Ordering::SeqCst)
}

/// Holds the GIL (never releasing it) until `driven()` reaches `target`; returns whether it
/// did before `timeout` seconds passed. A completion path that needed the GIL would stall
/// here until the timeout.
#[pyfunction]
fn hold_gil_until_driven(_py: Python<'_>, target: usize, timeout: f64) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    while DRIVEN.load(Ordering::SeqCst) < target {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// A runtime that drops every future it is handed, unfinished, shortly after (as a runtime
/// shutting down does).
#[derive(Clone)]
struct DropsTasks;

impl Spawner for DropsTasks {
    fn spawn(&self, future: BoxFuture) -> Result<(), SpawnError> {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            drop(future);
        });
        Ok(())
    }
    fn name(&self) -> &'static str {
        "drops-tasks"
    }
}

/// A runtime that refuses every future.
#[derive(Clone)]
struct Refuses;

impl Spawner for Refuses {
    fn spawn(&self, _future: BoxFuture) -> Result<(), SpawnError> {
        Err(SpawnError::new("refuses", "it has shut down"))
    }
    fn name(&self) -> &'static str {
        "refuses"
    }
}

/// A pending future handed to a runtime that drops it unfinished; counts its drop.
#[pyfunction]
fn dropped_by_runtime(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    pyo3_aio::generic::future_into_py(py, DropsTasks, named_here!(never_counted()))
}

/// A pending future handed to a runtime that refuses it.
#[pyfunction]
fn refused_by_runtime(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    pyo3_aio::generic::future_into_py(py, Refuses, async move {
        std::future::pending::<()>().await;
        Ok(())
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        counted_ready,
        counted_sleep,
        spawns,
        thread_sleep,
        thread_never,
        driven,
        hold_gil_until_driven,
        dropped_by_runtime,
        refused_by_runtime,
    );
    Ok(())
}
