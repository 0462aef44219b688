//! `custom_executor_example`: async Rust functions that run on minipool, a custom executor,
//! awaited from Python through [`pyo3_aio::generic`].
//!
//! minipool knows nothing of Python: it implements `pyo3_aio_core::spawn::Spawner`, and
//! this module hands a `minipool::Executor` to the generic bridge wherever a runtime
//! module (`pyo3_aio::tokio`) would fill in its own. Each Python `Executor` object owns its
//! thread pool, so tests make one each and shut it down.
//!
//! ```python
//! import asyncio
//! from custom_executor_example import Executor
//!
//! executor = Executor(workers=2)
//! asyncio.run(executor.sleep(0.1))
//! executor.shutdown()
//! ```

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use pyo3::exceptions::{PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3_aio::generic;

/// A minipool thread pool, as a Python object: its methods return coroutines and async
/// iterators that run on it.
#[pyclass(frozen, name = "Executor", module = "custom_executor_example")]
struct PyExecutor {
    executor: minipool::Executor,
}

#[pymethods]
impl PyExecutor {
    /// Starts `workers` worker threads and a timer thread.
    #[new]
    #[pyo3(signature = (workers = 2))]
    fn new(workers: usize) -> PyResult<Self> {
        let executor = minipool::Builder::new().workers(workers).build()?;
        Ok(Self { executor })
    }

    /// The name the executor gives the bridge (`"minipool"`): errors say it.
    #[getter]
    fn name(&self) -> &'static str {
        self.executor.name()
    }

    /// Sleeps `seconds` on minipool's timer, then returns `result`.
    #[pyo3(signature = (seconds, result = None))]
    fn sleep<'py>(
        &self,
        py: Python<'py>,
        seconds: f64,
        result: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let duration = duration_from(seconds)?;
        generic::future_into_py(py, self.executor.clone(), async move {
            minipool::sleep(duration).await;
            Ok(result)
        })
    }

    /// The sum of the squares of `0..n`, computed on a worker (the computation yields
    /// first, so it never runs inline on the event loop's thread).
    fn sum_of_squares<'py>(&self, py: Python<'py>, n: u64) -> PyResult<Bound<'py, PyAny>> {
        generic::future_into_py(py, self.executor.clone(), async move {
            minipool::yield_now().await;
            Ok((0..u128::from(n)).map(|i| i * i).sum::<u128>())
        })
    }

    /// The name of the thread that runs the future after its first yield: a worker's.
    fn thread_name<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        generic::future_into_py(py, self.executor.clone(), async move {
            minipool::yield_now().await;
            Ok(std::thread::current().name().map(str::to_owned))
        })
    }

    /// Raises `ValueError(message)` from a worker.
    fn fail<'py>(&self, py: Python<'py>, message: String) -> PyResult<Bound<'py, PyAny>> {
        generic::future_into_py(py, self.executor.clone(), async move {
            minipool::yield_now().await;
            Err::<(), _>(PyValueError::new_err(message))
        })
    }

    /// Panics with `message` on a worker: the awaiting side gets `RustPanic`.
    fn panic<'py>(&self, py: Python<'py>, message: String) -> PyResult<Bound<'py, PyAny>> {
        generic::future_into_py(py, self.executor.clone(), async move {
            minipool::yield_now().await;
            if !message.is_empty() {
                panic!("{message}");
            }
            Ok(())
        })
    }

    /// An async iterator of `0..n`, one number every `interval` seconds, produced on
    /// minipool. Closing it early drops the Rust stream and sets `probe.dropped`.
    #[pyo3(signature = (n, interval, probe = None))]
    fn count<'py>(
        &self,
        py: Python<'py>,
        n: u64,
        interval: f64,
        probe: Option<Bound<'py, DropProbe>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let stream = Count {
            next: 0,
            end: n,
            interval: duration_from(interval)?,
            sleep: None,
            _probe: probe.map(|probe| probe.get().guard()),
        };
        generic::stream_into_py(py, self.executor.clone(), stream)
    }

    /// Sleeps `delay` seconds on minipool, then awaits `awaitable` (a Python coroutine,
    /// task or future) from Rust and returns its result. The awaitable is scheduled on the
    /// running loop at once, as `asyncio.ensure_future` would.
    #[pyo3(signature = (awaitable, delay = 0.0))]
    fn await_python<'py>(
        &self,
        py: Python<'py>,
        awaitable: Bound<'py, PyAny>,
        delay: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let delay = duration_from(delay)?;
        let python = pyo3_aio::into_future(awaitable)?;
        generic::future_into_py(py, self.executor.clone(), async move {
            minipool::sleep(delay).await;
            python.await
        })
    }

    /// Awaits `awaitable` from Rust for at most `seconds`, with minipool's `timeout`. When
    /// time runs out the Rust future of the awaitable is dropped, which cancels the Python
    /// task, and `TimeoutError` is raised.
    fn wait_for<'py>(
        &self,
        py: Python<'py>,
        awaitable: Bound<'py, PyAny>,
        seconds: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = duration_from(seconds)?;
        let python = pyo3_aio::into_future(awaitable)?;
        generic::future_into_py(py, self.executor.clone(), async move {
            match minipool::timeout(limit, python).await {
                Ok(result) => result,
                Err(elapsed) => Err(PyTimeoutError::new_err(format!(
                    "{elapsed} after {seconds}s; the Python task was cancelled"
                ))),
            }
        })
    }

    /// A future that never completes; dropping it sets `probe.dropped`.
    fn pending_forever<'py>(
        &self,
        py: Python<'py>,
        probe: Bound<'py, DropProbe>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let guard = probe.get().guard();
        generic::future_into_py(py, self.executor.clone(), async move {
            let _guard = guard;
            std::future::pending::<PyResult<()>>().await
        })
    }

    /// Stops the executor (see `minipool::Executor::shutdown`): waits up to `timeout`
    /// seconds for the workers and drops every pending task. Conversions still waiting
    /// raise `RuntimeError` naming the executor; new ones cannot start. Returns
    /// `{"dropped": ..., "busy_workers": ...}`.
    #[pyo3(signature = (timeout = 1.0))]
    fn shutdown(&self, py: Python<'_>, timeout: f64) -> PyResult<HashMap<&'static str, usize>> {
        let timeout = duration_from(timeout)?;
        // Without the GIL: a worker may need it to finish its poll, and the dropped futures
        // release Python objects.
        let report = py.detach(|| self.executor.shutdown(timeout));
        Ok(HashMap::from([
            ("dropped", report.dropped),
            ("busy_workers", report.busy_workers),
        ]))
    }

    fn __repr__(&self) -> String {
        format!("<Executor {:?}>", self.executor.name())
    }
}

/// Tells Python when a Rust value was dropped: hand it to `pending_forever` or `count`,
/// then watch `dropped`.
#[pyclass(frozen, module = "custom_executor_example")]
#[derive(Default)]
struct DropProbe {
    dropped: Arc<AtomicBool>,
}

#[pymethods]
impl DropProbe {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Whether the Rust value holding this probe has been dropped.
    #[getter]
    fn dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}

impl DropProbe {
    fn guard(&self) -> DropGuard {
        DropGuard(self.dropped.clone())
    }
}

/// Sets its probe's flag when dropped (no GIL needed, so any thread may drop it).
struct DropGuard(Arc<AtomicBool>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// `0..end`, one number per `interval`, sleeping on minipool's timer.
struct Count {
    next: u64,
    end: u64,
    interval: Duration,
    sleep: Option<minipool::Sleep>,
    _probe: Option<DropGuard>,
}

impl futures_core::Stream for Count {
    type Item = PyResult<u64>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.next == self.end {
            return Poll::Ready(None);
        }
        let interval = self.interval;
        let sleep = self.sleep.get_or_insert_with(|| minipool::sleep(interval));
        if Pin::new(sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.sleep = None;
        self.next += 1;
        Poll::Ready(Some(Ok(self.next - 1)))
    }
}

fn duration_from(seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "expected a finite, non-negative number of seconds, got {seconds}"
        ))
    })
}

#[pymodule]
fn custom_executor_example(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyExecutor>()?;
    m.add_class::<DropProbe>()?;
    m.add("RustPanic", m.py().get_type::<pyo3_aio::RustPanic>())?;
    Ok(())
}
