//! A Python async iterable as a Rust stream: a pump coroutine (`pump.rs`) steps the
//! iterator on its loop, as its own task, and pushes into the channel.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Context;
use std::task::Poll;
use std::task::Waker;

use futures_core::Stream;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::sync::lock;

use crate::asyncio::cancel_task;
use crate::asyncio::is_interrupt;
use crate::asyncio::report;
use crate::asyncio::running::runs_here;
use crate::asyncio::set_unless_done;
use crate::event_loop::LoopItem;
use crate::event_loop::LoopRef;
use crate::event_loop::is_loop_thread;
use crate::event_loop::queue_on;
use crate::event_loop::registry::loop_shared;
use crate::event_loop::run_if_attached_here;
use crate::options::StreamOptions;
use crate::stream::channel::Channel;
use crate::stream::pump::StreamPump;
use crate::unwinding::Noted;

pub(crate) struct Inlet {
    channel: Mutex<Channel<PyResult<Py<PyAny>>>>,
    /// The future the pump awaits while the buffer is full (made by the pump's loop: an
    /// asyncio future, or under trio the stand-in of `trio::stream_host`).
    space: Mutex<Option<Py<PyAny>>>,
    /// The pump's task, to cancel when the Rust side drops the stream.
    task: Mutex<Option<Py<PyAny>>>,
    loop_shared: LoopRef,
    /// Whether a consumer waits for an item: set with its waker, cleared when a push takes
    /// the wakers. Read by the pump without the lock, to hand a waiting consumer its batch
    /// at once (`Pump::add`); only a hint, the wakers themselves are under the lock.
    consumer_waiting: AtomicBool,
}

impl Inlet {
    fn new(capacity: usize, loop_shared: LoopRef) -> Self {
        Self {
            channel: Mutex::new(Channel::new(capacity)),
            space: Mutex::new(None),
            task: Mutex::new(None),
            loop_shared,
            consumer_waiting: AtomicBool::new(false),
        }
    }

    /// The `space()` future a pump waiting for room awaits, if any.
    pub(crate) fn take_space(&self) -> Option<Py<PyAny>> {
        lock(&self.space).take()
    }

    /// Lets a pump waiting for room go on (on the loop thread).
    fn release_space(&self, py: Python<'_>) {
        if let Some(future) = self.take_space() {
            let _ = set_unless_done(future.bind(py), Ok(py.None()));
        }
    }

    /// Whether a consumer waited for an item at the last look (a hint; see
    /// `consumer_waiting`).
    pub(crate) fn consumer_waits(&self) -> bool {
        self.consumer_waiting.load(Ordering::Relaxed)
    }

    /// Whether the consumer closed the stream.
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.channel).closed
    }

    /// Adds the pump's items (at most the room it was last told of, so never past the
    /// capacity); returns the room left, whether the stream was closed (the items are
    /// dropped then), and whether a waiting consumer was woken.
    pub(crate) fn push_items(&self, items: &mut Vec<Py<PyAny>>) -> (usize, bool, bool) {
        let (room, waker) = {
            let mut channel = lock(&self.channel);
            if channel.closed {
                drop(channel);
                items.clear();
                return (0, true, false);
            }
            channel.items.extend(items.drain(..).map(Ok));
            let waker = if channel.consumers.is_empty() {
                Vec::new()
            } else {
                self.consumer_waiting.store(false, Ordering::Relaxed);
                channel.take_consumers()
            };
            (channel.capacity.saturating_sub(channel.items.len()), waker)
        };
        let woke = !waker.is_empty();
        waker.into_iter().for_each(Waker::wake);
        (room, false, woke)
    }

    /// Whether the buffer has room, or the stream was closed (a look, without parking).
    pub(crate) fn has_room(&self) -> bool {
        let channel = lock(&self.channel);
        channel.closed || channel.items.len() < channel.capacity
    }

    /// Keeps `future` for the consumer to resolve when it makes room; `false` (nothing
    /// kept) when there is room already or the stream was closed.
    pub(crate) fn park_space(&self, future: &Bound<'_, PyAny>) -> bool {
        let mut space = lock(&self.space);
        let ready = self.has_room();
        if !ready {
            *space = Some(future.clone().unbind());
        }
        !ready
    }

    /// Ends the stream: after the items buffered, with `error` if there is one.
    pub(crate) fn end(&self, error: Option<PyErr>) {
        let waker = {
            let mut channel = lock(&self.channel);
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

#[cfg(test)]
impl Inlet {
    /// An inlet of `capacity` whose loop is gone, and the stream that reads it: for testing
    /// the channel's two ends without a loop.
    pub(crate) fn detached(capacity: usize) -> (Arc<Self>, PyStream) {
        let shared = Arc::new(Self::new(capacity, LoopRef::new()));
        (shared.clone(), PyStream { shared })
    }
}

/// A Python async iterable as a Rust [`Stream`]; see [`into_stream`].
///
/// Dropping it early cancels the pump task on the loop, which closes the Python iterator
/// (`aclose`), so an async generator's `finally` runs.
pub struct PyStream {
    shared: Arc<Inlet>,
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
            // Only a pop from a full buffer can find a pump waiting for room: the pump parks
            // only while the buffer is full, and checks again under the lock.
            let was_full = channel.items.len() >= channel.capacity;
            match channel.items.pop_front() {
                Some(item) => (item, was_full && channel.items.len() < channel.capacity),
                None if channel.finished => return Poll::Ready(None),
                None => {
                    channel.wait(cx.waker());
                    self.shared.consumer_waiting.store(true, Ordering::Relaxed);
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
                queue_on(
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
            // A cancelled Rust future's waiter waits for the pump to unwind (as a task
            // cancelled inside `async for` has run the generator's `finally`).
            let noted = Noted::here();
            queue_on(
                &self.shared.loop_shared,
                LoopItem::Call(Box::new(move |py| {
                    shared.release_space(py);
                    let task = lock(&shared.task).take();
                    if let Some(task) = task {
                        cancel_task(
                            py,
                            task.bind(py),
                            None,
                            "pyo3-aio could not cancel a stream",
                        );
                        noted.finish_when_done(task.bind(py));
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
/// the Python side runs at most [`StreamOptions::DEFAULT_CAPACITY`] items ahead. An exception raised by
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
    into_stream_with(StreamOptions::default(), iterable)
}

/// [`into_stream`] with [`StreamOptions`].
///
/// # Errors
///
/// As [`into_stream`].
pub fn into_stream_with(options: StreamOptions, iterable: Bound<'_, PyAny>) -> PyResult<PyStream> {
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
    let token = locals.event_loop(py);
    let under_trio = crate::trio::is_token(&token);
    let (event_loop, state) = if under_trio {
        (
            crate::trio::stream_host(py)?,
            crate::trio::state_of(py, &token)?,
        )
    } else {
        let state = loop_shared(py, &token)?;
        (token, state)
    };
    let shared = Arc::new(Inlet::new(options.capacity, Arc::downgrade(&state)));
    let pump = Bound::new(
        py,
        StreamPump::new(
            iterator.unbind(),
            shared.clone(),
            event_loop.clone().unbind(),
            !under_trio,
        ),
    )?;
    crate::stream::pump_slot::install_pump_am_send(py);
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
                Ok(task) => *lock(&shared.task) = Some(task.unbind()),
                Err(error) => {
                    let _ = pump.bind(py).call_method0("close");
                    shared.end(Some(error.clone_ref(py)));
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
        queue_on(&shared.loop_shared, LoopItem::Call(Box::new(start)));
    }
    Ok(PyStream { shared })
}
