//! Helpers for the lifecycle tests: runtimes the test owns, shutdown, fork.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3_aio::FirstPoll;
use pyo3_aio::generic;
use pyo3_aio::smol::SmolSpawner;
use pyo3_aio::tokio::TokioSpawner;

use crate::Runtime;

/// Shuts the global runtime of `runtime` down; returns what happened ("Stopped", ...).
#[pyfunction]
fn shutdown(py: Python<'_>, runtime: Runtime, timeout: f64) -> PyResult<String> {
    runtime.shutdown(py, Duration::from_secs_f64(timeout))
}

/// A runtime a test owns: the runtime `R`, the sender `S` whose drop stops the thread
/// that drives it, and that thread.
struct Owned<R, S> {
    runtime: Mutex<Option<R>>,
    stop: Mutex<Option<S>>,
    driver: Mutex<Option<JoinHandle<()>>>,
}

impl<R: Send, S: Send> Owned<R, S> {
    fn new(runtime: R, stop: S, driver: Option<JoinHandle<()>>) -> Self {
        Self {
            runtime: Mutex::new(Some(runtime)),
            stop: Mutex::new(Some(stop)),
            driver: Mutex::new(driver),
        }
    }

    /// With the GIL released: stops the driving thread, waits for it, then hands the
    /// runtime to `dispose` (None when it was stopped before).
    fn stop(&self, py: Python<'_>, dispose: impl FnOnce(Option<R>) + Send) {
        let runtime = self.runtime.lock().unwrap().take();
        let stop = self.stop.lock().unwrap().take();
        let driver = self.driver.lock().unwrap().take();
        py.detach(|| {
            drop(stop);
            if let Some(driver) = driver {
                let _ = driver.join();
            }
            dispose(runtime);
        })
    }
}

/// Awaits `nap`, then returns `(value, name of the thread that finished it)`.
async fn finished_by(
    nap: impl Future<Output = ()>,
    value: Py<PyAny>,
) -> PyResult<(Py<PyAny>, String)> {
    nap.await;
    let thread = std::thread::current().name().unwrap_or("?").to_owned();
    Ok((value, thread))
}

/// A tokio runtime the test owns: multi-thread with 3 workers named `name`, or
/// current-thread, driven by a thread named `name`.
#[pyclass(frozen)]
struct OwnTokio {
    owned: Owned<Arc<tokio::runtime::Runtime>, tokio::sync::oneshot::Sender<()>>,
    spawner: TokioSpawner,
}

#[pymethods]
impl OwnTokio {
    #[new]
    fn new(name: &str, current_thread: bool) -> PyResult<Self> {
        let mut builder = if current_thread {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(3).thread_name(name);
            builder
        };
        let runtime = Arc::new(
            builder
                .enable_all()
                .build()
                .map_err(|error| PyRuntimeError::new_err(error.to_string()))?,
        );
        let spawner = TokioSpawner::from_handle(runtime.handle().clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let driver = current_thread.then(|| {
            let runtime = runtime.clone();
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || drop(runtime.block_on(stopped)))
                .expect("a thread to drive the runtime")
        });
        Ok(Self {
            owned: Owned::new(runtime, stop, driver),
            spawner,
        })
    }

    /// Sleeps on this runtime; returns `(value, name of the thread that finished it)`.
    fn sleep<'py>(
        &self,
        py: Python<'py>,
        seconds: f64,
        value: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let nap = async move { tokio::time::sleep(Duration::from_secs_f64(seconds)).await };
        generic::future_into_py(
            py,
            self.spawner.clone(),
            named_here!(finished_by(nap, value)),
        )
    }

    /// A `!Send` future on the loop thread that sleeps on this runtime; returns the number
    /// of workers of the runtime it found itself in.
    fn local_sleep<'py>(&self, py: Python<'py>, seconds: f64) -> PyResult<Bound<'py, PyAny>> {
        let marker = std::rc::Rc::new(());
        generic::local_future_into_py_in(py, self.spawner.clone(), FirstPoll::Inline, async move {
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            drop(marker);
            Ok(tokio::runtime::Handle::current().metrics().num_workers())
        })
    }

    /// Stops the runtime (dropping its tasks), waiting at most `timeout`.
    fn shutdown(&self, py: Python<'_>, timeout: f64) {
        self.owned.stop(py, |runtime| {
            if let Some(runtime) = runtime.and_then(|runtime| Arc::try_unwrap(runtime).ok()) {
                runtime.shutdown_timeout(Duration::from_secs_f64(timeout));
            }
        })
    }
}

/// A smol executor the test owns, run by one thread named `name`.
#[pyclass(frozen)]
struct OwnSmol {
    owned: Owned<Arc<smol::Executor<'static>>, smol::channel::Sender<()>>,
    spawner: SmolSpawner,
}

#[pymethods]
impl OwnSmol {
    #[new]
    fn new(name: &str) -> Self {
        let executor = Arc::new(smol::Executor::new());
        let spawner = SmolSpawner::from_executor(&executor);
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let run = executor.clone();
        let runner = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _ = smol::block_on(run.run(stopped.recv()));
            })
            .expect("a thread to run the executor");
        Self {
            owned: Owned::new(executor, stop, Some(runner)),
            spawner,
        }
    }

    /// Sleeps on this executor; returns `(value, name of the thread that finished it)`.
    fn sleep<'py>(
        &self,
        py: Python<'py>,
        seconds: f64,
        value: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let nap = async move {
            smol::Timer::after(Duration::from_secs_f64(seconds)).await;
        };
        generic::future_into_py(
            py,
            self.spawner.clone(),
            named_here!(finished_by(nap, value)),
        )
    }

    /// Stops the runner and drops the executor (and its tasks).
    fn drop_executor(&self, py: Python<'_>) {
        self.owned.stop(py, drop)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(m, shutdown);
    m.add_class::<OwnTokio>()?;
    m.add_class::<OwnSmol>()?;
    Ok(())
}
