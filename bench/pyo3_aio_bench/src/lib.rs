//! `pyo3_aio_bench`: the protocol `bench/driver.py` measures, on pyo3-aio.
//!
//! `bench/par_bench` exposes the same functions on pyo3-async-runtimes, so the driver runs
//! one scenario body against either module. Every function takes the runtime's name first
//! (`"tokio"`, `"async-std"` or `"smol"`), except scenario 1's `ready_<runtime>(v)`, one
//! function per runtime; those that can place a pending Rust future either
//! on the runtime's workers or on the loop thread take `home` (`"default"`, which is
//! `Options::default()`'s `Home::Auto`, `"runtime"` or `"loop-thread"`). What a module cannot do is said by its constants (`HOMES`, `STREAM`,
//! `CONSUME`), so the driver prints "n/a" instead of guessing.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_aio::generic::Spawner;
use pyo3_aio::{Home, Options};

mod floor;

const RUNTIMES: [&str; 3] = ["tokio", "async-std", "smol"];

fn unknown_runtime(name: &str) -> PyErr {
    PyValueError::new_err(format!(
        "unknown runtime '{name}': expected one of {RUNTIMES:?}"
    ))
}

fn parse_home(home: &str) -> PyResult<Home> {
    match home {
        "default" => Ok(Home::default()),
        "runtime" => Ok(Home::Runtime),
        "loop-thread" => Ok(Home::LoopThread),
        other => Err(PyValueError::new_err(format!(
            "unknown home '{other}': expected 'default', 'runtime' or 'loop-thread'"
        ))),
    }
}

/// `future_into_py_with` on the named runtime.
fn convert<'py, F, T>(
    py: Python<'py>,
    runtime: &str,
    home: Home,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let options = Options::default().home(home);
    match runtime {
        "tokio" => pyo3_aio::tokio::future_into_py_with(py, options, future),
        "async-std" => pyo3_aio::async_std::future_into_py_with(py, options, future),
        "smol" => pyo3_aio::smol::future_into_py_with(py, options, future),
        other => Err(unknown_runtime(other)),
    }
}

/// A future that is pending once (waking itself) and then ready: on pyo3-aio's inline
/// first poll it is pending, so it moves to the runtime, whose worker completes it.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Returns `value` at once on tokio: ready on the first poll.
///
/// Scenario 1 has one such function per runtime (no runtime-name argument), so that an await
/// costs what a user's own `#[pyfunction]` would: the conversion, without matching a string.
#[pyfunction]
fn ready_tokio(py: Python<'_>, value: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let options = Options::default().home(Home::Runtime);
    pyo3_aio::tokio::future_into_py_with(py, options, async move { Ok(value) })
}

/// [`ready_tokio`] on async-std.
#[pyfunction]
fn ready_async_std(py: Python<'_>, value: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let options = Options::default().home(Home::Runtime);
    pyo3_aio::async_std::future_into_py_with(py, options, async move { Ok(value) })
}

/// [`ready_tokio`] on smol.
#[pyfunction]
fn ready_smol(py: Python<'_>, value: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let options = Options::default().home(Home::Runtime);
    pyo3_aio::smol::future_into_py_with(py, options, async move { Ok(value) })
}

/// Returns `value` at once, as a PyO3 native coroutine (`experimental-async`): what PyO3
/// itself offers for a ready `async fn`, for scenario 1's comparison.
#[pyfunction]
async fn native_ready(value: Py<PyAny>) -> Py<PyAny> {
    value
}

/// Returns `value` after one round trip to the runtime: pending once, then completed by a
/// worker thread.
#[pyfunction]
fn hop<'py>(py: Python<'py>, runtime: &str, value: Py<PyAny>) -> PyResult<Bound<'py, PyAny>> {
    convert(py, runtime, Home::Runtime, async move {
        YieldOnce(false).await;
        Ok(value)
    })
}

/// Sleeps `ms` milliseconds on the runtime's own timer.
#[pyfunction]
fn sleep<'py>(py: Python<'py>, runtime: &str, ms: f64) -> PyResult<Bound<'py, PyAny>> {
    let duration = Duration::from_secs_f64(ms / 1000.0);
    match runtime {
        // Created at the first poll, which pyo3-aio runs inside tokio's context.
        "tokio" => convert(py, runtime, Home::Runtime, async move {
            tokio::time::sleep(duration).await;
            Ok(())
        }),
        "async-std" => convert(py, runtime, Home::Runtime, async move {
            async_std::task::sleep(duration).await;
            Ok(())
        }),
        "smol" => convert(py, runtime, Home::Runtime, async move {
            smol::Timer::after(duration).await;
            Ok(())
        }),
        other => Err(unknown_runtime(other)),
    }
}

/// `block_on` of `future` on `runtime`: from synchronous code, result returned.
fn block<F, T>(py: Python<'_>, runtime: &str, future: F) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
{
    match runtime {
        "tokio" => pyo3_aio::tokio::block_on(py, future),
        "async-std" => pyo3_aio::async_std::block_on(py, future),
        "smol" => pyo3_aio::smol::block_on(py, future),
        other => Err(unknown_runtime(other)),
    }
}

/// A blocking call of a future that is ready at once.
#[pyfunction]
fn block_ready(py: Python<'_>, runtime: &str, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
    block(py, runtime, async move { Ok(value) })
}

/// A blocking call of the runtime's own `ms` millisecond sleep.
#[pyfunction]
fn block_sleep(py: Python<'_>, runtime: &str, ms: f64) -> PyResult<()> {
    let duration = Duration::from_secs_f64(ms / 1000.0);
    match runtime {
        "tokio" => block(py, runtime, async move {
            tokio::time::sleep(duration).await;
            Ok(())
        }),
        "async-std" => block(py, runtime, async move {
            async_std::task::sleep(duration).await;
            Ok(())
        }),
        _ => block(py, runtime, async move {
            smol::Timer::after(duration).await;
            Ok(())
        }),
    }
}

static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Counts its own drop in [`dropped`].
struct CountDrop;

impl Drop for CountDrop {
    fn drop(&mut self) {
        // Relaxed: the count is read by the driver after it has seen the loop settle, not
        // used to order any other memory.
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A future that never completes; its drop is counted by `dropped()`.
#[pyfunction]
fn never<'py>(py: Python<'py>, runtime: &str) -> PyResult<Bound<'py, PyAny>> {
    let guard = CountDrop;
    convert(py, runtime, Home::Runtime, async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// How many `never()` futures were dropped so far.
#[pyfunction]
fn dropped() -> usize {
    DROPPED.load(Ordering::Relaxed)
}

/// Rust awaits `factory()` (through `into_future`) `n` times in a row; returns `n`.
#[pyfunction]
#[pyo3(signature = (runtime, factory, n, home = "default"))]
fn await_many<'py>(
    py: Python<'py>,
    runtime: &str,
    factory: Py<PyAny>,
    n: usize,
    home: &str,
) -> PyResult<Bound<'py, PyAny>> {
    convert(py, runtime, parse_home(home)?, async move {
        for _ in 0..n {
            let future = Python::attach(|py| pyo3_aio::into_future(factory.bind(py).call0()?))?;
            future.await?;
        }
        Ok(n)
    })
}

/// The integers `0..n` as a Rust stream.
struct Counting {
    next: usize,
    end: usize,
}

impl Stream for Counting {
    type Item = PyResult<usize>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.next == self.end {
            return Poll::Ready(None);
        }
        let item = self.next;
        self.next += 1;
        Poll::Ready(Some(Ok(item)))
    }
}

/// The spawner pyo3-aio uses for the named runtime, for [`Hop`].
fn spawner(name: &str) -> PyResult<Arc<dyn Spawner>> {
    match name {
        "tokio" => Ok(Arc::new(pyo3_aio::tokio::TokioSpawner::global())),
        "async-std" => Ok(Arc::new(pyo3_aio::async_std::AsyncStdSpawner)),
        "smol" => Ok(Arc::new(pyo3_aio::smol::SmolSpawner::global())),
        other => Err(unknown_runtime(other)),
    }
}

/// A future that is done once a task spawned on a runtime has run: one hop to one of its
/// workers and back, on the spawner pyo3-aio itself uses for that runtime.
struct Hop(Arc<Mutex<HopState>>);

#[derive(Default)]
struct HopState {
    done: bool,
    waker: Option<Waker>,
}

impl Hop {
    fn start(spawner: &dyn Spawner) -> Self {
        let state = Arc::new(Mutex::new(HopState::default()));
        let worker = state.clone();
        let spawned = spawner.spawn(Box::pin(async move {
            let waker = {
                let mut state = worker.lock().unwrap_or_else(|e| e.into_inner());
                state.done = true;
                state.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }));
        // A runtime that refuses (shut down) leaves the hop done at once.
        if spawned.is_err() {
            state.lock().unwrap_or_else(|e| e.into_inner()).done = true;
        }
        Self(state)
    }
}

impl Future for Hop {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if state.done {
            return Poll::Ready(());
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The integers `0..n` as a Rust stream in which every item waits for a [`Hop`] first. The
/// item is not there yet when `__anext__` polls the stream inline; it is once a worker ran
/// the hop's task and that worker's wake-up reached the loop the usual way (through the
/// pump for a Send stream, through the loop's queue for a local one). So the consumer
/// suspends whenever it has caught up with the stream, about once per item.
struct CountingAfterHops {
    next: usize,
    end: usize,
    spawner: Arc<dyn Spawner>,
    /// The hop the next item waits for, once started.
    hop: Option<Hop>,
}

impl Stream for CountingAfterHops {
    type Item = PyResult<usize>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.next == self.end {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let hop = this.hop.get_or_insert_with(|| Hop::start(&*this.spawner));
        if Pin::new(hop).poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.hop = None;
        let item = self.next;
        self.next += 1;
        Poll::Ready(Some(Ok(item)))
    }
}

/// A Rust stream of the integers `0..n` as a Python async iterator (`async for`).
#[pyfunction]
#[pyo3(signature = (runtime, n, home = "default"))]
fn stream<'py>(
    py: Python<'py>,
    runtime: &str,
    n: usize,
    home: &str,
) -> PyResult<Bound<'py, PyAny>> {
    into_async_iterator(py, runtime, home, Counting { next: 0, end: n })
}

/// As `stream`, but every item waits for a hop to a worker of the runtime first (see
/// `CountingAfterHops`).
#[pyfunction]
#[pyo3(signature = (runtime, n, home = "default"))]
fn pending_stream<'py>(
    py: Python<'py>,
    runtime: &str,
    n: usize,
    home: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let items = CountingAfterHops {
        next: 0,
        end: n,
        spawner: spawner(runtime)?,
        hop: None,
    };
    into_async_iterator(py, runtime, home, items)
}

/// `items` as a Python async iterator: `local_stream_into_py` for `home="loop-thread"`, the
/// named runtime's `stream_into_py` otherwise.
fn into_async_iterator<'py, S>(
    py: Python<'py>,
    runtime: &str,
    home: &str,
    items: S,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Stream<Item = PyResult<usize>> + Send + 'static,
{
    match (parse_home(home)?, runtime) {
        (Home::LoopThread, "tokio" | "async-std" | "smol") => {
            pyo3_aio::generic::local_stream_into_py(py, items)
        }
        (_, "tokio") => pyo3_aio::tokio::stream_into_py(py, items),
        (_, "async-std") => pyo3_aio::async_std::stream_into_py(py, items),
        (_, "smol") => pyo3_aio::smol::stream_into_py(py, items),
        (_, other) => Err(unknown_runtime(other)),
    }
}

/// Rust consumes the Python async iterable `aiter` (through `into_stream`); returns how many
/// items it saw.
#[pyfunction]
#[pyo3(signature = (runtime, aiter, home = "default"))]
fn consume<'py>(
    py: Python<'py>,
    runtime: &str,
    aiter: Bound<'py, PyAny>,
    home: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let home = parse_home(home)?;
    let mut items = pyo3_aio::into_stream(aiter)?;
    convert(py, runtime, home, async move {
        let mut count = 0usize;
        while let Some(item) = std::future::poll_fn(|cx| Pin::new(&mut items).poll_next(cx)).await {
            item?;
            count += 1;
        }
        Ok(count)
    })
}

/// The driver's protocol on pyo3-aio.
#[pymodule]
fn pyo3_aio_bench(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NAME", "pyo3-aio")?;
    m.add("RUNTIMES", RUNTIMES.to_vec())?;
    m.add("HOMES", vec!["default", "runtime", "loop-thread"])?;
    m.add("STREAM", true)?;
    m.add("CONSUME", true)?;
    m.add_function(wrap_pyfunction!(ready_tokio, m)?)?;
    m.add_function(wrap_pyfunction!(ready_async_std, m)?)?;
    m.add_function(wrap_pyfunction!(ready_smol, m)?)?;
    m.add_function(wrap_pyfunction!(native_ready, m)?)?;
    m.add_function(wrap_pyfunction!(floor::floor, m)?)?;
    m.add_function(wrap_pyfunction!(hop, m)?)?;
    m.add_function(wrap_pyfunction!(sleep, m)?)?;
    m.add_function(wrap_pyfunction!(block_ready, m)?)?;
    m.add_function(wrap_pyfunction!(block_sleep, m)?)?;
    m.add_function(wrap_pyfunction!(never, m)?)?;
    m.add_function(wrap_pyfunction!(dropped, m)?)?;
    m.add_function(wrap_pyfunction!(await_many, m)?)?;
    m.add_function(wrap_pyfunction!(stream, m)?)?;
    m.add_function(wrap_pyfunction!(pending_stream, m)?)?;
    m.add_function(wrap_pyfunction!(consume, m)?)?;
    Ok(())
}
