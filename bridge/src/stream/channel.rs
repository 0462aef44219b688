//! The bounded buffer between a stream's producer and its consumer, and the wakers of both.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::Waker;

use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;

use crate::sync::lock;

use crate::coroutine::to_python;
use crate::stream::ItemSource;

/// The buffer between a producer and a consumer.
///
/// Its two flags, set once each, never cleared:
///
/// ```text
///              producer ends / fails / is dropped
///   open  -----------------------------------------> finished
///    |                                                   |
///    | consumer closes (aclose, drop, cancelled anext)   | consumer closes
///    v                                                   v
///  closed  --------- producer ends -----------> finished + closed
/// ```
///
/// - `finished`: no more items will come; the consumer takes what is buffered, then sees
///   the end (`StopAsyncIteration` / `None`).
/// - `closed`: the consumer went away; buffered items are dropped, a push is refused, and
///   the producer stops at its next look (woken through `producer` to do so).
/// - Either flag: `next_item` on an empty buffer reports the end rather than waiting.
pub(crate) struct Channel<T> {
    pub(crate) items: VecDeque<T>,
    pub(crate) capacity: usize,
    /// No more items will come (the producer ended, failed or was dropped).
    pub(crate) finished: bool,
    /// The consumer went away: the producer stops and drops its source.
    pub(crate) closed: bool,
    /// Every consumer waiting for an item (several Python tasks may await `__anext__` of
    /// one iterator at once); all are woken by the next batch.
    pub(crate) consumers: Vec<Waker>,
    pub(crate) producer: Option<Waker>,
}

impl<T> Channel<T> {
    /// Adds `waker` to the waiting consumers unless it is already there.
    pub(crate) fn wait(&mut self, waker: &Waker) {
        if !self.consumers.iter().any(|known| known.will_wake(waker)) {
            self.consumers.push(waker.clone());
        }
    }

    /// Takes the waiting consumers, to wake after the lock is released.
    pub(crate) fn take_consumers(&mut self) -> Vec<Waker> {
        std::mem::take(&mut self.consumers)
    }

    pub(crate) fn new(capacity: usize) -> Self {
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

/// Marks the channel closed and wakes the producer so it stops.
pub(crate) fn close_channel<T>(shared: &Mutex<Channel<T>>) {
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

/// Marks the channel finished (after `last`, an item to deliver before the end) and wakes
/// the consumers.
pub(crate) fn finish_channel<T>(channel: &Mutex<Channel<PyResult<T>>>, last: Option<PyErr>) {
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

/// Takes and converts the item at the front; see [`ItemSource::next_item`]. With `make_room`,
/// taking from a full buffer wakes a producer waiting for room.
pub(crate) fn next_item<T>(
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

impl<T> ItemSource for Mutex<Channel<PyResult<T>>>
where
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    fn next_item(&self, py: Python<'_>, waker: Option<&Waker>) -> Option<PyResult<Py<PyAny>>> {
        next_item(self, py, waker, true)
    }

    fn close(&self) {
        close_channel(self);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use pyo3::PyResult;

    use super::{Channel, close_channel, finish_channel};
    use crate::stream::counted::{counted, woken};

    #[test]
    fn a_new_channel_is_open_with_room_for_one_at_least() {
        let channel = Channel::<u8>::new(0);
        assert_eq!(channel.capacity, 1);
        assert!(!channel.finished && !channel.closed);
        assert_eq!(Channel::<u8>::new(8).capacity, 8);
    }

    #[test]
    fn wait_keeps_each_consumer_once() {
        let (_, first) = counted();
        let (_, second) = counted();
        let mut channel = Channel::<u8>::new(4);
        channel.wait(&first);
        channel.wait(&first.clone());
        channel.wait(&second);
        assert_eq!(channel.consumers.len(), 2);
        assert_eq!(channel.take_consumers().len(), 2);
        assert!(channel.consumers.is_empty());
    }

    #[test]
    fn close_drops_the_items_and_wakes_the_producer() {
        let (count, producer) = counted();
        let shared = Mutex::new(Channel::<u8>::new(4));
        {
            let mut channel = shared.lock().unwrap();
            channel.items.extend([1, 2]);
            channel.producer = Some(producer);
        }
        close_channel(&shared);
        let channel = shared.lock().unwrap();
        assert!(channel.closed && !channel.finished);
        assert!(channel.items.is_empty());
        assert!(channel.producer.is_none());
        assert_eq!(woken(&count), 1);
    }

    #[test]
    fn finish_keeps_the_items_and_wakes_every_consumer() {
        let (first_count, first) = counted();
        let (second_count, second) = counted();
        let shared = Mutex::new(Channel::<PyResult<u8>>::new(4));
        {
            let mut channel = shared.lock().unwrap();
            channel.items.push_back(Ok(1));
            channel.wait(&first);
            channel.wait(&second);
        }
        finish_channel(&shared, None);
        {
            let channel = shared.lock().unwrap();
            assert!(channel.finished && !channel.closed);
            assert_eq!(channel.items.len(), 1);
            assert!(channel.consumers.is_empty());
        }
        assert_eq!((woken(&first_count), woken(&second_count)), (1, 1));

        // Set once, never cleared: finishing again changes nothing and wakes no one.
        finish_channel(&shared, None);
        assert!(shared.lock().unwrap().finished);
        assert_eq!((woken(&first_count), woken(&second_count)), (1, 1));
    }

    #[test]
    fn both_flags_after_close_then_finish_and_finish_then_close() {
        let closed_first = Mutex::new(Channel::<PyResult<u8>>::new(1));
        close_channel(&closed_first);
        finish_channel(&closed_first, None);
        let channel = closed_first.lock().unwrap();
        assert!(channel.closed && channel.finished);
        assert!(channel.items.is_empty());

        let finished_first = Mutex::new(Channel::<PyResult<u8>>::new(1));
        finished_first.lock().unwrap().items.push_back(Ok(1));
        finish_channel(&finished_first, None);
        close_channel(&finished_first);
        let channel = finished_first.lock().unwrap();
        assert!(channel.closed && channel.finished);
        assert!(channel.items.is_empty());
    }
}
