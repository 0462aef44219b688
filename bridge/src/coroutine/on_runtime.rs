//! The runtime home: a pending `Send` future polled by the runtime's workers, its result
//! carried back through a completion cell, and the loop thread's hold on it for dropping it
//! when cancelled.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::task::Waker;

use pyo3::prelude::*;

use crate::waiter::Arrival;

use crate::errors::closed_cell;
use pyo3_aio_core::Consumer;
use pyo3_aio_core::Producer;
use pyo3_aio_core::Spawner;

use crate::sync::{lock, try_lock};

use crate::coroutine::in_runtime::entered;
use crate::coroutine::send_start::SendStart;
use crate::coroutine::to_python;
use crate::errors::producer_dropped;
use crate::panic::poll_catching;
use crate::unwinding;
use crate::unwinding::Unwound;
use crate::waiter::source::Source;

/// How a future is dropped away from its runtime's threads: inside the runtime's context
/// where the future carries its spawner, so that what its destructor releases (a timer, a
/// socket) finds the runtime it belongs to.
pub(crate) trait Dispose {
    fn dispose(self: Pin<Box<Self>>);
}

impl<F, T, S: Spawner + Clone> Dispose for SendStart<F, T, S> {
    fn dispose(self: Pin<Box<Self>>) {
        let spawner = self.spawner.clone();
        entered(&spawner, || drop(self));
    }
}

impl<F> Dispose for crate::locals::Scoped<F> {
    fn dispose(self: Pin<Box<Self>>) {
        drop(self);
    }
}

/// A pending future on a runtime's threads, shared with the loop thread so that a
/// cancelled one is dropped before its Task sees the cancellation (see [`Discard`]).
///
/// States: polled (the runtime thread holds `future`'s lock for each poll), idle (the
/// lock is free; the loop thread may take the future and drop it), gone (`gone` set, after
/// the drop, by whichever side dropped it). `on_gone` is the loop thread's request to be
/// woken at gone, made when it found the future being polled.
pub(crate) struct Running<F> {
    future: Mutex<Option<Pin<Box<F>>>>,
    gone: AtomicBool,
    on_gone: Mutex<Option<Waker>>,
    /// The Python tasks the future's drop cancelled, for the waiter of a cancelled one
    /// (see `unwinding.rs`); set before `gone`.
    unwound: Mutex<Unwound>,
}

impl<F: Dispose> Running<F> {
    pub(crate) fn new(future: Pin<Box<F>>) -> Arc<Self> {
        Arc::new(Self {
            future: Mutex::new(Some(future)),
            gone: AtomicBool::new(false),
            on_gone: Mutex::new(None),
            unwound: Mutex::new(Unwound::default()),
        })
    }

    /// Drops the future (if still here) and reports it gone.
    fn finish(&self) {
        let future = lock(&self.future).take();
        self.gone_after(future);
    }

    /// Drops `future` (a destructor's panic stays here) and reports the future gone.
    fn gone_after(&self, future: Option<Pin<Box<F>>>) {
        if let Some(future) = future {
            let dispose = std::panic::AssertUnwindSafe(|| future.dispose());
            let (_, unwound) = unwinding::collect(|| std::panic::catch_unwind(dispose));
            if !unwound.is_empty() {
                lock(&self.unwound).extend(unwound);
            }
        }
        // SeqCst, paired with `when_gone`: either it sees `gone`, or we see its waker.
        self.gone.store(true, Ordering::SeqCst);
        if let Some(waker) = lock(&self.on_gone).take() {
            waker.wake();
        }
    }
}

/// The loop thread's hold on a [`Running`] future, whatever its type.
pub(crate) trait Discard: Send + Sync {
    /// Drops the future here and now unless a runtime thread is polling it; `true` once it
    /// is gone (now or before).
    fn discard(&self) -> bool;
    /// Asks for `waker` to be woken once the future is gone. `false` when it already is
    /// (and nothing will be woken).
    fn when_gone(&self, waker: Waker) -> bool;
    /// The Python tasks the future's drop cancelled that a waiter has to wait for (taken
    /// once the future is gone).
    fn take_unwound(&self) -> Unwound;
}

impl<F: Dispose + Send> Discard for Running<F> {
    fn discard(&self) -> bool {
        if self.gone.load(Ordering::Acquire) {
            return true;
        }
        let Some(mut future) = try_lock(&self.future) else {
            return false;
        };
        let future = future.take();
        self.gone_after(future);
        true
    }

    fn when_gone(&self, waker: Waker) -> bool {
        *lock(&self.on_gone) = Some(waker);
        if !self.gone.load(Ordering::SeqCst) {
            return true;
        }
        // Gone meanwhile: `finish` either took the waker (and wakes it) or missed it.
        lock(&self.on_gone).take().is_none()
    }

    fn take_unwound(&self) -> Unwound {
        std::mem::take(&mut *lock(&self.unwound))
    }
}

/// Runs a pending future on the runtime until it finishes or the Python side cancels.
pub(crate) async fn drive<F, T>(running: Arc<Running<F>>, mut producer: Producer<PyResult<T>>)
where
    F: Future<Output = PyResult<T>> + Dispose,
{
    let outcome = std::future::poll_fn(|cx| {
        if producer.poll_cancelled(cx).is_ready() || !interpreter_alive() {
            return Poll::Ready(None);
        }
        let mut future = lock(&running.future);
        match future.as_mut() {
            Some(future) => poll_catching(future.as_mut(), cx).map(Some),
            // The loop thread dropped it (cancelled).
            None => Poll::Ready(None),
        }
    })
    .await;
    // Release the future's resources before Python sees the result.
    running.finish();
    if let Some(result) = outcome {
        // Err means the consumer cancelled meanwhile: the result is dropped here.
        let _ = producer.complete(result);
    }
}

/// Whether the interpreter still runs. Once it has finalized (the program is exiting while
/// runtime threads still run), a future is dropped instead of polled: a poll could call
/// into Python, which PyO3 refuses with a panic then.
pub(crate) fn interpreter_alive() -> bool {
    // SAFETY: Py_IsInitialized reads a flag of the runtime; it needs no thread state.
    unsafe { pyo3::ffi::Py_IsInitialized() != 0 }
}

pub(crate) struct SpawnedSource<T> {
    pub(crate) consumer: Mutex<Consumer<PyResult<T>>>,
    pub(crate) runtime: &'static str,
    /// The future, for dropping it from the loop thread when cancelled.
    pub(crate) running: Option<Arc<dyn Discard>>,
    /// The consumer's waker: woken once a future that could not be dropped at once is gone.
    pub(crate) waker: OnceLock<Waker>,
}

impl<T> Source for SpawnedSource<T>
where
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    fn take(&self, py: Python<'_>) -> Option<PyResult<Py<PyAny>>> {
        let taken = lock(&self.consumer).try_take()?;
        Some(match taken {
            Ok(result) => to_python(py, result),
            Err(closed) => Err(closed_cell(closed, || producer_dropped(self.runtime))),
        })
    }

    fn cancel(&self, _py: Python<'_>) -> bool {
        lock(&self.consumer).cancel()
    }

    fn arrival(&self) -> Arrival {
        if lock(&self.consumer).is_complete() {
            Arrival::Arrived
        } else {
            Arrival::Pending
        }
    }

    fn discard(&self) {
        if let Some(running) = &self.running {
            running.discard();
        }
    }

    fn discard_now(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|running| running.discard())
    }

    fn take_unwound(&self) -> Unwound {
        self.running
            .as_ref()
            .map(|running| running.take_unwound())
            .unwrap_or_default()
    }

    fn stop(&self, py: Python<'_>) -> bool {
        let Some(running) = &self.running else {
            self.cancel(py);
            return true;
        };
        // Dropped first, then cancelled: the runtime thread, woken by the cancel, finds
        // nothing left to poll.
        let gone = running.discard();
        self.cancel(py);
        if gone {
            return true;
        }
        match self.waker.get() {
            Some(waker) => !running.when_gone(waker.clone()),
            None => true,
        }
    }
}
