//! Streams both ways: a Rust `Stream` as a Python async iterator, and a Python async
//! iterable as a Rust `Stream`.
//!
//! Both directions use one bounded buffer shared by the two sides, so the producer is never
//! more than `capacity` items ahead, and both wake the other side at most once per batch:
//! the waiting side registers one waker, the producing side takes it when it adds the first
//! item and adds the rest without waking anyone.

use std::collections::VecDeque;
use std::ffi::CString;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use pyo3::exceptions::{PyStopAsyncIteration, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3_aio_core::Spawner;

use crate::coroutine::{FirstPoll, to_python};
use crate::eager::set_unless_done;
use crate::event_loop::{
    LoopItem, LoopRef, cancel_task, is_interrupt, is_loop_thread, loop_shared, report,
    run_if_attached_here, running_loop, runs_here, schedule_on,
};
use crate::generic::local_future_into_py_with;
use crate::locals::{LocalsSlot, fill, scoped_locals, with_locals};

/// How many items a stream's producer may run ahead of its consumer by default.
pub const DEFAULT_CAPACITY: usize = 64;

/// Options of the stream conversions.
///
/// ```
/// let options = pyo3_aio::StreamOptions::default().capacity(8).inline(false);
/// assert_eq!((options.capacity, options.inline), (8, false));
/// assert_eq!(pyo3_aio::StreamOptions::default().capacity, pyo3_aio::DEFAULT_CAPACITY);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// The most items buffered between the two sides (at least 1).
    pub capacity: usize,
    /// `stream_into_py` of a `Send` stream: whether `__anext__` may poll the stream itself,
    /// on the loop thread with the GIL held, when the buffer is empty and the runtime is
    /// not polling it (default `true`). Items that are ready then cost no thread hop; the
    /// runtime still does all the waiting. Turn it off for a stream that does heavy
    /// synchronous work per item, as [`FirstPoll::Deferred`](crate::FirstPoll) does for
    /// futures.
    pub inline: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            inline: true,
        }
    }
}

impl StreamOptions {
    /// Sets [`StreamOptions::capacity`] (values below 1 count as 1).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Sets [`StreamOptions::inline`].
    pub fn inline(mut self, inline: bool) -> Self {
        self.inline = inline;
        self
    }
}

/// The buffer between a producer and a consumer.
struct Channel<T> {
    items: VecDeque<T>,
    capacity: usize,
    /// No more items will come (the producer ended, failed or was dropped).
    finished: bool,
    /// The consumer went away: the producer stops and drops its source.
    closed: bool,
    /// Every consumer waiting for an item (several Python tasks may await `__anext__` of
    /// one iterator at once); all are woken by the next batch.
    consumers: Vec<Waker>,
    producer: Option<Waker>,
}

impl<T> Channel<T> {
    /// Adds `waker` to the waiting consumers unless it is already there.
    fn wait(&mut self, waker: &Waker) {
        if !self.consumers.iter().any(|known| known.will_wake(waker)) {
            self.consumers.push(waker.clone());
        }
    }

    /// Takes the waiting consumers, to wake after the lock is released.
    fn take_consumers(&mut self) -> Vec<Waker> {
        std::mem::take(&mut self.consumers)
    }

    fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            finished: false,
            closed: false,
            consumers: Vec::new(),
            producer: None,
        }
    }
}

fn lock<T>(shared: &Mutex<Channel<T>>) -> MutexGuard<'_, Channel<T>> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks the channel closed and wakes the producer so it stops.
fn close<T>(shared: &Mutex<Channel<T>>) {
    let (producer, items) = {
        let mut channel = lock(shared);
        channel.closed = true;
        (channel.producer.take(), std::mem::take(&mut channel.items))
    };
    drop(items);
    if let Some(waker) = producer {
        waker.wake();
    }
}

// ---------------------------------------------------------------------------------------
// Rust Stream -> Python async iterator

/// The boxed stream of a `Send` conversion, with its task locals.
type SendStream<T> = Pin<Box<dyn Stream<Item = PyResult<T>> + Send>>;

/// A `Send` stream and its buffer. The pump on the runtime fills the buffer and does all
/// the waiting; `__anext__` on the loop thread polls the stream itself when the buffer is
/// empty and the pump is not polling it (`StreamOptions::inline`), so items that are
/// ready need no thread hop.
struct SendFront<T, Sp> {
    channel: Mutex<Channel<PyResult<T>>>,
    /// `None` once the stream ended or was dropped. Whoever polls holds the lock.
    stream: Mutex<Option<SendStream<T>>>,
    spawner: Sp,
    inline: bool,
}

/// What one poll of the stream did to the channel.
enum Polled {
    /// An item was added.
    Item,
    /// The stream ended (or panicked: its error is the last item) and was dropped, or the
    /// consumer closed the channel meanwhile: the poller stops.
    Ended,
    Pending,
}

impl<T, Sp> SendFront<T, Sp> {
    /// Polls the stream once and records the outcome in the channel; `wake` collects the
    /// consumers to wake once no lock is held.
    fn poll_once(
        &self,
        stream: &mut Option<SendStream<T>>,
        cx: &mut Context<'_>,
        wake: &mut Vec<Waker>,
    ) -> Polled {
        let Some(pinned) = stream.as_mut() else {
            return Polled::Ended;
        };
        let polled = crate::panic::poll_next_catching(pinned.as_mut(), cx);
        let (item, ended) = match polled {
            Ok(Poll::Ready(Some(item))) => (Some(item), false),
            Ok(Poll::Ready(None)) => (None, true),
            Ok(Poll::Pending) => return Polled::Pending,
            // A panicking stream ends: its error is the last item.
            Err(payload) => (Some(Err(crate::panic::panic_to_pyerr(payload))), true),
        };
        if ended {
            // Dropped before anyone is told it ended.
            drop(stream.take());
        }
        let mut channel = lock(&self.channel);
        if channel.closed {
            // Closed while this poll ran: the item is not delivered, and the poller stops.
            drop(channel);
            drop(item);
            return Polled::Ended;
        }
        channel.items.extend(item);
        channel.finished |= ended;
        wake.extend(channel.take_consumers());
        if ended { Polled::Ended } else { Polled::Item }
    }
}

/// Pulls items from the stream into the channel on the runtime, until the stream ends,
/// the consumer closes, or the buffer is full (then it waits for room).
async fn pump<T, Sp: Spawner>(front: Arc<SendFront<T, Sp>>) {
    let mut dropped = PumpDropped {
        front: front.clone(),
        ended: false,
    };
    std::future::poll_fn(|cx| {
        let mut wake = Vec::new();
        let outcome = loop {
            {
                let mut channel = lock(&front.channel);
                if channel.closed || channel.finished || !crate::coroutine::interpreter_alive() {
                    break Poll::Ready(());
                }
                if channel.items.len() >= channel.capacity {
                    channel.producer = Some(cx.waker().clone());
                    break Poll::Pending;
                }
            }
            let mut stream = front.stream.lock().unwrap_or_else(|e| e.into_inner());
            match front.poll_once(&mut stream, cx, &mut wake) {
                Polled::Item => {}
                Polled::Ended => break Poll::Ready(()),
                Polled::Pending => {
                    drop(stream);
                    // The stream waits for its own event; register too, so that a close
                    // (aclose, garbage collection, cancelled consumer) or a poll made on
                    // the loop thread meanwhile wakes us.
                    let mut channel = lock(&front.channel);
                    if channel.closed {
                        // Closed while we polled: `close` found no waker to wake and could
                        // not take the stream from us; end here, which drops it.
                        break Poll::Ready(());
                    }
                    if !channel
                        .producer
                        .as_ref()
                        .is_some_and(|known| known.will_wake(cx.waker()))
                    {
                        channel.producer = Some(cx.waker().clone());
                    }
                    break Poll::Pending;
                }
            }
        };
        // One wake-up per waiting consumer for everything added in this poll.
        wake.into_iter().for_each(Waker::wake);
        outcome
    })
    .await;
    // Drop the stream here, on the runtime, before telling anyone it ended.
    let stream = front
        .stream
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    drop(stream);
    dropped.ended = true;
    finish_channel(&front.channel, None);
}

/// Marks the channel finished (after `last`, an item to deliver before the end) and wakes
/// the consumers.
fn finish_channel<T>(channel: &Mutex<Channel<PyResult<T>>>, last: Option<PyErr>) {
    let wakers = {
        let mut channel = lock(channel);
        if let Some(error) = last.filter(|_| !channel.finished && !channel.closed) {
            channel.items.push_back(Err(error));
        }
        channel.finished = true;
        channel.take_consumers()
    };
    wakers.into_iter().for_each(Waker::wake);
}

/// Dropped with an unfinished pump (its runtime shut down, or dropped the task): the
/// consumer gets the error a future gets then, instead of waiting forever.
struct PumpDropped<T, Sp: Spawner> {
    front: Arc<SendFront<T, Sp>>,
    /// The pump ran to its end and finished the channel itself.
    ended: bool,
}

impl<T, Sp: Spawner> Drop for PumpDropped<T, Sp> {
    fn drop(&mut self) {
        if !self.ended {
            let runtime = self.front.spawner.name();
            let error = crate::waiter::producer_dropped(runtime);
            finish_channel(&self.front.channel, Some(error));
        }
    }
}

/// Converts the item at the front, if any, on the loop thread.
trait Front: Send + Sync {
    /// `Some(Ok(item))`, `Some(Err(error))` (error items and the end, as
    /// `StopAsyncIteration`), or `None` when nothing is there yet (registers `waker`).
    fn next_item(&self, py: Python<'_>, waker: Option<&Waker>) -> Option<PyResult<Py<PyAny>>>;
    fn close(&self);
}

impl<T, Sp> SendFront<T, Sp>
where
    Sp: Spawner,
{
    /// On the loop thread, with the buffer empty: polls the stream here, inside the
    /// runtime's context, while it has items ready (at most a buffer's worth), unless the
    /// pump is polling it right now. A wake the stream asks for goes to the pump, which
    /// does all the waiting: it is either parked with its waker left in the channel, or
    /// about to poll anyway (its waker is not there then, and a no-op one stands in).
    fn poll_inline(&self) {
        let Ok(mut stream) = self.stream.try_lock() else {
            return;
        };
        let (pump, capacity) = {
            let channel = lock(&self.channel);
            if channel.closed || channel.finished {
                return;
            }
            (channel.producer.clone(), channel.capacity)
        };
        let waker = pump.unwrap_or_else(|| Waker::noop().clone());
        let mut cx = Context::from_waker(&waker);
        let mut wake = Vec::new();
        let mut ended = false;
        self.spawner.enter(&mut || {
            for _ in 0..capacity {
                match self.poll_once(&mut stream, &mut cx, &mut wake) {
                    Polled::Item => {}
                    Polled::Ended => {
                        ended = true;
                        break;
                    }
                    Polled::Pending => break,
                }
            }
        });
        drop(stream);
        if ended {
            // Let a parked pump see the end and finish.
            let pump = lock(&self.channel).producer.take();
            wake.extend(pump);
        }
        wake.into_iter().for_each(Waker::wake);
    }
}

impl<T, Sp> Front for SendFront<T, Sp>
where
    T: for<'py> IntoPyObject<'py> + Send + 'static,
    Sp: Spawner,
{
    fn next_item(&self, py: Python<'_>, waker: Option<&Waker>) -> Option<PyResult<Py<PyAny>>> {
        if !self.inline {
            return self.channel.next_item(py, waker);
        }
        if lock(&self.channel).items.is_empty() {
            self.poll_inline();
        }
        // Room made here does not wake a pump parked on a full buffer: the loop thread
        // refills it itself when it runs dry. The pump is only needed while the stream
        // waits for an event, and the stream wakes it then.
        next_item(&self.channel, py, waker, false)
    }

    fn close(&self) {
        close(&self.channel);
        // Dropped here when the pump is not polling it, so that after `aclose()` (or a
        // cancelled `anext`) the stream's destructor has run, as an async generator's
        // `finally` has; else the pump, which holds it, drops it when its poll returns.
        let stream = match self.stream.try_lock() {
            Ok(mut stream) => stream.take(),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner().take(),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some(stream) = stream {
            crate::coroutine::entered(&self.spawner, || drop(stream));
        }
    }
}

impl<T> Front for Mutex<Channel<PyResult<T>>>
where
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    fn next_item(&self, py: Python<'_>, waker: Option<&Waker>) -> Option<PyResult<Py<PyAny>>> {
        next_item(self, py, waker, true)
    }

    fn close(&self) {
        close(self);
    }
}

/// Takes and converts the item at the front; see [`Front::next_item`]. With `make_room`,
/// taking from a full buffer wakes a producer waiting for room.
fn next_item<T>(
    shared: &Mutex<Channel<PyResult<T>>>,
    py: Python<'_>,
    waker: Option<&Waker>,
    make_room: bool,
) -> Option<PyResult<Py<PyAny>>>
where
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    let (item, producer) = {
        let mut channel = lock(shared);
        match channel.items.pop_front() {
            Some(item) => {
                // Room again: let a producer waiting on a full buffer go on.
                let producer = if make_room && channel.items.len() + 1 >= channel.capacity {
                    channel.producer.take()
                } else {
                    None
                };
                (Some(item), producer)
            }
            None if channel.finished || channel.closed => {
                return Some(Err(PyStopAsyncIteration::new_err(())));
            }
            None => {
                if let Some(waker) = waker {
                    channel.wait(waker);
                }
                return None;
            }
        }
    };
    if let Some(waker) = producer {
        waker.wake();
    }
    item.map(|item| to_python(py, item))
}

/// A Rust stream as a Python async iterator (`async for`, `anext()`, `aclose()`).
#[pyclass(name = "RustStream", module = "pyo3_aio", weakref)]
pub struct RustStream {
    /// The channel filled by the runtime's pump, or (`!Send` streams) the stream itself,
    /// polled on the loop thread by `__anext__`.
    front: Arc<dyn Front>,
}

#[pymethods]
impl RustStream {
    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// The next item: an awaitable that is done at once when an item is buffered.
    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let front = slf.borrow().front.clone();
        if let Some(item) = front.next_item(py, None) {
            return ready(py, item);
        }
        let guard = CloseOnDrop(Some(front.clone()));
        // A pending `anext` keeps its stream alive, as an async generator's does: dropping
        // the last reference to the stream closes it, so `await anext(make_stream())`
        // would otherwise lose its item.
        let stream = slf.clone().unbind();
        local_future_into_py_with(py, FirstPoll::Inline, async move {
            let _stream = stream;
            let item = std::future::poll_fn(|cx| {
                Python::attach(|py| match front.next_item(py, Some(cx.waker())) {
                    Some(item) => Poll::Ready(item),
                    None => Poll::Pending,
                })
            })
            .await;
            let mut guard = guard;
            guard.0 = None;
            item
        })
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        format!(
            "<pyo3_aio.RustStream object at {:#x}>",
            slf.as_ptr() as usize
        )
    }

    /// Drops the Rust stream (on its runtime); later `__anext__` raises
    /// `StopAsyncIteration`.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.front.close();
        ready(py, Ok(py.None()))
    }

    /// As an async generator that does not catch what is thrown in: the Rust stream is
    /// dropped and awaiting the result raises the exception (built from `typ`, `val`,
    /// `tb` as `throw` builds it); later `__anext__` raises `StopAsyncIteration`.
    #[pyo3(signature = (typ, val = None, tb = None))]
    fn athrow<'py>(
        &self,
        py: Python<'py>,
        typ: &Bound<'py, PyAny>,
        val: Option<&Bound<'py, PyAny>>,
        tb: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let error = crate::coroutine::thrown(typ, val, tb)?;
        self.front.close();
        ready(py, Err(error))
    }
}

impl Drop for RustStream {
    fn drop(&mut self) {
        self.front.close();
    }
}

/// Closes the stream when a waiting `__anext__` is dropped unfinished (its task was
/// cancelled), as the issue of cancelling the consumer requires.
struct CloseOnDrop(Option<Arc<dyn Front>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(front) = self.0.take() {
            front.close();
        }
    }
}

/// `am_send` for [`Ready`]: hands the value back without raising `StopIteration`.
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn ready_am_send(
    slf: *mut pyo3::ffi::PyObject,
    _arg: *mut pyo3::ffi::PyObject,
    result: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    // SAFETY: CPython calls type slots with the thread attached to the interpreter.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: CPython passes a valid borrowed reference to the object whose slot this is.
    let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
    let taken = match this.cast::<Ready>() {
        Ok(ready) => match ready.try_borrow_mut() {
            Ok(mut ready) => ready.0.take().unwrap_or_else(|| {
                Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "cannot reuse already awaited coroutine",
                ))
            }),
            Err(error) => Err(error.into()),
        },
        Err(error) => Err(error.into()),
    };
    // SAFETY: `result` is the out-pointer CPython passed to this slot.
    unsafe { crate::coroutine::send_result(py, taken.map(crate::coroutine::Step::Return), result) }
}

fn ready<'py>(py: Python<'py>, item: PyResult<Py<PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    #[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
    {
        static INSTALLED: PyOnceLock<()> = PyOnceLock::new();
        crate::coroutine::install_send_slot::<Ready>(py, &INSTALLED, ready_am_send);
    }
    Ok(Bound::new(py, Ready(Some(item)))?.into_any())
}

/// An awaitable whose result is already known.
#[pyclass(name = "_Ready", module = "pyo3_aio")]
struct Ready(Option<PyResult<Py<PyAny>>>);

#[pymethods]
impl Ready {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> PyResult<Py<PyAny>> {
        match self.0.take() {
            Some(Ok(value)) => Err(pyo3::exceptions::PyStopIteration::new_err((value,))),
            Some(Err(error)) => Err(error),
            None => Err(pyo3::exceptions::PyRuntimeError::new_err(
                "cannot reuse already awaited coroutine",
            )),
        }
    }

    fn send(&mut self, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__next__()
    }

    #[pyo3(signature = (typ, val = None, _tb = None))]
    fn throw(
        &mut self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.0 = None;
        Err(crate::coroutine::thrown(typ, val, None)?)
    }

    fn close(&mut self) {
        self.0 = None;
    }
}

pub(crate) fn stream_into_py<'py, S, T>(
    py: Python<'py>,
    spawner: impl Spawner,
    options: StreamOptions,
    stream: S,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Stream<Item = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let slot: LocalsSlot = Arc::new(std::sync::OnceLock::new());
    if let Some(event_loop) = running_loop(py)? {
        fill(py, &slot, &event_loop)?;
    } else if let Some(locals) = scoped_locals() {
        let _ = slot.set(locals);
    }
    let stream: SendStream<T> = Box::pin(ScopedStream {
        slot,
        stream: Box::pin(stream),
    });
    let front = Arc::new(SendFront {
        channel: Mutex::new(Channel::new(options.capacity)),
        stream: Mutex::new(Some(stream)),
        spawner,
        inline: options.inline,
    });
    front
        .spawner
        .spawn(Box::pin(pump(front.clone())))
        .map_err(|error| pyo3::exceptions::PyRuntimeError::new_err(error.to_string()))?;
    let front: Arc<dyn Front> = front;
    crate::shared::register_types(py);
    Ok(Bound::new(py, RustStream { front })?.into_any())
}

/// A stream polled with its task locals set, like `scope` does for futures.
struct ScopedStream<S: ?Sized> {
    slot: LocalsSlot,
    stream: Pin<Box<S>>,
}

impl<S: Stream + ?Sized> Stream for ScopedStream<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let slot = self.slot.clone();
        with_locals(slot, || self.stream.as_mut().poll_next(cx))
    }
}

/// The `!Send` variant: the stream lives on the loop thread and `__anext__` polls it.
pub(crate) fn local_stream_into_py<'py, S, T>(
    py: Python<'py>,
    stream: S,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Stream<Item = PyResult<T>> + 'static,
    T: for<'a> IntoPyObject<'a> + 'static,
{
    let front: Arc<dyn Front> = Arc::new(LocalFront {
        stream: Mutex::new(Some(crate::thread_bound::ThreadBound::new(Box::pin(
            stream,
        )))),
        waiters: Arc::new(Waiters::default()),
    });
    crate::shared::register_types(py);
    Ok(Bound::new(py, RustStream { front })?.into_any())
}

struct LocalFront<S: ?Sized> {
    waiters: Arc<Waiters>,
    stream: Mutex<Option<crate::thread_bound::ThreadBound<Pin<Box<S>>>>>,
}

/// The tasks waiting in `__anext__` of a local stream. The stream is polled with one waker
/// that wakes them all, so a second waiting task does not replace the first, and `close`
/// can wake them after dropping the stream.
#[derive(Default)]
struct Waiters(Mutex<Vec<Waker>>);

impl Waiters {
    fn add(&self, waker: &Waker) {
        let mut waiters = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !waiters.iter().any(|known| known.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    fn wake_all(&self) {
        let waiters = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        waiters.into_iter().for_each(Waker::wake);
    }
}

impl std::task::Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_all();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_all();
    }
}

impl<S, T> Front for LocalFront<S>
where
    S: Stream<Item = PyResult<T>> + ?Sized + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    fn next_item(&self, py: Python<'_>, waker: Option<&Waker>) -> Option<PyResult<Py<PyAny>>> {
        let mut slot = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        let Some(bound) = slot.as_mut() else {
            return Some(Err(PyStopAsyncIteration::new_err(())));
        };
        let Some(stream) = bound.get_mut() else {
            return Some(Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a !Send Rust stream was iterated on another thread than the one that created it",
            )));
        };
        if let Some(waker) = waker {
            self.waiters.add(waker);
        }
        let waker = Waker::from(self.waiters.clone());
        let mut cx = Context::from_waker(&waker);
        let polled = crate::panic::poll_next_catching(stream.as_mut(), &mut cx);
        match polled {
            Ok(Poll::Ready(Some(item))) => Some(to_python(py, item)),
            Ok(Poll::Ready(None)) => {
                *slot = None;
                Some(Err(PyStopAsyncIteration::new_err(())))
            }
            Ok(Poll::Pending) => None,
            Err(payload) => {
                *slot = None;
                Some(Err(crate::panic::panic_to_pyerr(payload)))
            }
        }
    }

    fn close(&self) {
        let stream = self.stream.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(stream);
        // Tasks waiting in `__anext__` see the end (StopAsyncIteration).
        self.waiters.wake_all();
    }
}

// ---------------------------------------------------------------------------------------
// Python async iterable -> Rust Stream

const PUMP: &str = r#"
async def pump(iterator, sink):
    push = sink.push
    try:
        if not sink.closed:
            if hasattr(type(iterator), "__aiter__"):
                # The fast path: `async for` steps the iterator through its type's slot.
                async for item in iterator:
                    if push(item):
                        await sink.space()
                        if sink.closed:
                            break
            else:
                while True:
                    try:
                        item = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                    if push(item):
                        await sink.space()
                        if sink.closed:
                            break
    except BaseException as error:
        sink.fail(error)
        if not isinstance(error, Exception):
            raise
    else:
        sink.finish()
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None and sink.closed:
            await aclose()
"#;

fn pump_function(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static PUMP_FUNCTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    PUMP_FUNCTION
        .get_or_try_init(py, || {
            let module = PyModule::from_code(
                py,
                &CString::new(PUMP).expect("no NUL in the pump's source"),
                c"pyo3_aio_stream_pump.py",
                c"pyo3_aio_stream_pump",
            )?;
            Ok::<_, PyErr>(module.getattr("pump")?.unbind())
        })
        .map(|function| function.bind(py))
}

struct IntoStreamShared {
    channel: Mutex<Channel<PyResult<Py<PyAny>>>>,
    /// The asyncio future the pump awaits while the buffer is full.
    space: Mutex<Option<Py<PyAny>>>,
    /// The pump's task, to cancel when the Rust side drops the stream.
    task: Mutex<Option<Py<PyAny>>>,
    loop_shared: LoopRef,
}

impl IntoStreamShared {
    /// The `space()` future a pump waiting for room awaits, if any.
    fn take_space(&self) -> Option<Py<PyAny>> {
        self.space.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Lets a pump waiting for room go on (on the loop thread).
    fn release_space(&self, py: Python<'_>) {
        if let Some(future) = self.take_space() {
            let _ = set_unless_done(future.bind(py), Ok(py.None()));
        }
    }
}

/// The Python side of `into_stream`: what the pump coroutine pushes into.
#[pyclass(frozen, name = "_StreamSink", module = "pyo3_aio")]
struct StreamSink {
    shared: Arc<IntoStreamShared>,
}

#[pymethods]
impl StreamSink {
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.shared.channel).closed
    }

    /// Adds an item; returns whether the pump must stop pulling: the buffer is now full,
    /// or the stream was closed (the item is dropped). Either way it awaits `space()` and
    /// then checks `closed`.
    fn push(&self, item: Py<PyAny>) -> bool {
        let (full, waker) = {
            let mut channel = lock(&self.shared.channel);
            if channel.closed {
                return true;
            }
            channel.items.push_back(Ok(item));
            (
                channel.items.len() >= channel.capacity,
                channel.take_consumers(),
            )
        };
        waker.into_iter().for_each(Waker::wake);
        full
    }

    /// An asyncio future resolved when the consumer made room (or closed).
    fn space<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let event_loop = crate::get_current_loop(py)?;
        let future = event_loop.call_method0("create_future")?;
        let mut space = self.shared.space.lock().unwrap_or_else(|e| e.into_inner());
        let ready = {
            let channel = lock(&self.shared.channel);
            channel.closed || channel.items.len() < channel.capacity
        };
        if ready {
            future.call_method1("set_result", (py.None(),))?;
        } else {
            *space = Some(future.clone().unbind());
        }
        Ok(future)
    }

    fn finish(&self) {
        self.end(None);
    }

    fn fail(&self, error: Bound<'_, PyAny>) {
        self.end(Some(PyErr::from_value(error)));
    }
}

impl StreamSink {
    fn end(&self, error: Option<PyErr>) {
        let waker = {
            let mut channel = lock(&self.shared.channel);
            if let Some(error) = error {
                if !channel.closed {
                    channel.items.push_back(Err(error));
                }
            }
            channel.finished = true;
            channel.take_consumers()
        };
        waker.into_iter().for_each(Waker::wake);
    }
}

/// A Python async iterable as a Rust [`Stream`]; see [`into_stream`].
///
/// Dropping it early cancels the pump task on the loop, which closes the Python iterator
/// (`aclose`), so an async generator's `finally` runs.
pub struct PyStream {
    shared: Arc<IntoStreamShared>,
}

impl std::fmt::Debug for PyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyStream").finish_non_exhaustive()
    }
}

impl Stream for PyStream {
    type Item = PyResult<Py<PyAny>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let (item, room) = {
            let mut channel = lock(&self.shared.channel);
            match channel.items.pop_front() {
                Some(item) => (item, channel.items.len() < channel.capacity),
                None if channel.finished => return Poll::Ready(None),
                None => {
                    channel.wait(cx.waker());
                    drop(channel);
                    if is_loop_thread(&self.shared.loop_shared) {
                        // Waiting on a pump of the loop running here (see `Home::Auto`).
                        crate::coroutine::note_python_wait();
                    }
                    return Poll::Pending;
                }
            }
        };
        if room && let Some(future) = self.shared.take_space() {
            // On the loop thread the pump can be let go at once; elsewhere the loop does it.
            let release = move |py: Python<'_>| {
                let _ = set_unless_done(future.bind(py), Ok(py.None()));
            };
            if let Some(release) = run_if_attached_here(&self.shared.loop_shared, release) {
                schedule_on(
                    &self.shared.loop_shared,
                    LoopItem::Call(Box::new(move |py| {
                        release(py);
                        Ok(())
                    })),
                );
            }
        }
        let is_error = item.is_err();
        if is_error {
            lock(&self.shared.channel).finished = true;
        }
        Poll::Ready(Some(item))
    }
}

impl Drop for PyStream {
    fn drop(&mut self) {
        let unfinished = {
            let mut channel = lock(&self.shared.channel);
            channel.closed = true;
            !channel.finished
        };
        if unfinished {
            let shared = self.shared.clone();
            schedule_on(
                &self.shared.loop_shared,
                LoopItem::Call(Box::new(move |py| {
                    shared.release_space(py);
                    let task = shared.task.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(task) = task {
                        cancel_task(
                            py,
                            task.bind(py),
                            None,
                            "pyo3-aio could not cancel a stream",
                        );
                    }
                    Ok(())
                })),
            );
        }
    }
}

/// Converts a Python async iterable (an async generator, or any object with `__aiter__`
/// returning something with `__anext__`) into a Rust [`Stream`] of its items.
///
/// The iteration runs as a task on the loop of the current task locals (found as
/// [`into_future`](crate::into_future) finds them). Items that are ready cross in batches;
/// the Python side runs at most [`DEFAULT_CAPACITY`] items ahead. An exception raised by
/// the iterator arrives as that `PyErr` and ends the stream.
///
/// # Errors
///
/// `TypeError` naming the type when the object is not async-iterable; `RuntimeError` when
/// no event loop can be found.
///
/// ```
/// use pyo3::prelude::*;
///
/// Python::attach(|py| {
///     let error = pyo3_aio::into_stream(py.None().into_bound(py)).unwrap_err();
///     assert_eq!(error.to_string(), "TypeError: expected an async iterable, got 'NoneType'");
/// });
/// ```
pub fn into_stream(iterable: Bound<'_, PyAny>) -> PyResult<PyStream> {
    into_stream_with(iterable, StreamOptions::default())
}

/// [`into_stream`] with [`StreamOptions`].
///
/// # Errors
///
/// As [`into_stream`].
pub fn into_stream_with(iterable: Bound<'_, PyAny>, options: StreamOptions) -> PyResult<PyStream> {
    let py = iterable.py();
    if !iterable.hasattr(pyo3::intern!(py, "__aiter__"))? {
        return Err(PyTypeError::new_err(format!(
            "expected an async iterable, got '{}'",
            iterable.get_type().name()?
        )));
    }
    let iterator = iterable.call_method0(pyo3::intern!(py, "__aiter__"))?;
    if !iterator.hasattr(pyo3::intern!(py, "__anext__"))? {
        return Err(PyTypeError::new_err(format!(
            "__aiter__ of '{}' returned '{}', which has no __anext__",
            iterable.get_type().name()?,
            iterator.get_type().name()?
        )));
    }
    let locals = crate::into_future::target_locals(py)?;
    crate::locals::check_locals(py, &locals)?;
    let event_loop = locals.event_loop(py);
    let shared = Arc::new(IntoStreamShared {
        channel: Mutex::new(Channel::new(options.capacity)),
        space: Mutex::new(None),
        task: Mutex::new(None),
        loop_shared: Arc::downgrade(&loop_shared(py, &event_loop)?),
    });
    let sink = Py::new(
        py,
        StreamSink {
            shared: shared.clone(),
        },
    )?;
    let pump = pump_function(py)?.call1((iterator, sink))?;
    let start = {
        let shared = shared.clone();
        let event_loop = event_loop.clone().unbind();
        let context = locals.context(py).map(Bound::unbind);
        let pump = pump.unbind();
        move |py: Python<'_>| {
            let event_loop = event_loop.bind(py);
            let created = match &context {
                Some(context) => context.bind(py).call_method1(
                    "run",
                    (event_loop.getattr("create_task").ok(), pump.bind(py)),
                ),
                None => event_loop.call_method1("create_task", (pump.bind(py),)),
            };
            match created {
                Ok(task) => {
                    *shared.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.unbind())
                }
                Err(error) => {
                    let _ = pump.bind(py).call_method0("close");
                    StreamSink { shared }.end(Some(error.clone_ref(py)));
                    if is_interrupt(py, &error) {
                        return Err(error);
                    }
                    report(py, event_loop, "pyo3-aio could not start a stream", error);
                }
            }
            Ok(())
        }
    };
    let on_loop_thread = runs_here(py, &event_loop)?;
    if on_loop_thread {
        start(py)?;
    } else {
        schedule_on(&shared.loop_shared, LoopItem::Call(Box::new(start)));
    }
    Ok(PyStream { shared })
}
