//! A `Send` Rust stream to Python: the runtime polls it into the channel, and the loop
//! thread polls it itself when the buffer is empty and the runtime is not polling.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::Context;
use std::task::Poll;
use std::task::Waker;

use futures_core::Stream;
use pyo3::prelude::*;
use pyo3_aio_core::Spawner;

use crate::stream::channel::close_channel;
use crate::sync::{lock, try_lock};

use crate::stream::ItemSource;
use crate::stream::channel::Channel;
use crate::stream::channel::finish_channel;
use crate::stream::channel::next_item;

/// The boxed stream of a `Send` conversion, with its task locals.
pub(crate) type SendStream<T> = Pin<Box<dyn Stream<Item = PyResult<T>> + Send>>;

/// A `Send` stream and its buffer. The filler on the runtime fills the buffer and does all
/// the waiting; `__anext__` on the loop thread polls the stream itself when the buffer is
/// empty and the filler is not polling it (`StreamOptions::inline`), so items that are
/// ready need no thread hop.
pub(crate) struct SendSource<T, Sp> {
    pub(crate) channel: Mutex<Channel<PyResult<T>>>,
    /// `None` once the stream ended or was dropped. Whoever polls holds the lock.
    pub(crate) stream: Mutex<Option<SendStream<T>>>,
    pub(crate) spawner: Sp,
    pub(crate) inline: bool,
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

impl<T, Sp> SendSource<T, Sp> {
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

/// The filler task: pulls items from the stream into the channel on the runtime, until the stream ends,
/// the consumer closes, or the buffer is full (then it waits for room).
pub(crate) async fn fill<T, Sp: Spawner>(front: Arc<SendSource<T, Sp>>) {
    let mut dropped = FillDropped {
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
            let mut stream = lock(&front.stream);
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
    // Drop the stream here, on the runtime, before telling anyone it ended; with its lock
    // held, so that `poll_dropped` never finds it taken but not yet dropped.
    {
        let mut stream = lock(&front.stream);
        drop(stream.take());
    }
    dropped.ended = true;
    finish_channel(&front.channel, None);
}

/// Dropped with an unfinished filler (its runtime shut down, or dropped the task): the
/// consumer gets the error a future gets then, instead of waiting forever.
struct FillDropped<T, Sp: Spawner> {
    front: Arc<SendSource<T, Sp>>,
    /// The filler ran to its end and finished the channel itself.
    ended: bool,
}

impl<T, Sp: Spawner> Drop for FillDropped<T, Sp> {
    fn drop(&mut self) {
        if !self.ended {
            let runtime = self.front.spawner.name();
            let error = crate::errors::producer_dropped(runtime);
            finish_channel(&self.front.channel, Some(error));
        }
    }
}

impl<T, Sp> SendSource<T, Sp>
where
    Sp: Spawner,
{
    /// On the loop thread, with the buffer empty: polls the stream here, inside the
    /// runtime's context, while it has items ready (at most a buffer's worth), unless the
    /// pump is polling it right now. A wake the stream asks for goes to the filler, which
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
            // Let a parked filler see the end and finish.
            let pump = lock(&self.channel).producer.take();
            wake.extend(pump);
        }
        wake.into_iter().for_each(Waker::wake);
    }
}

impl<T, Sp> ItemSource for SendSource<T, Sp>
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
        // Room made here does not wake a filler parked on a full buffer: the loop thread
        // refills it itself when it runs dry. The filler is only needed while the stream
        // waits for an event, and the stream wakes it then.
        next_item(&self.channel, py, waker, false)
    }

    fn close(&self) {
        close_channel(&self.channel);
        // Dropped here when the filler is not polling it, so that after `aclose()` (or a
        // cancelled `anext`) the stream's destructor has run, as an async generator's
        // `finally` has; else the filler, which holds it, drops it when its poll returns.
        let stream = try_lock(&self.stream).and_then(|mut stream| stream.take());
        if let Some(stream) = stream {
            crate::coroutine::entered(&self.spawner, || drop(stream));
        }
    }

    fn poll_dropped(&self, waker: Option<&Waker>) -> Poll<()> {
        let mut channel = lock(&self.channel);
        // The filler finishes the channel after dropping the stream (`fill`), and so does
        // a filler its runtime dropped: finished means dropped.
        if channel.finished {
            return Poll::Ready(());
        }
        // Taken by `close`, or dropped by a filler about to finish the channel. Held (the
        // filler is inside its poll): wait for the finish, which wakes the consumers; it
        // takes this lock first, so the wake cannot be missed.
        if try_lock(&self.stream).is_some_and(|stream| stream.is_none()) {
            return Poll::Ready(());
        }
        if let Some(waker) = waker {
            channel.wait(waker);
        }
        Poll::Pending
    }
}
