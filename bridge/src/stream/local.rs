//! A `!Send` Rust stream to Python: polled on the loop thread by `__anext__`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::Context;
use std::task::Poll;
use std::task::Waker;

use futures_core::Stream;
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;

use crate::sync::lock;

use crate::coroutine::to_python;
use crate::stream::ItemSource;

pub(crate) struct UnsendSource<S: ?Sized> {
    pub(crate) waiters: Arc<Waiters>,
    pub(crate) stream: Mutex<Option<crate::thread_bound::ThreadBound<Pin<Box<S>>>>>,
}

/// The tasks waiting in `__anext__` of a local stream. The stream is polled with one waker
/// that wakes them all, so a second waiting task does not replace the first, and `close`
/// can wake them after dropping the stream.
#[derive(Default)]
pub(crate) struct Waiters(Mutex<Vec<Waker>>);

impl Waiters {
    fn add(&self, waker: &Waker) {
        let mut waiters = lock(&self.0);
        if !waiters.iter().any(|known| known.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    fn wake_all(&self) {
        let waiters = std::mem::take(&mut *lock(&self.0));
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

impl<S, T> ItemSource for UnsendSource<S>
where
    S: Stream<Item = PyResult<T>> + ?Sized + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    fn next_item(&self, py: Python<'_>, waker: Option<&Waker>) -> Option<PyResult<Py<PyAny>>> {
        let mut slot = lock(&self.stream);
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
        let stream = lock(&self.stream).take();
        drop(stream);
        // Tasks waiting in `__anext__` see the end (StopAsyncIteration).
        self.waiters.wake_all();
    }
}
