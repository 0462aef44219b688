//! One step of the `into_stream` pump (`pump.rs`): ask for items, delegate to each
//! awaitable `__anext__()` returns, hand the items to the channel in batches, wait for room,
//! and end the channel as the pump's `try`/`except`/`finally` would.

use std::cell::{Cell, RefCell};

use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;

use crate::slots::Step;
use crate::stream::delegate::{Delegated, Input, awaitable_iter, delegate};
use crate::stream::from_python::Inlet;
use crate::stream::pump::PumpState;

/// One step's view of the pump.
pub(crate) struct Pump<'a, 'py> {
    iterator: &'a Bound<'py, PyAny>,
    inlet: &'a Inlet,
    event_loop: &'a Bound<'py, PyAny>,
    /// Items of this step not yet in the channel: they go in together (one lock) when
    /// `room` is used up or a consumer waits, before the pump suspends, and when it ends.
    batch: RefCell<Vec<Py<PyAny>>>,
    /// How many items the channel had room for at the last push (1 at a step's start, so
    /// the first item finds out how full, or closed, the channel is).
    room: Cell<usize>,
    /// Whether the Task takes a bare `yield` (`PumpState::Yielded`).
    may_yield: bool,
    /// Whether a push of this step woke a waiting consumer.
    woke: Cell<bool>,
}

/// How the `try` block of the pump ended.
enum Ended {
    /// Exhausted, or the consumer closed the stream.
    Normally,
    Raised(PyErr),
}

impl<'a, 'py> Pump<'a, 'py> {
    pub(crate) fn new(
        iterator: &'a Bound<'py, PyAny>,
        inlet: &'a Inlet,
        event_loop: &'a Bound<'py, PyAny>,
        may_yield: bool,
    ) -> Self {
        Self {
            iterator,
            inlet,
            event_loop,
            batch: RefCell::new(Vec::new()),
            room: Cell::new(1),
            may_yield,
            woke: Cell::new(false),
        }
    }

    fn py(&self) -> Python<'py> {
        self.iterator.py()
    }

    /// Runs from `state` with `input` until the pump suspends or finishes; returns the new
    /// state and the step's outcome.
    pub(crate) fn run(
        &self,
        mut state: PumpState,
        mut input: Input<'py>,
    ) -> (PumpState, PyResult<Step>) {
        let py = self.py();
        let ended = loop {
            match state {
                PumpState::Next => {
                    if let Input::Throw(error) = input {
                        break Ended::Raised(error);
                    }
                    match self.next_item() {
                        Ok(inner) => state = PumpState::Item(inner.unbind()),
                        Err(error) => break self.ended_by(error),
                    }
                }
                PumpState::Item(inner) => match delegate(inner.bind(py), input) {
                    Ok(Delegated::Yield(value)) => {
                        // The iterator suspends: what it gave so far goes to the consumer.
                        self.flush();
                        return (PumpState::Item(inner), Ok(Step::Yield(value)));
                    }
                    Ok(Delegated::Return(item)) => {
                        let (full, closed) = self.add(item);
                        if closed {
                            break Ended::Normally;
                        }
                        state = PumpState::Next;
                        if full && self.may_yield && self.woke.get() && !self.inlet.has_room() {
                            // The consumer this step woke runs before the pump's next
                            // step; a full buffer then usually has room without a
                            // `space` future, its `set_result` and a second loop turn.
                            // (A consumer on another thread may have made room already:
                            // then the pump goes on at once, below.)
                            return (PumpState::Yielded, Ok(Step::Yield(py.None())));
                        }
                        if full {
                            match self.wait_for_space() {
                                // Awaited from the next turn of this loop.
                                Ok(Some(waiting)) => state = PumpState::Space(waiting),
                                Ok(None) => {}
                                Err(error) => break Ended::Raised(error),
                            }
                        }
                    }
                    Err(error) => break self.ended_by(error),
                },
                PumpState::Space(waiting) => match delegate(waiting.bind(py), input) {
                    Ok(Delegated::Yield(value)) => {
                        return (PumpState::Space(waiting), Ok(Step::Yield(value)));
                    }
                    Ok(Delegated::Return(_)) => {
                        if self.inlet.is_closed() {
                            break Ended::Normally;
                        }
                        state = PumpState::Next;
                    }
                    Err(error) => {
                        self.inlet.take_space();
                        break Ended::Raised(error);
                    }
                },
                PumpState::Yielded => {
                    // Resumed where `await asyncio.sleep(0)` would be.
                    if let Input::Throw(error) = input {
                        break Ended::Raised(error);
                    }
                    if self.inlet.is_closed() {
                        break Ended::Normally;
                    }
                    state = PumpState::Next;
                    match self.wait_for_space() {
                        Ok(Some(waiting)) => state = PumpState::Space(waiting),
                        Ok(None) => {}
                        Err(error) => break Ended::Raised(error),
                    }
                }
                PumpState::Closing(inner, pending) => {
                    return match delegate(inner.bind(py), input) {
                        Ok(Delegated::Yield(value)) => {
                            (PumpState::Closing(inner, pending), Ok(Step::Yield(value)))
                        }
                        Ok(Delegated::Return(_)) => finish(py, pending),
                        Err(error) => {
                            chain(py, &error, pending.as_ref());
                            (PumpState::Done, Err(error))
                        }
                    };
                }
                PumpState::Running | PumpState::Done => {
                    return (state, Err(crate::errors::already_awaited()));
                }
            }
            input = Input::Send(py.None().into_bound(py));
        };
        self.flush();
        // `except BaseException` / `else`: the consumer learns how the iteration ended.
        let pending = match ended {
            Ended::Normally => {
                self.inlet.end(None);
                None
            }
            Ended::Raised(error) => {
                let is_exception = error.is_instance_of::<pyo3::exceptions::PyException>(py);
                self.inlet.end(Some(error.clone_ref(py)));
                (!is_exception).then_some(error)
            }
        };
        // `finally`: a consumer that closed the stream gets the iterator closed.
        if self.inlet.is_closed() {
            match self.iterator.getattr(pyo3::intern!(py, "aclose")) {
                Ok(aclose) => {
                    let closing = aclose
                        .call0()
                        .and_then(|awaitable| awaitable_iter(&awaitable));
                    return match closing {
                        Ok(inner) => self.run(
                            PumpState::Closing(inner.unbind(), pending),
                            Input::Send(py.None().into_bound(py)),
                        ),
                        Err(error) => {
                            chain(py, &error, pending.as_ref());
                            (PumpState::Done, Err(error))
                        }
                    };
                }
                Err(error) if !error.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => {
                    chain(py, &error, pending.as_ref());
                    return (PumpState::Done, Err(error));
                }
                Err(_) => {}
            }
        }
        finish(py, pending)
    }

    /// Adds an item; returns whether the channel is now full, and whether it was closed
    /// (the items are dropped then), as pushing it alone would.
    ///
    /// The batch goes in once it fills the room last told of (so the buffer never holds
    /// more than its capacity), or as soon as a consumer waits: a consumer on another
    /// thread that ran dry gets what there is at once and works while the pump goes on.
    /// Held back until the room was used up, a batch filled the buffer as it reached such a
    /// consumer, the next item found it full while the consumer was still waking, and the
    /// pump stopped for a trip through the loop about once per buffer's worth of items.
    fn add(&self, item: Py<PyAny>) -> (bool, bool) {
        let mut batch = self.batch.borrow_mut();
        batch.push(item);
        if batch.len() < self.room.get() && !self.inlet.consumer_waits() {
            return (false, false);
        }
        drop(batch);
        self.flush()
    }

    /// Moves the batch into the channel; returns whether it is now full, or was closed.
    fn flush(&self) -> (bool, bool) {
        let mut batch = self.batch.borrow_mut();
        if batch.is_empty() {
            return (false, false);
        }
        let (room, closed, woke) = self.inlet.push_items(&mut batch);
        // Room for the next batch in one allocation, not a doubling per few items (up to
        // the default capacity: a larger one grows as items come).
        batch.reserve(room.min(crate::options::StreamOptions::DEFAULT_CAPACITY));
        self.room.set(room.max(1));
        self.woke.set(self.woke.get() || woke);
        (room == 0 || closed, closed)
    }

    /// An error ends the iteration normally when it is a `StopAsyncIteration`, as in
    /// `async for`.
    fn ended_by(&self, error: PyErr) -> Ended {
        if error.is_instance_of::<PyStopAsyncIteration>(self.py()) {
            Ended::Normally
        } else {
            Ended::Raised(error)
        }
    }

    /// `__anext__()` through the type's slot, as `async for` calls it, and the iterator of
    /// the awaitable it returned.
    fn next_item(&self) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py();
        #[cfg(not(Py_LIMITED_API))]
        {
            // SAFETY: the GIL is held; the iterator is a valid object, so its type and that
            // type's `tp_as_async` table (NULL or valid) can be read; `am_anext` returns a
            // new reference or NULL with an exception set.
            unsafe {
                let methods = (*pyo3::ffi::Py_TYPE(self.iterator.as_ptr())).tp_as_async;
                if !methods.is_null()
                    && let Some(anext) = (*methods).am_anext
                {
                    let awaitable =
                        Bound::from_owned_ptr_or_err(py, anext(self.iterator.as_ptr()))?;
                    return awaitable_iter(&awaitable);
                }
            }
        }
        let awaitable = self.iterator.call_method0(pyo3::intern!(py, "__anext__"))?;
        awaitable_iter(&awaitable)
    }

    /// What to await until the consumer makes room: the iterator of `await space`, where
    /// `space` is the loop's future (`create_future()`: an asyncio future, or under trio the
    /// stand-in of `trio/tasks.py`) that the consumer resolves; `None` when there is room
    /// (or the stream closed) already. Awaited through `__await__`, not yielded itself, so
    /// whatever the framework suspends on goes up to the pump's task unchanged.
    fn wait_for_space(&self) -> PyResult<Option<Py<PyAny>>> {
        let py = self.py();
        if self.inlet.has_room() {
            return Ok(None);
        }
        let space = self
            .event_loop
            .call_method0(pyo3::intern!(py, "create_future"))?;
        if !self.inlet.park_space(&space) {
            return Ok(None);
        }
        Ok(Some(awaitable_iter(&space)?.unbind()))
    }
}

/// The end of the `finally` block: raise what is pending, else return `None`.
fn finish(py: Python<'_>, pending: Option<PyErr>) -> (PumpState, PyResult<Step>) {
    let outcome = match pending {
        Some(error) => Err(error),
        None => Ok(Step::Return(py.None())),
    };
    (PumpState::Done, outcome)
}

/// Sets `error.__context__` to `pending`, as raising inside a `finally` does.
fn chain(py: Python<'_>, error: &PyErr, pending: Option<&PyErr>) {
    if let Some(pending) = pending {
        let value = error.value(py);
        if value
            .getattr("__context__")
            .is_ok_and(|context| context.is_none())
        {
            let _ = value.setattr("__context__", pending.value(py));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use futures_core::Stream;
    use pyo3::prelude::*;

    use super::Pump;
    use crate::stream::counted::{counted, woken};
    use crate::stream::from_python::{Inlet, PyStream};

    fn item(py: Python<'_>, value: usize) -> Py<PyAny> {
        value.into_pyobject(py).unwrap().into_any().unbind()
    }

    /// The consumer's next poll: `Some(value)` for an item, `None` when it must wait.
    fn next(py: Python<'_>, stream: &mut PyStream, waker: &Waker) -> Option<usize> {
        match Pin::new(stream).poll_next(&mut Context::from_waker(waker)) {
            Poll::Ready(Some(Ok(value))) => Some(value.bind(py).extract().unwrap()),
            Poll::Pending => None,
            Poll::Ready(other) => panic!("not an item: {:?}", other.map(|r| r.is_ok())),
        }
    }

    #[test]
    fn a_waiting_consumer_gets_the_batch_at_once() {
        Python::attach(|py| {
            let (inlet, mut stream) = Inlet::detached(8);
            let none = py.None().into_bound(py);
            let pump = Pump::new(&none, &inlet, &none, true);
            let (count, waker) = counted();

            // A step's first item goes in alone and tells the pump there is room for 7.
            assert_eq!(pump.add(item(py, 0)), (false, false));
            assert_eq!(next(py, &mut stream, &waker), Some(0));
            // The consumer is busy: the next item waits in the batch.
            assert_eq!(pump.add(item(py, 1)), (false, false));
            assert!(!inlet.consumer_waits());
            // It runs dry and waits: the next item goes in with the batch, though the
            // room is far from used up, and wakes it once.
            assert_eq!(next(py, &mut stream, &waker), None);
            assert!(inlet.consumer_waits());
            assert_eq!(pump.add(item(py, 2)), (false, false));
            assert!(!inlet.consumer_waits());
            assert_eq!(woken(&count), 1);
            assert_eq!(next(py, &mut stream, &waker), Some(1));
            assert_eq!(next(py, &mut stream, &waker), Some(2));
            assert_eq!(next(py, &mut stream, &waker), None);
        });
    }

    #[test]
    fn the_buffer_never_holds_more_than_its_capacity() {
        Python::attach(|py| {
            let (inlet, mut stream) = Inlet::detached(4);
            let none = py.None().into_bound(py);
            let pump = Pump::new(&none, &inlet, &none, true);
            let (count, waker) = counted();

            // The consumer waits from the start, so the first item wakes it; it is slow to
            // come, so the rest is batched up to the room and then reported full.
            assert_eq!(next(py, &mut stream, &waker), None);
            assert_eq!(pump.add(item(py, 0)), (false, false));
            assert_eq!(pump.add(item(py, 1)), (false, false));
            assert_eq!(pump.add(item(py, 2)), (false, false));
            assert_eq!(pump.add(item(py, 3)), (true, false));
            assert_eq!(woken(&count), 1);
            let taken: Vec<_> = (0..5).map(|_| next(py, &mut stream, &waker)).collect();
            assert_eq!(taken, [Some(0), Some(1), Some(2), Some(3), None]);
        });
    }

    #[test]
    fn the_step_remembers_whether_it_woke_the_consumer() {
        Python::attach(|py| {
            let (inlet, mut stream) = Inlet::detached(4);
            let none = py.None().into_bound(py);
            let (_count, waker) = counted();

            // Nobody waits: the step wakes nobody, and would not yield to let one run.
            let pump = Pump::new(&none, &inlet, &none, true);
            assert_eq!(pump.add(item(py, 0)), (false, false));
            assert!(!pump.woke.get());

            // The consumer waits when the next step starts: its first item wakes it.
            assert_eq!(next(py, &mut stream, &waker), Some(0));
            assert_eq!(next(py, &mut stream, &waker), None);
            let pump = Pump::new(&none, &inlet, &none, true);
            assert_eq!(pump.add(item(py, 1)), (false, false));
            assert!(pump.woke.get());
        });
    }

    #[test]
    fn a_closed_stream_refuses_the_batch() {
        Python::attach(|py| {
            let (inlet, stream) = Inlet::detached(4);
            let none = py.None().into_bound(py);
            let pump = Pump::new(&none, &inlet, &none, true);
            drop(stream);
            assert_eq!(pump.add(item(py, 0)), (true, true));
            assert!(inlet.is_closed());
        });
    }
}
