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
//!                 if sink.woke_consumer:   # asyncio only: the consumer runs first
//!                     await asyncio.sleep(0)
//!                 await sink.space()       # done at once when closed, or with room
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

use std::sync::Arc;

use pyo3::exceptions::PyGeneratorExit;
use pyo3::prelude::*;

use crate::slots::Step;
use crate::stream::delegate::Input;
use crate::stream::from_python::Inlet;
use crate::stream::pump_step::Pump;

/// Where the pump is.
pub(crate) enum PumpState {
    /// Asks for the next item at its next step (the start, and after each item).
    Next,
    /// Delegating to the iterator of the awaitable `__anext__()` returned.
    Item(Py<PyAny>),
    /// Waiting for room: delegating to the iterator of `await space` (`wait_for_space`).
    Space(Py<PyAny>),
    /// Gave the loop one turn (a bare `yield`, as `asyncio.sleep(0)` does) when the buffer
    /// filled in a step that woke the consumer: the consumer is scheduled first and
    /// usually makes room, so the pump goes on without a `space` future (`Pump::run`).
    Yielded,
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
    /// Whether the pump's Task takes a bare `yield` (asyncio's do; trio's do not).
    may_yield: bool,
}

impl StreamPump {
    pub(crate) fn new(
        iterator: Py<PyAny>,
        inlet: Arc<Inlet>,
        event_loop: Py<PyAny>,
        may_yield: bool,
    ) -> Self {
        Self {
            iterator,
            inlet,
            event_loop,
            state: PumpState::Next,
            may_yield,
        }
    }

    pub(crate) fn resume(slf: &Bound<'_, Self>, input: Input<'_>) -> PyResult<Step> {
        let py = slf.py();
        let (state, iterator, inlet, event_loop, may_yield) = {
            let mut this = slf.borrow_mut();
            let state = std::mem::replace(&mut this.state, PumpState::Running);
            (
                state,
                this.iterator.clone_ref(py),
                this.inlet.clone(),
                this.event_loop.clone_ref(py),
                this.may_yield,
            )
        };
        let pump = Pump::new(iterator.bind(py), &inlet, event_loop.bind(py), may_yield);
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
            PumpState::Yielded => None,
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
            PumpState::Next | PumpState::Yielded | PumpState::Running | PumpState::Done => Ok(()),
        }
    }

    fn __clear__(&mut self) {
        if !matches!(self.state, PumpState::Running) {
            crate::forced_exit::attach(|py| self.abandon(py));
        }
    }
}

impl Drop for StreamPump {
    /// A pump collected in the middle of the iteration (its Task was abandoned on a closed
    /// loop) ends the stream as a closed coroutine would.
    fn drop(&mut self) {
        if matches!(
            self.state,
            PumpState::Item(_) | PumpState::Space(_) | PumpState::Yielded | PumpState::Closing(..)
        ) {
            crate::forced_exit::attach(|py| self.abandon(py));
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
