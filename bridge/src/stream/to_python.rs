//! A Rust stream as a Python async iterator: `RustStream`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::Context;
use std::task::Poll;

use futures_core::Stream;
use pyo3::prelude::*;
use pyo3_aio_core::Spawner;

use crate::asyncio::running::running_loop;
use crate::coroutine::local_future_into_py_with;
use crate::coroutine::on_loop_thread::loop_thread_object;
use crate::locals::LocalsSlot;
use crate::locals::fill;
use crate::locals::scoped_locals;
use crate::locals::with_locals;
use crate::options::FirstPoll;
use crate::options::StreamOptions;
use crate::stream::ItemSource;
use crate::stream::channel::Channel;
use crate::stream::local::UnsendSource;
use crate::stream::local::Waiters;
use crate::stream::ready::ready;
use crate::stream::send::SendSource;
use crate::stream::send::SendStream;
use crate::stream::send::fill as fill_channel;

/// A Rust stream as a Python async iterator (`async for`, `anext()`, `aclose()`).
#[pyclass(name = "RustStream", module = "pyo3_aio", weakref)]
pub struct RustStream {
    /// The channel filled by the runtime's filler task, or (`!Send` streams) the stream itself,
    /// polled on the loop thread by `__anext__`.
    front: Arc<dyn ItemSource>,
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
        after_drop(py, &self.front, Ok(py.None()))
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
        let error = crate::errors::thrown(typ, val, tb)?;
        self.front.close();
        after_drop(py, &self.front, Err(error))
    }
}

/// An awaitable giving `outcome` once the closed Rust stream is dropped, as an async
/// generator's `aclose()` and `athrow()` return after its `finally` ran: a ready one when
/// `close` could drop it, else one that waits for the runtime thread polling it to drop it.
fn after_drop<'py>(
    py: Python<'py>,
    front: &Arc<dyn ItemSource>,
    outcome: PyResult<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if front.poll_dropped(None).is_ready() {
        return ready(py, outcome);
    }
    let front = front.clone();
    let waiting = async move {
        std::future::poll_fn(|cx| front.poll_dropped(Some(cx.waker()))).await;
        outcome
    };
    // An async generator's `aclose()` left unawaited gives no warning; neither does this.
    let closing = loop_thread_object(py, FirstPoll::Inline, waiting, "RustStream.aclose").quiet();
    Ok(Bound::new(py, closing)?.into_any())
}

impl Drop for RustStream {
    fn drop(&mut self) {
        self.front.close();
    }
}

/// Closes the stream when a waiting `__anext__` is dropped unfinished (its task was
/// cancelled): a cancelled consumer ends the stream, so the producer stops and drops its
/// source rather than filling a buffer nobody reads.
struct CloseOnDrop(Option<Arc<dyn ItemSource>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(front) = self.0.take() {
            front.close();
        }
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
    let front = Arc::new(SendSource {
        channel: Mutex::new(Channel::new(options.capacity)),
        stream: Mutex::new(Some(stream)),
        spawner,
        inline: options.inline,
    });
    front
        .spawner
        .spawn(Box::pin(fill_channel(front.clone())))
        .map_err(crate::errors::refused)?;
    let front: Arc<dyn ItemSource> = front;
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
    let front: Arc<dyn ItemSource> = Arc::new(UnsendSource {
        stream: Mutex::new(Some(crate::thread_bound::ThreadBound::new(Box::pin(
            stream,
        )))),
        waiters: Arc::new(Waiters::default()),
    });
    crate::shared::register_types(py);
    Ok(Bound::new(py, RustStream { front })?.into_any())
}
