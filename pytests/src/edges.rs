//! What the differential suite (`test_differential.py`) needs: futures and streams whose
//! lifetime a test can watch, to hold the bridge to what a native coroutine or async
//! generator does at the edges (close, throw, cancel, loop close).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use pyo3::prelude::*;

use crate::Runtime;
use crate::homes::options_from;
use crate::poll_fn::PollFn;
use crate::runtime::BoxFuture;

/// The names of the guards alive now (see [`Guard`]).
static ALIVE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Alive from the moment its future is created until its future is dropped: a Rust
/// future's destructor is its `finally`.
struct Guard(String);

impl Guard {
    fn new(name: String) -> Self {
        ALIVE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashSet::new)
            .insert(name.clone());
        Self(name)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(alive) = ALIVE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            alive.remove(&self.0);
        }
    }
}

/// Whether the future or stream made with guard `name` is still alive (not dropped).
#[pyfunction]
fn alive(name: &str) -> bool {
    ALIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|alive| alive.contains(name))
}

/// A future that never completes, alive as `name` until dropped, living on `home`
/// ("auto", "runtime", "loop"; "local" is a `!Send` one on tokio).
#[pyfunction]
#[pyo3(signature = (runtime, name, home = "auto"))]
fn guarded_never<'py>(
    py: Python<'py>,
    runtime: Runtime,
    name: String,
    home: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let guard = Guard::new(name);
    if home == "local" {
        let local = std::rc::Rc::new(guard);
        return pyo3_aio::tokio::local_future_into_py(py, async move {
            let _guard = local;
            std::future::pending::<()>().await;
            Ok(())
        });
    }
    runtime.convert_with(py, options_from(home, "inline")?, async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// Sleeps `seconds` on `runtime` (on `home`; 0: ready at once), alive as `name` until
/// dropped, then returns `value`.
#[pyfunction]
#[pyo3(signature = (runtime, name, seconds, value, home = "auto"))]
fn guarded_sleep<'py>(
    py: Python<'py>,
    runtime: Runtime,
    name: String,
    seconds: f64,
    value: Py<PyAny>,
    home: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let guard = Guard::new(name);
    // 0: ready on the first poll on every runtime (a zero timer is not, on tokio).
    let nap = runtime.delay(seconds);
    runtime.convert_with(py, options_from(home, "inline")?, async move {
        let _guard = guard;
        nap.await;
        Ok(value)
    })
}

/// Rust awaits `awaitable` (into_future) on `runtime`, alive as `name` until dropped.
#[pyfunction]
fn guarded_await_py<'py>(
    py: Python<'py>,
    runtime: Runtime,
    name: String,
    awaitable: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let guard = Guard::new(name);
    let future = pyo3_aio::into_future(awaitable)?;
    runtime.convert_with(py, options_from("auto", "inline")?, async move {
        let _guard = guard;
        future.await
    })
}

/// Binds 127.0.0.1:`port` with tokio and accepts forever: the port stays bound exactly
/// as long as the Rust future lives.
#[pyfunction]
fn listen_forever(py: Python<'_>, port: u16) -> PyResult<Bound<'_, PyAny>> {
    pyo3_aio::tokio::future_into_py(py, async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        loop {
            drop(listener.accept().await?);
        }
        #[allow(unreachable_code)]
        Ok(())
    })
}

/// The integers `0..n`, each after `delay` seconds on `runtime`, alive as `name` until
/// the stream is dropped.
#[pyfunction]
fn slow_stream<'py>(
    py: Python<'py>,
    runtime: Runtime,
    name: String,
    n: u64,
    delay: f64,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.stream_into_py(py, None, delayed(runtime, name, n, delay))
}

fn delayed(
    runtime: Runtime,
    name: String,
    n: u64,
    delay: f64,
) -> impl Stream<Item = PyResult<u64>> + Send + 'static {
    let guard = Guard::new(name);
    let mut next = 0;
    let mut nap: Option<BoxFuture<()>> = None;
    PollFn(move |cx: &mut Context<'_>| {
        let _guard = &guard;
        if next == n {
            return Poll::Ready(None);
        }
        let sleeping = nap.get_or_insert_with(|| runtime.sleep(delay));
        if sleeping.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        nap = None;
        next += 1;
        Poll::Ready(Some(Ok::<_, PyErr>(next - 1)))
    })
}

/// A `!Send` future that makes and awaits a `tokio::time::sleep` inside its poll, which
/// needs tokio's runtime context there, then returns `value`.
#[pyfunction]
fn local_tokio_sleep(py: Python<'_>, seconds: f64, value: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let value = std::rc::Rc::new(value);
    pyo3_aio::tokio::local_future_into_py(py, async move {
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        Ok(Python::attach(|py| value.clone_ref(py)))
    })
}

/// A `!Send` stream of `0..n`, each after a `tokio::time::sleep` made inside its poll.
#[pyfunction]
fn local_tokio_stream(py: Python<'_>, n: u64, delay: f64) -> PyResult<Bound<'_, PyAny>> {
    let marker = std::rc::Rc::new(());
    let mut next = 0;
    let mut nap: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let stream = PollFn(move |cx: &mut Context<'_>| {
        let _local = &marker;
        if next == n {
            return Poll::Ready(None);
        }
        let sleeping =
            nap.get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_secs_f64(delay))));
        if sleeping.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        nap = None;
        next += 1;
        Poll::Ready(Some(Ok::<_, PyErr>(next - 1)))
    });
    pyo3_aio::tokio::local_stream_into_py(py, stream)
}

/// A thread held in place until a test lets it go: `held` while it waits, `released` to let
/// it go on.
struct Hold {
    held: AtomicBool,
    released: AtomicBool,
}

impl Hold {
    const fn new() -> Self {
        Self {
            held: AtomicBool::new(false),
            released: AtomicBool::new(false),
        }
    }

    /// Blocks this thread, held, until released (or `limit` passed).
    fn wait(&self, limit: Option<Duration>) {
        self.held.store(true, Ordering::SeqCst);
        let deadline = limit.map(|limit| std::time::Instant::now() + limit);
        while !self.released.load(Ordering::SeqCst)
            && deadline.is_none_or(|deadline| std::time::Instant::now() < deadline)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.held.store(false, Ordering::SeqCst);
    }

    fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    /// Not held, not released: armed for a new test.
    fn reset(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.released.store(false, Ordering::SeqCst);
    }
}

/// The busy stream's poll on a runtime thread (see [`busy_stream`]).
static BUSY: Hold = Hold::new();

/// A stream alive as `name` until dropped: its first item is ready at once; a later poll on
/// a thread without the GIL (the runtime's filler) sets `busy_polling()` and blocks until
/// `release_busy()`, then returns Pending; on the loop thread it returns Pending at once.
/// It shows what `aclose()` does while the filler is inside the stream's poll. With
/// `held_drop`, its destructor also waits, in `drop_held()`, for `release_drop()` before
/// the guard goes (at most 10 s).
#[pyfunction]
#[pyo3(signature = (runtime, name, held_drop = false))]
fn busy_stream<'py>(
    py: Python<'py>,
    runtime: Runtime,
    name: String,
    held_drop: bool,
) -> PyResult<Bound<'py, PyAny>> {
    reset_busy();
    let guard = Guard::new(name);
    let guard: Box<dyn Send> = if held_drop {
        Box::new(HeldDrop(guard))
    } else {
        Box::new(guard)
    };
    let mut first = true;
    let stream = PollFn(move |_: &mut Context<'_>| {
        let _guard = &guard;
        if std::mem::take(&mut first) {
            return Poll::Ready(Some(Ok::<_, PyErr>(0u64)));
        }
        // SAFETY: a plain query of this thread's state, allowed with or without the GIL.
        if unsafe { pyo3::ffi::PyGILState_Check() } == 1 {
            return Poll::Pending;
        }
        block_until_released();
        Poll::Pending
    });
    runtime.stream_into_py(py, None, stream)
}

/// The destructor of a [`HeldDrop`].
static DROP: Hold = Hold::new();

/// A guard whose destructor waits for `release_drop()` (at most 10 s) before the guard
/// goes: a destructor that takes a while, on whichever thread drops it.
struct HeldDrop(#[allow(dead_code, reason = "held for its own drop")] Guard);

impl Drop for HeldDrop {
    fn drop(&mut self) {
        DROP.wait(Some(Duration::from_secs(10)));
    }
}

/// Whether a `busy_stream(..., held_drop=True)` is inside its destructor, waiting.
#[pyfunction]
fn drop_held() -> bool {
    DROP.is_held()
}

/// Lets the destructor waiting in [`drop_held`] go on.
#[pyfunction]
fn release_drop() {
    DROP.release();
}

/// Arms [`block_until_released`] and [`HeldDrop`] for a new test: not blocked, not released.
pub(crate) fn reset_busy() {
    BUSY.reset();
    DROP.reset();
}

/// Blocks this thread (a poll on a runtime thread) until `release_busy()`, with
/// `busy_polling()` true meanwhile.
pub(crate) fn block_until_released() {
    BUSY.wait(None);
}

/// Whether a poll is blocked in [`block_until_released`] now ([`busy_stream`]'s,
/// `await_py_busy`'s).
#[pyfunction]
fn busy_polling() -> bool {
    BUSY.is_held()
}

/// Lets the poll blocked in [`block_until_released`] return.
#[pyfunction]
fn release_busy() {
    BUSY.release();
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        alive,
        guarded_never,
        guarded_sleep,
        guarded_await_py,
        listen_forever,
        slow_stream,
        local_tokio_sleep,
        local_tokio_stream,
        busy_stream,
        busy_polling,
        release_busy,
        drop_held,
        release_drop,
    );
    Ok(())
}
