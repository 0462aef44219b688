//! What `test_mutants.py` needs: futures, streams and executors a test steps by hand, so
//! that each race the bridge must win is run on purpose, the same way every time, instead
//! of being left to the scheduler.
//!
//! - [`Gate`]: a future that ends when a test opens it from a thread of its own (the
//!   eventfd path of the loop's wake-up).
//! - [`controlled_stream`]: a `Send` stream that can close its own iterator in the middle
//!   of a poll, stall, or run behind a pump the test starts and watches.
//! - [`into_future_from_thread`]: an `into_future` whose task the loop creates later, for
//!   the test to drop the Rust side while that happens.
//! - [`Latch`]: a runtime-side future on a thread of its own whose poll or drop blocks
//!   until the test lets it go, with a waker the test can see.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3_aio::generic::{BoxFuture as SpawnedFuture, SpawnError, Spawner};
use pyo3_aio::{Home, Options, PyFuture, StreamOptions};

use crate::{PollFn, convert_with, options_from};

/// How long a thread the test controls waits for the test before it goes on anyway: a
/// failing test must not leave a thread blocked for good.
const GIVE_UP: Duration = Duration::from_secs(30);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A boolean that is set once and can be waited for from another thread.
#[derive(Default)]
struct Flag {
    set: Mutex<bool>,
    changed: Condvar,
}

impl Flag {
    fn set(&self) {
        *lock(&self.set) = true;
        self.changed.notify_all();
    }

    fn is_set(&self) -> bool {
        *lock(&self.set)
    }

    /// Waits until the flag is set, at most [`GIVE_UP`]; whether it was.
    fn wait(&self) -> bool {
        self.wait_at_most(GIVE_UP)
    }

    fn wait_at_most(&self, patience: Duration) -> bool {
        let set = lock(&self.set);
        let (set, _) = self
            .changed
            .wait_timeout_while(set, patience, |set| !*set)
            .unwrap_or_else(|e| e.into_inner());
        *set
    }
}

// ---------------------------------------------------------------------------------------
// Gate: woken from a thread that is not the loop's

#[derive(Default)]
struct GateState {
    open: bool,
    waker: Option<Waker>,
}

/// A future waits on it (`wait`) until a test opens it from a fresh thread.
#[pyclass(frozen, module = "pyo3_aio_tests")]
struct Gate {
    state: Arc<Mutex<GateState>>,
}

#[pymethods]
impl Gate {
    #[new]
    fn new() -> Self {
        Self {
            state: Arc::default(),
        }
    }

    /// A coroutine on `runtime`, living on `home` ("auto", "runtime", "loop"), that
    /// returns None once the gate is open.
    #[pyo3(signature = (runtime, home = "loop"))]
    fn wait<'py>(&self, py: Python<'py>, runtime: &str, home: &str) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        convert_with(py, runtime, options_from(home, "inline")?, async move {
            std::future::poll_fn(|cx| {
                let mut gate = lock(&state);
                if gate.open {
                    return Poll::Ready(Ok(()));
                }
                gate.waker = Some(cx.waker().clone());
                Poll::Pending
            })
            .await
        })
    }

    /// Opens the gate on a new thread (not the loop's, without the GIL) and returns once
    /// that thread has woken the waiting future.
    fn open_from_thread(&self, py: Python<'_>) -> PyResult<()> {
        let state = self.state.clone();
        py.detach(|| {
            std::thread::spawn(move || {
                let waker = {
                    let mut gate = lock(&state);
                    gate.open = true;
                    gate.waker.take()
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            })
            .join()
        })
        .map_err(|_| PyRuntimeError::new_err("the thread opening the gate panicked"))
    }
}

// ---------------------------------------------------------------------------------------
// A stream, and a pump, under the test's control

#[derive(Default)]
struct StreamState {
    polls: std::sync::atomic::AtomicUsize,
    produced: std::sync::atomic::AtomicUsize,
    dropped: Flag,
    /// The Python iterator of the stream itself, for `close_at`; taken when used.
    iterator: Mutex<Option<Py<PyAny>>>,
    /// The pump (every future the spawner was given) has returned or was dropped.
    pump_ended: Flag,
    /// The pump's last poll returned Pending and it has not been polled since.
    pump_parked: std::sync::atomic::AtomicBool,
    /// The futures of a held spawner, until `start`.
    held: Mutex<Vec<SpawnedFuture>>,
}

/// A tokio spawner that watches the pump it is given (`pump_ended`, `pump_parked`) and,
/// when `hold`, keeps it until the test calls `StreamControl.start`.
#[derive(Clone)]
struct Watching {
    state: Arc<StreamState>,
    hold: bool,
}

/// A spawned future, seen from outside: parked or not, ended or not.
struct Watched {
    inner: SpawnedFuture,
    state: Arc<StreamState>,
}

impl Future for Watched {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.pump_parked.store(false, SeqCst);
        let polled = self.inner.as_mut().poll(cx);
        if polled.is_pending() {
            self.state.pump_parked.store(true, SeqCst);
        }
        polled
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.state.pump_ended.set();
    }
}

impl Spawner for Watching {
    fn spawn(&self, future: SpawnedFuture) -> Result<(), SpawnError> {
        let watched: SpawnedFuture = Box::pin(Watched {
            inner: future,
            state: self.state.clone(),
        });
        if self.hold {
            lock(&self.state.held).push(watched);
            return Ok(());
        }
        pyo3_aio::tokio::TokioSpawner::global().spawn(watched)
    }

    fn enter(&self, f: &mut dyn FnMut()) {
        pyo3_aio::tokio::TokioSpawner::global().enter(f)
    }

    fn name(&self) -> &'static str {
        "tokio (watched)"
    }
}

/// What a test sees of a [`controlled_stream`] and its pump.
#[pyclass(frozen, module = "pyo3_aio_tests")]
struct StreamControl {
    state: Arc<StreamState>,
}

#[pymethods]
impl StreamControl {
    /// How many times the Rust stream was polled.
    fn polls(&self) -> usize {
        self.state.polls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many items the Rust stream produced.
    fn produced(&self) -> usize {
        self.state
            .produced
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the Rust stream was dropped.
    fn dropped(&self) -> bool {
        self.state.dropped.is_set()
    }

    /// Whether the pump has ended (returned, or was dropped by the runtime).
    fn pump_ended(&self) -> bool {
        self.state.pump_ended.is_set()
    }

    /// Whether the pump is parked: its last poll returned Pending.
    fn pump_parked(&self) -> bool {
        self.state
            .pump_parked
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Hands a held pump to tokio; returns how many futures were held.
    fn start(&self) -> PyResult<usize> {
        let held = std::mem::take(&mut *lock(&self.state.held));
        let count = held.len();
        for future in held {
            pyo3_aio::tokio::TokioSpawner::global()
                .spawn(future)
                .map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
        }
        Ok(count)
    }
}

/// Sets `dropped` when the stream goes.
struct DropMark(Arc<StreamState>);

impl Drop for DropMark {
    fn drop(&mut self) {
        self.0.dropped.set();
    }
}

/// The integers `0..n` (endless without `n`), all ready at once, as a `Send` stream on
/// tokio (`stream_into_py_with`) behind a pump the returned [`StreamControl`] watches.
///
/// `close_at`: while producing that item the stream calls `aclose()` on its own Python
/// iterator, as a consumer closing it during the poll would, and then yields the item.
/// `stall_at`: from that item on the stream is Pending and never wakes (after the close,
/// if both are the same item). `hold_pump`: the pump waits for `StreamControl.start`.
#[pyfunction]
#[pyo3(signature = (n = None, *, capacity = 64, inline = true, close_at = None, stall_at = None, hold_pump = false))]
fn controlled_stream<'py>(
    py: Python<'py>,
    n: Option<u64>,
    capacity: usize,
    inline: bool,
    close_at: Option<u64>,
    stall_at: Option<u64>,
    hold_pump: bool,
) -> PyResult<(Bound<'py, PyAny>, StreamControl)> {
    use std::sync::atomic::Ordering::SeqCst;
    let state = Arc::new(StreamState::default());
    let mark = DropMark(state.clone());
    let mine = state.clone();
    let mut next = 0;
    let stream = PollFn(move |_: &mut Context<'_>| {
        let _mark = &mark;
        mine.polls.fetch_add(1, SeqCst);
        if n == Some(next) {
            return Poll::Ready(None);
        }
        if close_at == Some(next) {
            let iterator = lock(&mine.iterator).take();
            if let Some(iterator) = iterator {
                let closed =
                    Python::attach(|py| iterator.bind(py).call_method0("aclose").map(drop));
                if let Err(error) = closed {
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
        if stall_at.is_some_and(|stall| next >= stall) {
            return Poll::Pending;
        }
        next += 1;
        mine.produced.fetch_add(1, SeqCst);
        Poll::Ready(Some(Ok::<_, PyErr>(next - 1)))
    });
    if close_at.is_some() && !hold_pump && !inline {
        return Err(PyValueError::new_err(
            "close_at needs hold_pump or inline: the pump must not reach the item before \
             the stream knows its iterator",
        ));
    }
    let spawner = Watching {
        state: state.clone(),
        hold: hold_pump,
    };
    let options = StreamOptions::default().capacity(capacity).inline(inline);
    let iterator = pyo3_aio::generic::stream_into_py_with(py, spawner, options, stream)?;
    if close_at.is_some() {
        *lock(&state.iterator) = Some(iterator.clone().unbind());
    }
    Ok((iterator, StreamControl { state }))
}

// ---------------------------------------------------------------------------------------
// into_future whose task is created by the loop, later

/// A Rust future of `into_future`, kept for the test to drop.
#[pyclass(frozen, module = "pyo3_aio_tests")]
struct HeldFuture(Mutex<Option<PyFuture>>);

#[pymethods]
impl HeldFuture {
    /// Drops the Rust future (which cancels its Python task); whether it was still held.
    fn drop_future(&self) -> bool {
        let future = lock(&self.0).take();
        future.is_some()
    }
}

/// Calls `into_future_with_locals(locals of the running loop, awaitable)` on a new thread,
/// so the loop creates the task later, from its wake queue; returns the Rust future
/// unpolled.
#[pyfunction]
fn into_future_from_thread(py: Python<'_>, awaitable: Py<PyAny>) -> PyResult<HeldFuture> {
    let locals = pyo3_aio::TaskLocals::with_running_loop(py)?.copy_context(py)?;
    let future = py
        .detach(|| {
            std::thread::spawn(move || {
                Python::attach(|py| {
                    pyo3_aio::into_future_with_locals(&locals, awaitable.into_bound(py))
                })
            })
            .join()
        })
        .map_err(|_| PyRuntimeError::new_err("the thread calling into_future panicked"))??;
    Ok(HeldFuture(Mutex::new(Some(future))))
}

// ---------------------------------------------------------------------------------------
// Latch: a runtime-side future whose poll or drop waits for the test

#[derive(Default)]
struct LatchState {
    /// The runtime-side poll started (a `block="poll"` one waits for `go` there).
    polling: Flag,
    /// The future's destructor started (a `block="drop"` one waits for `go` there).
    dropping: Flag,
    dropped: Flag,
    go: Flag,
    /// The spawned task returned (its thread is done with it).
    finished: Flag,
    /// A wake from another thread releases `go` and waits for `finished`.
    release_on_wake: bool,
    block_drop: bool,
    executor: OnceLock<ThreadId>,
}

/// Runs each future on a thread of its own, with a waker of its own (see [`Woken`]).
#[derive(Clone)]
struct OwnThread(Arc<LatchState>);

impl Spawner for OwnThread {
    fn spawn(&self, mut future: SpawnedFuture) -> Result<(), SpawnError> {
        let latch = self.0.clone();
        std::thread::spawn(move || {
            let _ = latch.executor.set(std::thread::current().id());
            let woken = Arc::new(Woken {
                latch: latch.clone(),
                flag: Mutex::new(false),
                changed: Condvar::new(),
            });
            let waker = Waker::from(woken.clone());
            let mut cx = Context::from_waker(&waker);
            loop {
                *lock(&woken.flag) = false;
                if future.as_mut().poll(&mut cx).is_ready() {
                    break;
                }
                if !woken.wait() {
                    break;
                }
            }
            drop(future);
            latch.finished.set();
        });
        Ok(())
    }

    fn name(&self) -> &'static str {
        "own-thread"
    }
}

/// The waker of an [`OwnThread`] task.
struct Woken {
    latch: Arc<LatchState>,
    flag: Mutex<bool>,
    changed: Condvar,
}

impl Woken {
    /// Waits for a wake, at most [`GIVE_UP`]; whether one came.
    fn wait(&self) -> bool {
        let flag = lock(&self.flag);
        let (flag, _) = self
            .changed
            .wait_timeout_while(flag, GIVE_UP, |woken| !*woken)
            .unwrap_or_else(|e| e.into_inner());
        *flag
    }
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        *lock(&self.flag) = true;
        self.changed.notify_all();
        let elsewhere = self
            .latch
            .executor
            .get()
            .is_some_and(|thread| *thread != std::thread::current().id());
        if self.latch.release_on_wake && elsewhere {
            // The waker's caller (the bridge, on the loop thread) goes on only once the
            // task has run to its end: whatever it does next sees the task finished.
            self.latch.go.set();
            self.latch.finished.wait();
        }
    }
}

/// The future of [`Latch::future`]: Pending on its inline first poll (so it goes to its
/// runtime thread), then on that thread either waits for `go` and stays Pending
/// (`block="poll"`) or returns its value at once (`block="drop"`).
struct Latched {
    latch: Arc<LatchState>,
    polls: u32,
    value: Option<Py<PyAny>>,
}

impl Future for Latched {
    type Output = PyResult<Py<PyAny>>;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.polls += 1;
        if self.polls == 1 {
            return Poll::Pending;
        }
        if self.latch.block_drop {
            return match self.value.take() {
                Some(value) => Poll::Ready(Ok(value)),
                None => Poll::Pending,
            };
        }
        if self.polls == 2 {
            self.latch.polling.set();
            self.latch.go.wait();
        }
        Poll::Pending
    }
}

impl Drop for Latched {
    fn drop(&mut self) {
        self.latch.dropping.set();
        if self.latch.block_drop && self.polls > 1 {
            self.latch.go.wait();
        }
        self.latch.dropped.set();
    }
}

/// A runtime-side future (`Home::Runtime`, on a thread of its own) that blocks where the
/// test says until `release()`.
///
/// `block="poll"`: its runtime-side poll waits for `release()`, then it stays Pending
/// forever. `block="drop"`: it returns its value on the runtime side at once, and its
/// destructor waits for `release()`. `release_on_wake`: a wake of its task from another
/// thread (the bridge cancelling it from the loop thread) releases it and returns only
/// once the task has finished.
#[pyclass(frozen, module = "pyo3_aio_tests")]
struct Latch(Arc<LatchState>);

#[pymethods]
impl Latch {
    #[new]
    #[pyo3(signature = (block = "poll", release_on_wake = false))]
    fn new(block: &str, release_on_wake: bool) -> PyResult<Self> {
        let block_drop = match block {
            "poll" => false,
            "drop" => true,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown block '{other}': expected 'poll' or 'drop'"
                )));
            }
        };
        Ok(Self(Arc::new(LatchState {
            release_on_wake,
            block_drop,
            ..LatchState::default()
        })))
    }

    /// The coroutine of the latched future (one per latch).
    #[pyo3(signature = (value = None))]
    fn future<'py>(
        &self,
        py: Python<'py>,
        value: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let future = Latched {
            latch: self.0.clone(),
            polls: 0,
            value: Some(value.unwrap_or_else(|| py.None())),
        };
        let options = Options::default().home(Home::Runtime);
        pyo3_aio::generic::future_into_py_with(py, OwnThread(self.0.clone()), options, future)
    }

    /// The latched future started at once (`future_into_py_eager`, one per latch).
    #[pyo3(signature = (value = None))]
    fn eager<'py>(&self, py: Python<'py>, value: Option<Py<PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let future = Latched {
            latch: self.0.clone(),
            polls: 0,
            value: Some(value.unwrap_or_else(|| py.None())),
        };
        pyo3_aio::generic::future_into_py_eager(py, OwnThread(self.0.clone()), future)
    }

    /// Lets the blocked poll or destructor go on.
    fn release(&self) {
        self.0.go.set();
    }

    fn polling(&self) -> bool {
        self.0.polling.is_set()
    }

    fn dropping(&self) -> bool {
        self.0.dropping.is_set()
    }

    fn dropped(&self) -> bool {
        self.0.dropped.is_set()
    }

    fn finished(&self) -> bool {
        self.0.finished.is_set()
    }
}

// ---------------------------------------------------------------------------------------
// A runtime-side future woken after the interpreter has finalized

/// The one future of [`poll_after_exit`] in this process.
static AFTER_EXIT: Mutex<Option<Arc<AfterExit>>> = Mutex::new(None);

#[derive(Default)]
struct AfterExit {
    waker: Mutex<Option<Waker>>,
    parked: Flag,
    woken: Flag,
    dropped: Flag,
}

unsafe extern "C" {
    /// The C library's `atexit`: its handlers run after `Py_FinalizeEx`, as the process exits.
    safe fn atexit(handler: extern "C" fn()) -> std::os::raw::c_int;
}

/// Runs at process exit, after the interpreter finalized: wakes the future of
/// [`poll_after_exit`] and waits (boundedly) for its runtime thread to be done with it.
extern "C" fn wake_after_exit() {
    let Some(state) = lock(&AFTER_EXIT).clone() else {
        return;
    };
    state.woken.set();
    let waker = lock(&state.waker).take();
    if let Some(waker) = waker {
        waker.wake();
    }
    if !state.dropped.wait_at_most(Duration::from_secs(10)) {
        eprintln!("poll_after_exit: the runtime thread never got through the woken future");
    }
}

/// Pending until the process exits; then, woken after the interpreter has finalized, a
/// poll of it calls into Python (which must not happen: the bridge drops such a future
/// unpolled).
struct AfterExitFuture(Arc<AfterExit>);

impl Future for AfterExitFuture {
    type Output = PyResult<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PyResult<()>> {
        if !self.0.woken.is_set() {
            *lock(&self.0.waker) = Some(cx.waker().clone());
            self.0.parked.set();
            return Poll::Pending;
        }
        Python::attach(|py| drop(py.None()));
        Poll::Ready(Ok(()))
    }
}

impl Drop for AfterExitFuture {
    fn drop(&mut self) {
        self.0.dropped.set();
    }
}

/// A future on tokio's workers that waits until the process exits and is woken by a C
/// `atexit` handler once the interpreter has finalized (one per process).
#[pyfunction]
fn poll_after_exit(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    let state = Arc::new(AfterExit::default());
    *lock(&AFTER_EXIT) = Some(state.clone());
    let mut installed = true;
    HOOK.call_once(|| installed = atexit(wake_after_exit) == 0);
    if !installed {
        return Err(PyRuntimeError::new_err("atexit refused the handler"));
    }
    let options = Options::default()
        .home(Home::Runtime)
        .first_poll(pyo3_aio::FirstPoll::Deferred);
    pyo3_aio::tokio::future_into_py_with(py, options, AfterExitFuture(state))
}

/// Whether the future of `poll_after_exit` is parked on its runtime thread.
#[pyfunction]
fn after_exit_parked() -> bool {
    lock(&AFTER_EXIT)
        .as_ref()
        .is_some_and(|state| state.parked.is_set())
}

/// Objects kept until the process exits (never released, not even at finalization).
static KEPT: Mutex<Vec<Py<PyAny>>> = Mutex::new(Vec::new());

/// Keeps `object` alive for good, past the interpreter's finalization.
#[pyfunction]
fn keep_forever(object: Py<PyAny>) {
    lock(&KEPT).push(object);
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(poll_after_exit, m)?)?;
    m.add_function(wrap_pyfunction!(after_exit_parked, m)?)?;
    m.add_function(wrap_pyfunction!(keep_forever, m)?)?;
    m.add_class::<Gate>()?;
    m.add_class::<StreamControl>()?;
    m.add_class::<HeldFuture>()?;
    m.add_class::<Latch>()?;
    m.add_function(wrap_pyfunction!(controlled_stream, m)?)?;
    m.add_function(wrap_pyfunction!(into_future_from_thread, m)?)?;
    Ok(())
}
