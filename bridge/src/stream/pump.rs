//! The pump of `into_stream`: a coroutine object written in Rust that steps a Python async
//! iterator on its loop, as its own Task, and pushes each item into the stream's channel.
//!
//! It delegates to the awaitable each `__anext__()` returns the way `await` does: the
//! Task's `send` and `throw` are forwarded to it, and whatever it yields (an asyncio future
//! it waits for) goes up to the Task unchanged. An item that is ready at once is pushed and
//! the next one asked for within the same step, with no Python frame of the pump's own.
//! What it does is what this coroutine would do, step for step:
//!
//! ```python
//! async def pump(iterator, sink):
//!     try:
//!         async for item in iterator:
//!             if sink.push(item):          # full, or closed
//!                 await sink.space()       # done at once when closed
//!                 if sink.closed:
//!                     break
//!     except BaseException as error:
//!         sink.fail(error)                 # the consumer gets the error
//!         if not isinstance(error, Exception):
//!             raise
//!     else:
//!         sink.finish()
//!     finally:
//!         if sink.closed and hasattr(iterator, "aclose"):
//!             await iterator.aclose()
//! ```

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use pyo3::exceptions::{PyGeneratorExit, PyStopAsyncIteration};
use pyo3::prelude::*;

use crate::slots::Step;
use crate::stream::delegate::{Delegated, Input, awaitable_iter, delegate};
use crate::stream::from_python::Inlet;

/// Where the pump is.
enum PumpState {
    /// Asks for the next item at its next step (the start, and after each item).
    Next,
    /// Delegating to the iterator of the awaitable `__anext__()` returned.
    Item(Py<PyAny>),
    /// Waiting for room: delegating to the iterator of `await space` (`wait_for_space`).
    Space(Py<PyAny>),
    /// Awaiting `aclose()` (the consumer closed the stream); then `pending` is raised, if
    /// any.
    Closing(Py<PyAny>, Option<PyErr>),
    Running, // inside a step
    Done,
}

/// The pump coroutine (see the module docs). Runs as a Task of the stream's loop.
#[pyclass(name = "_StreamPump", module = "pyo3_aio")]
pub(crate) struct StreamPump {
    iterator: Py<PyAny>,
    inlet: Arc<Inlet>,
    event_loop: Py<PyAny>,
    state: PumpState,
}

impl StreamPump {
    pub(crate) fn new(iterator: Py<PyAny>, inlet: Arc<Inlet>, event_loop: Py<PyAny>) -> Self {
        Self {
            iterator,
            inlet,
            event_loop,
            state: PumpState::Next,
        }
    }

    pub(crate) fn resume(slf: &Bound<'_, Self>, input: Input<'_>) -> PyResult<Step> {
        let py = slf.py();
        let (state, iterator, inlet, event_loop) = {
            let mut this = slf.borrow_mut();
            let state = std::mem::replace(&mut this.state, PumpState::Running);
            (
                state,
                this.iterator.clone_ref(py),
                this.inlet.clone(),
                this.event_loop.clone_ref(py),
            )
        };
        let pump = Pump {
            iterator: iterator.bind(py),
            inlet: &inlet,
            event_loop: event_loop.bind(py),
            batch: RefCell::new(Vec::new()),
            room: Cell::new(1),
        };
        let (state, outcome) = match state {
            PumpState::Running => {
                slf.borrow_mut().state = PumpState::Running;
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "coroutine already executing",
                ));
            }
            PumpState::Done => (PumpState::Done, Err(crate::errors::already_awaited())),
            state => pump.run(state, input),
        };
        slf.borrow_mut().state = state;
        outcome
    }

    /// `close()`: the pump is abandoned where it waits, as a coroutine closed there would
    /// be: the consumer gets `GeneratorExit` (what `sink.fail` gets from a closed
    /// coroutine), and the awaitable it delegates to is closed.
    fn abandon(&mut self, py: Python<'_>) {
        let state = std::mem::replace(&mut self.state, PumpState::Done);
        let inner = match state {
            PumpState::Item(inner) | PumpState::Closing(inner, _) => Some(inner),
            PumpState::Space(_) => {
                self.inlet.take_space();
                None
            }
            PumpState::Next | PumpState::Running | PumpState::Done => return,
        };
        if let Some(inner) = inner {
            let inner = inner.bind(py);
            if let Ok(close) = inner.getattr(pyo3::intern!(py, "close")) {
                if let Err(error) = close.call0() {
                    error.write_unraisable(py, Some(inner));
                }
            }
        }
        self.inlet.end(Some(PyGeneratorExit::new_err(())));
    }
}

#[pymethods]
impl StreamPump {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        returned_as_stop_iteration(py, Self::resume(slf, Input::Send(py.None().into_bound(py))))
    }

    fn send(slf: &Bound<'_, Self>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        returned_as_stop_iteration(slf.py(), Self::resume(slf, Input::Send(value)))
    }

    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        slf: &Bound<'_, Self>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let error = crate::errors::thrown(typ, val, tb)?;
        returned_as_stop_iteration(slf.py(), Self::resume(slf, Input::Throw(error)))
    }

    fn close(&mut self, py: Python<'_>) {
        self.abandon(py);
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.iterator)?;
        visit.call(&self.event_loop)?;
        match &self.state {
            PumpState::Item(inner) | PumpState::Space(inner) | PumpState::Closing(inner, _) => {
                visit.call(inner)
            }
            PumpState::Next | PumpState::Running | PumpState::Done => Ok(()),
        }
    }

    fn __clear__(&mut self) {
        if !matches!(self.state, PumpState::Running) {
            Python::attach(|py| self.abandon(py));
        }
    }
}

impl Drop for StreamPump {
    /// A pump collected in the middle of the iteration (its Task was abandoned on a closed
    /// loop) ends the stream as a closed coroutine would.
    fn drop(&mut self) {
        if matches!(
            self.state,
            PumpState::Item(_) | PumpState::Space(_) | PumpState::Closing(..)
        ) {
            Python::attach(|py| self.abandon(py));
        }
    }
}

/// `send`'s Python protocol: a returned value becomes `StopIteration`.
fn returned_as_stop_iteration(py: Python<'_>, step: PyResult<Step>) -> PyResult<Py<PyAny>> {
    match step? {
        Step::Yield(value) => Ok(value),
        Step::Return(value) => Err(crate::errors::stop_iteration(py, value)),
    }
}

/// One step's view of the pump.
struct Pump<'a, 'py> {
    iterator: &'a Bound<'py, PyAny>,
    inlet: &'a Inlet,
    event_loop: &'a Bound<'py, PyAny>,
    /// Items of this step not yet in the channel: they go in together (one lock), when
    /// `room` is used up, before the pump suspends, and when it ends.
    batch: RefCell<Vec<Py<PyAny>>>,
    /// How many items the channel had room for at the last push (1 at a step's start, so
    /// the first item finds out how full, or closed, the channel is).
    room: Cell<usize>,
}

/// How the `try` block of the pump ended.
enum Ended {
    /// Exhausted, or the consumer closed the stream.
    Normally,
    Raised(PyErr),
}

impl<'py> Pump<'_, 'py> {
    fn py(&self) -> Python<'py> {
        self.iterator.py()
    }

    /// Runs from `state` with `input` until the pump suspends or finishes; returns the new
    /// state and the step's outcome.
    fn run(&self, mut state: PumpState, mut input: Input<'py>) -> (PumpState, PyResult<Step>) {
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
    fn add(&self, item: Py<PyAny>) -> (bool, bool) {
        let mut batch = self.batch.borrow_mut();
        batch.push(item);
        if batch.len() < self.room.get() {
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
        let (room, closed) = self.inlet.push_items(&mut batch);
        self.room.set(room.max(1));
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
