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
///
/// Every task in the list polled last and was told to wait, and is woken when the stream's
/// waker fires. A poll that returns something (an item, the end, a panic) may have used up
/// the event that would have fired it: a timer found expired on a poll is dropped without
/// waking anyone. So the task that got something leaves the list and hands over
/// ([`Waiters::hand_over`]): after an item, the first task still waiting polls in its
/// place (and either gets the next item and hands over in turn, or leaves the stream's
/// waker registered for all); after the end every waiting task is woken to see it.
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

    /// A poll returned something to the task of `got` (`None`: the `__anext__` that polls
    /// before waiting): it leaves the list, and the next waiting task is woken, or every
    /// one when the stream `ended`.
    fn hand_over(&self, got: Option<&Waker>, ended: bool) {
        let woken = {
            let mut waiters = lock(&self.0);
            if let Some(got) = got {
                waiters.retain(|known| !known.will_wake(got));
            }
            if ended || waiters.len() <= 1 {
                std::mem::take(&mut *waiters)
            } else {
                vec![waiters.remove(0)]
            }
        };
        woken.into_iter().for_each(Waker::wake);
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
        let stream_waker = Waker::from(self.waiters.clone());
        let mut cx = Context::from_waker(&stream_waker);
        let polled = crate::panic::poll_next_catching(stream.as_mut(), &mut cx);
        let (item, ended) = match polled {
            Ok(Poll::Pending) => return None,
            Ok(Poll::Ready(Some(item))) => (to_python(py, item), false),
            Ok(Poll::Ready(None)) => (Err(PyStopAsyncIteration::new_err(())), true),
            Err(payload) => (Err(crate::panic::panic_to_pyerr(payload)), true),
        };
        if ended {
            // Dropped before anyone is told it ended.
            *slot = None;
        }
        drop(slot);
        self.waiters.hand_over(waker, ended);
        Some(item)
    }

    fn close(&self) {
        let stream = lock(&self.stream).take();
        drop(stream);
        // Tasks waiting in `__anext__` see the end (StopAsyncIteration).
        self.waiters.wake_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::Waiters;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waiting(waiters: &Waiters, n: usize) -> Vec<(Arc<Count>, Waker)> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let count = Arc::new(Count::default());
                (count.clone(), Waker::from(count))
            })
            .collect();
        tasks.iter().for_each(|(_, waker)| waiters.add(waker));
        tasks
    }

    fn wakes(tasks: &[(Arc<Count>, Waker)]) -> Vec<usize> {
        tasks
            .iter()
            .map(|(count, _)| count.0.load(Ordering::SeqCst))
            .collect()
    }

    #[test]
    fn after_an_item_the_taker_leaves_and_the_first_still_waiting_polls() {
        let waiters = Waiters::default();
        let tasks = waiting(&waiters, 3);
        waiters.hand_over(Some(&tasks[1].1), false);
        assert_eq!(wakes(&tasks), [1, 0, 0]);
        // The woken task left the list; the third still waits for the stream's waker.
        waiters.wake_all();
        assert_eq!(wakes(&tasks), [1, 0, 1]);
    }

    #[test]
    fn after_an_item_taken_before_waiting_the_first_waiting_polls() {
        let waiters = Waiters::default();
        let tasks = waiting(&waiters, 2);
        waiters.hand_over(None, false);
        assert_eq!(wakes(&tasks), [1, 0]);
    }

    #[test]
    fn a_lone_taker_wakes_nobody() {
        let waiters = Waiters::default();
        let tasks = waiting(&waiters, 1);
        waiters.hand_over(Some(&tasks[0].1), false);
        waiters.wake_all();
        assert_eq!(wakes(&tasks), [0]);
    }

    #[test]
    fn after_the_end_every_waiting_task_is_woken_once() {
        let waiters = Waiters::default();
        let tasks = waiting(&waiters, 3);
        waiters.hand_over(Some(&tasks[0].1), true);
        waiters.wake_all();
        assert_eq!(wakes(&tasks), [0, 1, 1]);
    }
}
