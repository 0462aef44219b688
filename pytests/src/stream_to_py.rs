//! Rust streams iterated from Python (`stream_into_py`, `local_stream_into_py`), and the
//! `StreamProbe` that watches one.

use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_aio::StreamOptions;

use crate::Runtime;
use crate::poll_fn::{PollFn, counting};
use crate::probes::current_loop;
use crate::runtime::BoxFuture;

/// The options of `stream_into_py_with` for `capacity`; None (for `stream_into_py`)
/// without one.
pub(crate) fn with_capacity(capacity: Option<usize>) -> Option<StreamOptions> {
    capacity.map(|capacity| StreamOptions::default().capacity(capacity))
}

/// What a test stream records: how often it was polled, how many items it produced, and
/// whether it was dropped.
#[derive(Default)]
struct ProbeState {
    polls: AtomicUsize,
    produced: AtomicUsize,
    dropped: AtomicBool,
}

/// Watches one test stream from Python.
#[pyclass(frozen, name = "StreamProbe", module = "pyo3_aio_tests")]
struct StreamProbe {
    state: Arc<ProbeState>,
}

#[pymethods]
impl StreamProbe {
    /// How many times the Rust stream's `poll_next` was called so far.
    fn polls(&self) -> usize {
        self.state.polls.load(Ordering::SeqCst)
    }

    /// How many items the Rust stream has produced so far (handed to the bridge).
    fn produced(&self) -> usize {
        self.state.produced.load(Ordering::SeqCst)
    }

    /// Whether the Rust stream has been dropped.
    fn dropped(&self) -> bool {
        self.state.dropped.load(Ordering::SeqCst)
    }
}

/// The numbers `0..end` (endless without `end`), with the behaviours the tests need: an
/// `Err` item instead of the number `error_at`, a panic instead of the number `panic_at`,
/// `Pending` forever (never waking) instead of the number `stall_at`, and a sleep of
/// `delay` on the runtime's timer before each number.
struct TestStream {
    next: u64,
    end: Option<u64>,
    error_at: Option<u64>,
    error: Option<Py<PyAny>>,
    panic_at: Option<u64>,
    stall_at: Option<u64>,
    delay: Option<(Runtime, Duration)>,
    nap: Option<BoxFuture<()>>,
    state: Arc<ProbeState>,
}

impl Stream for TestStream {
    type Item = PyResult<u64>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.state.polls.fetch_add(1, Ordering::SeqCst);
        let i = this.next;
        if this.end == Some(i) {
            return Poll::Ready(None);
        }
        if this.stall_at == Some(i) {
            return Poll::Pending;
        }
        if let Some((runtime, delay)) = this.delay {
            let nap = this.nap.get_or_insert_with(|| runtime.timer(delay));
            if nap.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.nap = None;
        }
        if this.panic_at == Some(i) {
            panic!("the stream panicked at item {i}");
        }
        this.next += 1;
        this.state.produced.fetch_add(1, Ordering::SeqCst);
        if this.error_at == Some(i) {
            let error = match &this.error {
                Some(error) => Python::attach(|py| PyErr::from_value(error.bind(py).clone())),
                None => PyValueError::new_err(format!("item {i} failed")),
            };
            return Poll::Ready(Some(Err(error)));
        }
        Poll::Ready(Some(Ok(i)))
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        self.state.dropped.store(true, Ordering::SeqCst);
    }
}

/// `S`, made `!Send` (for `local_stream_into_py`).
struct LocalOnly<S> {
    stream: S,
    _not_send: PhantomData<Rc<()>>,
}

impl<S: Stream + Unpin> Stream for LocalOnly<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        Pin::new(&mut self.stream).poll_next(cx)
    }
}

/// The numbers `0..n` as a Python async iterator, produced on the runtime; `capacity`
/// None uses `stream_into_py` (the default capacity), otherwise `stream_into_py_with`.
#[pyfunction]
#[pyo3(signature = (runtime, n, capacity = None))]
fn count_stream<'py>(
    py: Python<'py>,
    runtime: Runtime,
    n: u64,
    capacity: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.stream_into_py(py, with_capacity(capacity), counting(n))
}

/// A `TestStream` (see there; `n` None: endless) as a Python async iterator, with a
/// `StreamProbe` watching it. `local` uses `local_stream_into_py` with the stream made
/// `!Send` (then `capacity` must be None).
#[pyfunction]
#[pyo3(signature = (
    runtime, n = None, *, capacity = None, error_at = None, error = None, panic_at = None,
    stall_at = None, delay = 0.0, local = false, inline = true
))]
#[allow(clippy::too_many_arguments)]
fn probed_stream<'py>(
    py: Python<'py>,
    runtime: Runtime,
    n: Option<u64>,
    capacity: Option<usize>,
    error_at: Option<u64>,
    error: Option<Py<PyAny>>,
    panic_at: Option<u64>,
    stall_at: Option<u64>,
    delay: f64,
    local: bool,
    inline: bool,
) -> PyResult<(Bound<'py, PyAny>, StreamProbe)> {
    let state = Arc::new(ProbeState::default());
    let stream = TestStream {
        next: 0,
        end: n,
        error_at,
        error,
        panic_at,
        stall_at,
        delay: (delay > 0.0).then(|| (runtime, Duration::from_secs_f64(delay))),
        nap: None,
        state: state.clone(),
    };
    let iterator = if local {
        if capacity.is_some() {
            return Err(PyValueError::new_err("a local stream has no capacity"));
        }
        let stream = LocalOnly {
            stream,
            _not_send: PhantomData,
        };
        runtime.local_stream_into_py(py, stream)?
    } else if inline {
        runtime.stream_into_py(py, with_capacity(capacity), stream)?
    } else {
        let options = StreamOptions::default()
            .capacity(capacity.unwrap_or(pyo3_aio::StreamOptions::DEFAULT_CAPACITY))
            .inline(false);
        runtime.stream_into_py(py, Some(options), stream)?
    };
    Ok((iterator, StreamProbe { state }))
}

/// A `!Send` stream of the numbers `0..n`, polled on the loop thread.
#[pyfunction]
fn local_count_stream(py: Python<'_>, n: u64) -> PyResult<Bound<'_, PyAny>> {
    let stream = LocalOnly {
        stream: counting(n),
        _not_send: PhantomData,
    };
    pyo3_aio::generic::local_stream_into_py(py, stream)
}

/// `n` items, each `get_current_loop()` as seen by the stream when it is polled (on the
/// runtime, after a short sleep on its timer before each item).
#[pyfunction]
fn loop_stream<'py>(py: Python<'py>, runtime: Runtime, n: usize) -> PyResult<Bound<'py, PyAny>> {
    let mut produced = 0;
    let mut nap: Option<BoxFuture<()>> = None;
    let stream = PollFn(move |cx: &mut Context<'_>| {
        if produced == n {
            return Poll::Ready(None);
        }
        let sleeping = nap.get_or_insert_with(|| runtime.timer(Duration::from_micros(200)));
        if sleeping.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        nap = None;
        produced += 1;
        Poll::Ready(Some(current_loop()))
    });
    runtime.stream_into_py(py, None, stream)
}

/// What a gated stream may yield: the numbers below `opened`, up to its end.
#[derive(Default)]
struct GateState {
    opened: u64,
    waker: Option<Waker>,
}

/// Opens a gated stream (`gated_stream`) one item at a time, from Python.
#[pyclass(frozen, name = "StreamGate", module = "pyo3_aio_tests")]
struct StreamGate {
    state: Arc<Mutex<GateState>>,
}

#[pymethods]
impl StreamGate {
    /// Lets one more item through. With `wake` the waker of the last poll that waited is
    /// woken now; without it the wake is owed, as a timer that expired but has not yet
    /// fired owes one, and a poll that takes the item first cancels it (as polling an
    /// expired timer drops its registration), so nobody is woken for this item.
    #[pyo3(signature = (wake = true))]
    fn open(&self, wake: bool) {
        let waker = {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.opened += 1;
            if wake { state.waker.take() } else { None }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The owed wake arrives, late (the expired timer fires): the last poll that waited is
    /// woken, unless a poll took the item since and so cancelled the wake.
    fn fire(&self) {
        let waker = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .waker
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The numbers `0..n`, each only once its gate let it through (`StreamGate.open`).
struct GatedStream {
    next: u64,
    end: u64,
    state: Arc<Mutex<GateState>>,
}

impl Stream for GatedStream {
    type Item = PyResult<u64>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.next == this.end {
            return Poll::Ready(None);
        }
        let mut state = this
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if this.next < state.opened {
            // The registration is used up: the item is taken without the wake it was for.
            state.waker = None;
            this.next += 1;
            return Poll::Ready(Some(Ok(this.next - 1)));
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A stream of `0..n` whose items a `StreamGate` lets through one at a time; `local` makes
/// it `!Send` (polled on the loop thread), else it is produced on `runtime`.
#[pyfunction]
fn gated_stream<'py>(
    py: Python<'py>,
    runtime: Runtime,
    n: u64,
    local: bool,
) -> PyResult<(Bound<'py, PyAny>, StreamGate)> {
    let state = Arc::new(Mutex::new(GateState::default()));
    let stream = GatedStream {
        next: 0,
        end: n,
        state: state.clone(),
    };
    let iterator = if local {
        let stream = LocalOnly {
            stream,
            _not_send: PhantomData,
        };
        runtime.local_stream_into_py(py, stream)?
    } else {
        runtime.stream_into_py(py, None, stream)?
    };
    Ok((iterator, StreamGate { state }))
}

/// `n` items, each the result of awaiting `factory(i)` (a Python coroutine function),
/// started with `into_future` when the stream is polled for item `i`: what a stream's
/// Python work sees (its loop, its context). `local` uses `local_stream_into_py`.
#[pyfunction]
#[pyo3(signature = (runtime, factory, n, local = false))]
fn awaiting_stream<'py>(
    py: Python<'py>,
    runtime: Runtime,
    factory: Py<PyAny>,
    n: usize,
    local: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut next = 0;
    let mut pending: Option<pyo3_aio::PyFuture> = None;
    let stream = PollFn(move |cx: &mut Context<'_>| {
        let future = match pending.as_mut() {
            Some(future) => future,
            None if next == n => return Poll::Ready(None),
            None => {
                let started =
                    Python::attach(|py| pyo3_aio::into_future(factory.bind(py).call1((next,))?));
                next += 1;
                pending.insert(match started {
                    Ok(future) => future,
                    Err(error) => return Poll::Ready(Some(Err(error))),
                })
            }
        };
        let result = std::task::ready!(std::future::Future::poll(Pin::new(future), cx));
        pending = None;
        Poll::Ready(Some(result))
    });
    if local {
        let stream = LocalOnly {
            stream,
            _not_send: PhantomData,
        };
        runtime.local_stream_into_py(py, stream)
    } else {
        runtime.stream_into_py(py, None, stream)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        count_stream,
        probed_stream,
        local_count_stream,
        loop_stream,
        gated_stream,
        awaiting_stream
    );
    m.add_class::<StreamProbe>()?;
    m.add_class::<StreamGate>()?;
    Ok(())
}
