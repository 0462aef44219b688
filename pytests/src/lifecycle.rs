//! Helpers for the lifecycle tests: runtimes the test owns, shutdown, fork.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyNotImplementedError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3_aio::FirstPoll;
use pyo3_aio::generic;
use pyo3_aio::smol::SmolSpawner;
use pyo3_aio::tokio::TokioSpawner;

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

/// Shuts the global runtime of `runtime` down; returns what happened ("Stopped", ...).
#[pyfunction]
fn shutdown(py: Python<'_>, runtime: &str, timeout: f64) -> PyResult<String> {
    let timeout = Duration::from_secs_f64(timeout);
    match runtime {
        "tokio" => Ok(format!(
            "{:?}",
            py.detach(|| pyo3_aio::tokio::shutdown(timeout))
        )),
        "smol" => Ok(format!(
            "{:?}",
            py.detach(|| pyo3_aio::smol::shutdown(timeout))
        )),
        other => Err(PyNotImplementedError::new_err(format!(
            "the {other} runtime cannot be shut down"
        ))),
    }
}

/// A tokio runtime the test owns: multi-thread with 3 workers named `name`, or
/// current-thread, driven by a thread named `name`.
#[pyclass(frozen)]
struct OwnTokio {
    runtime: Mutex<Option<Arc<tokio::runtime::Runtime>>>,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    driver: Mutex<Option<std::thread::JoinHandle<()>>>,
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
            runtime: Mutex::new(Some(runtime)),
            stop: Mutex::new(Some(stop)),
            driver: Mutex::new(driver),
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
        generic::future_into_py(py, self.spawner.clone(), async move {
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            Ok((value, thread_name()))
        })
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
        let runtime = self.runtime.lock().unwrap().take();
        let stop = self.stop.lock().unwrap().take();
        let driver = self.driver.lock().unwrap().take();
        py.detach(|| {
            drop(stop);
            if let Some(driver) = driver {
                let _ = driver.join();
            }
            if let Some(runtime) = runtime.and_then(|runtime| Arc::try_unwrap(runtime).ok()) {
                runtime.shutdown_timeout(Duration::from_secs_f64(timeout));
            }
        })
    }
}

/// A smol executor the test owns, run by one thread named `name`.
#[pyclass(frozen)]
struct OwnSmol {
    executor: Mutex<Option<Arc<smol::Executor<'static>>>>,
    stop: Mutex<Option<smol::channel::Sender<()>>>,
    runner: Mutex<Option<std::thread::JoinHandle<()>>>,
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
            executor: Mutex::new(Some(executor)),
            stop: Mutex::new(Some(stop)),
            runner: Mutex::new(Some(runner)),
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
        generic::future_into_py(py, self.spawner.clone(), async move {
            smol::Timer::after(Duration::from_secs_f64(seconds)).await;
            Ok((value, thread_name()))
        })
    }

    /// Stops the runner and drops the executor (and its tasks).
    fn drop_executor(&self, py: Python<'_>) {
        let stop = self.stop.lock().unwrap().take();
        let runner = self.runner.lock().unwrap().take();
        let executor = self.executor.lock().unwrap().take();
        py.detach(|| {
            drop(stop);
            if let Some(runner) = runner {
                let _ = runner.join();
            }
            drop(executor);
        })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_class::<OwnTokio>()?;
    m.add_class::<OwnSmol>()?;
    Ok(())
}
