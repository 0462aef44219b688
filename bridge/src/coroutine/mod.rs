//! Rust future -> Python: the coroutine object `future_into_py` returns.
//!
//! The object is a real coroutine to Python (`__await__`, `send`, `throw`, `close`), so
//! `asyncio.run`, `create_task`, `gather` and `wait_for` accept it. Nothing happens until
//! it is first awaited; then, on the loop thread:
//!
//! 1. the future is polled once inline (inside the runtime's context); a future that is
//!    ready costs no thread hop and no asyncio future at all;
//! 2. a future still pending moves to its home: the runtime's workers (through the
//!    spawner, result back through a completion cell and the loop's wake queue) or the loop
//!    thread itself (re-polled from the wake queue when woken);
//! 3. the coroutine yields a small [`RustFutureWaiter`] to the Task; the loop's drain resolves it and
//!    calls the Task's wake-up directly.

#[cfg(all(not(Py_GIL_DISABLED), not(Py_LIMITED_API), not(PyPy)))]
pub(crate) mod freelist;
pub(crate) mod in_runtime;
pub(crate) mod on_loop_thread;
pub(crate) mod on_runtime;
pub(crate) mod send_slot;
pub(crate) mod send_start;
pub(crate) mod spare_box;

pub(crate) use in_runtime::{InRuntime, entered};
pub use on_loop_thread::local_future_into_py_with;
pub(crate) use on_loop_thread::loop_thread_coroutine;
pub(crate) use on_runtime::{Discard, Running, drive, interpreter_alive};
pub(crate) use send_slot::install_am_send;
pub(crate) use send_start::SendStart;
pub use send_start::future_into_py_with;

use std::any::type_name;

use pyo3::BoundObject;
use pyo3::exceptions::PyRuntimeWarning;
use pyo3::exceptions::PyTypeError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::no_stop_iteration;
use crate::errors::stop_iteration;
use crate::errors::thrown;
pub(crate) use crate::framework::Started;
use crate::gil_cell::GilCell;
use crate::slots::Step;
use crate::trio::TrioWait;
use crate::waiter::RustFutureWaiter;

/// A converted future not yet awaited.
pub(crate) trait Start: Send {
    fn start(self: Box<Self>, py: Python<'_>) -> PyResult<Started>;
}

/// The coroutine's state.
///
/// ```text
///            send/__next__ (step)                 step: result arrived
///  Created ----------------------> Running ------------------------------> Done
///     |                             |   ^  \  step: pending               ^  ^
///     |                             |   |   `-------------> Waiting ------'  |
///     |                             |   `--- step (Task resumes) ---'  |     |
///     |                             `-- start failed ------------------+-----'
///     `------------------------- close/throw ----------------------------'
/// ```
///
/// - `Created`: made by `future_into_py`, not awaited; dropped here it warns "never
///   awaited". Only `send(None)` is accepted.
/// - `Running`: inside a step (the first poll, or reading the waiter's outcome); a
///   re-entrant `send`, `close` or `throw` raises "coroutine already executing".
/// - `Waiting`: the future is pending in its home and the waiter was yielded to the Task;
///   a step reads the waiter's outcome (still pending: yield it again). `close`/`throw`
///   end it through `RustFutureWaiter::coroutine_finished`.
/// - `TrioWaiting`: the same under trio: the coroutine yielded trio's
///   `wait_task_rescheduled` message; trio resumes it by sending an `outcome`, which the
///   step unwraps.
/// - `Done`: returned, raised, or closed; a step raises "cannot reuse already awaited
///   coroutine".
enum State {
    Created(Exclusive<Box<dyn Start>>),
    Running,
    Waiting(Py<RustFutureWaiter>),
    TrioWaiting(Py<TrioWait>),
    Done,
}

/// Makes a `Send` value `Sync` by offering no shared access to it at all (pyclasses must
/// be `Sync`; the futures inside need not be).
struct Exclusive<T>(T);

// SAFETY: the field is private and only reached by value or through `&mut`, never through
// `&Exclusive`, so sharing `&Exclusive` between threads shares nothing.
unsafe impl<T: Send> Sync for Exclusive<T> {}

/// The coroutine object returned by `future_into_py`.
///
/// `frozen`, with its state in a `GilCell`: each step replaces the state with the GIL held
/// and no atomic borrow flag (a mutable pyclass pays an atomic compare-exchange per
/// borrow, two per ready await).
#[pyclass(frozen, name = "RustCoroutine", module = "pyo3_aio", weakref)]
pub struct RustCoroutine {
    state: GilCell<State>,
    name: &'static str,
    /// Whether dropping it unawaited warns, as a coroutine does (not for the awaitables
    /// the bridge returns in place of other kinds of objects, such as `aclose()`'s).
    warn_unawaited: bool,
}

impl RustCoroutine {
    pub(crate) fn new(start: Box<dyn Start>, name: &'static str) -> Self {
        Self {
            state: GilCell::new(State::Created(Exclusive(start))),
            name,
            warn_unawaited: true,
        }
    }

    /// This coroutine, made to stand in for an awaitable other than a coroutine: dropped
    /// unawaited, it says nothing.
    pub(crate) fn quiet(mut self) -> Self {
        self.warn_unawaited = false;
        self
    }

    /// Advances the coroutine: the object to yield to the Task, or the value to return.
    /// `sent` is what the resumer sent in (`None` for `__next__`); only trio's resume reads
    /// it (an `outcome`).
    pub(crate) fn step(&self, py: Python<'_>, sent: Option<&Bound<'_, PyAny>>) -> PyResult<Step> {
        // What the state held is dropped only after the cell is left (see `GilCell`); the
        // states replaced below hold nothing to drop (`Running`, `Done`).
        let started = match self.state.replace(py, State::Running) {
            State::Created(start) => start.0.start(py),
            State::Waiting(waiter) => {
                let outcome = waiter.borrow(py).outcome(py);
                match outcome {
                    Some(result) => Ok(Started::Ready(result)),
                    // Resumed before the result arrived (a stray send): keep waiting.
                    None => {
                        let yielded = waiter.clone_ref(py).into_any();
                        waiter.borrow_mut(py).rearm();
                        self.state.replace(py, State::Waiting(waiter));
                        return Ok(Step::Yield(yielded));
                    }
                }
            }
            State::TrioWaiting(wait) => {
                TrioWait::coroutine_finished(wait.bind(py));
                Ok(Started::Ready(crate::trio::unwrap_sent(sent)))
            }
            State::Running => {
                return Err(PyValueError::new_err("coroutine already executing"));
            }
            State::Done => {
                self.state.replace(py, State::Done);
                return Err(crate::errors::already_awaited());
            }
        };
        match started {
            Ok(Started::Ready(result)) => {
                self.state.replace(py, State::Done);
                result
                    .map(Step::Return)
                    .map_err(|error| no_stop_iteration(py, error))
            }
            Ok(Started::Waiting(waiter)) => {
                let yielded = waiter.clone_ref(py).into_any();
                self.state.replace(py, State::Waiting(waiter));
                Ok(Step::Yield(yielded))
            }
            Ok(Started::Trio { wait, message }) => {
                self.state.replace(py, State::TrioWaiting(wait));
                Ok(Step::Yield(message))
            }
            Err(error) => {
                self.state.replace(py, State::Done);
                Err(error)
            }
        }
    }

    /// Whether the state is `pattern`-like, read with the GIL held.
    fn state_is(&self, py: Python<'_>, test: impl FnOnce(&State) -> bool) -> bool {
        self.state.inspect(py, test)
    }

    /// A coroutine that has not started takes only `None`, as Python's do.
    pub(crate) fn check_sent(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if !value.is_none() && self.state_is(value.py(), |state| matches!(state, State::Created(_)))
        {
            return Err(PyTypeError::new_err(
                "can't send non-None value to a just-started coroutine",
            ));
        }
        Ok(())
    }

    /// `send(value)` as Python's protocol has it: a returned value becomes StopIteration.
    fn send_value(&self, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.check_sent(value)?;
        let py = value.py();
        match self.step(py, Some(value))? {
            Step::Yield(yielded) => Ok(yielded),
            Step::Return(value) => Err(stop_iteration(py, value)),
        }
    }

    /// `close()` or `throw()` from inside the coroutine's own step, as CPython refuses it.
    fn not_running(&self, py: Python<'_>) -> PyResult<()> {
        if self.state_is(py, |state| matches!(state, State::Running)) {
            return Err(PyValueError::new_err("coroutine already executing"));
        }
        Ok(())
    }

    /// Ends the coroutine from outside (`close`, `throw`): the Rust future is dropped and
    /// a Task waiting on it is woken to find the coroutine finished.
    fn finish(&self, py: Python<'_>) {
        match self.state.replace(py, State::Done) {
            State::Waiting(waiter) => RustFutureWaiter::coroutine_finished(waiter.bind(py)),
            State::TrioWaiting(wait) => TrioWait::coroutine_finished(wait.bind(py)),
            _ => {}
        }
    }
}

#[pymethods]
impl RustCoroutine {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.send_value(&py.None().into_bound(py))
    }

    fn send(&self, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.send_value(value)
    }

    /// Raises the given exception here: the Rust future is dropped first.
    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = typ.py();
        self.not_running(py)?;
        // As CPython's coroutines: a finished one refuses, whatever is thrown in.
        if self.state_is(py, |state| matches!(state, State::Done)) {
            return Err(crate::errors::already_awaited());
        }
        self.finish(py);
        Err(thrown(typ, val, tb)?)
    }

    /// Drops the Rust future; awaiting afterwards raises RuntimeError.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.not_running(py)?;
        self.finish(py);
        Ok(())
    }

    #[getter]
    fn __name__(&self) -> &'static str {
        short_name(self.name)
    }

    #[getter]
    fn __qualname__(&self) -> &'static str {
        short_name(self.name)
    }

    #[getter]
    fn cr_running(&self, py: Python<'_>) -> bool {
        self.state_is(py, |state| matches!(state, State::Running))
    }

    /// Whether it waits for its Rust future (3.11's `cr_suspended`).
    #[getter]
    fn cr_suspended(&self, py: Python<'_>) -> bool {
        self.state_is(py, |state| {
            matches!(state, State::Waiting(_) | State::TrioWaiting(_))
        })
    }

    /// A stand-in frame while not finished (see `introspect.rs`), `None` once finished, as
    /// `inspect.getcoroutinestate` reads it.
    #[getter]
    fn cr_frame(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let started = self.state.inspect(py, |state| match state {
            State::Created(_) => Some(false),
            State::Running | State::Waiting(_) | State::TrioWaiting(_) => Some(true),
            State::Done => None,
        });
        let Some(started) = started else {
            return Ok(None);
        };
        let frame = crate::introspect::RustFrame::new(py, short_name(self.name), started)?;
        Ok(Some(Py::new(py, frame)?.into_any()))
    }

    /// `None`: there is no Python code; asyncio then shows the coroutine by name.
    #[getter]
    fn cr_code(&self) -> Option<Py<PyAny>> {
        None
    }

    /// `None`, as for coroutines created without origin tracking.
    #[getter]
    fn cr_origin(&self) -> Option<Py<PyAny>> {
        None
    }

    #[getter]
    fn cr_await(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state.inspect(py, |state| match state {
            State::Waiting(waiter) => Some(waiter.clone_ref(py).into_any()),
            State::TrioWaiting(wait) => Some(wait.clone_ref(py).into_any()),
            _ => None,
        })
    }

    fn __repr__(&self) -> String {
        format!("<RustCoroutine {}>", short_name(self.name))
    }

    /// The waiter is the one Python object a coroutine holds; its Task holds the coroutine
    /// and the waiter holds the Task's wake-up, so the garbage collector must see this edge
    /// to collect a Task abandoned on a closed loop.
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        self.state.inspect_for_gc(|state| match state {
            State::Waiting(waiter) => visit.call(waiter),
            State::TrioWaiting(wait) => visit.call(wait),
            _ => Ok(()),
        })
    }

    fn __clear__(&self, py: Python<'_>) {
        let waiting = self.state_is(py, |state| {
            matches!(state, State::Waiting(_) | State::TrioWaiting(_))
        });
        if waiting {
            // Dropping the waiter (after the cell is left) cancels the Rust future.
            drop(self.state.replace(py, State::Done));
        }
    }
}

impl Drop for RustCoroutine {
    fn drop(&mut self) {
        if self.warn_unawaited && matches!(self.state.get_mut(), State::Created(_)) {
            let name = short_name(self.name);
            crate::forced_exit::attach(|py| {
                let message =
                    std::ffi::CString::new(format!("coroutine '{name}' was never awaited"))
                        .unwrap_or_default();
                let category = py.get_type::<PyRuntimeWarning>();
                if let Err(error) = PyErr::warn(py, &category, &message, 1) {
                    error.write_unraisable(py, None);
                }
            });
        }
    }
}

/// The function name inside a future's type name (`crate::module::fetch::{{closure}}` ->
/// `fetch`).
pub(crate) fn short_name(full: &'static str) -> &'static str {
    let trimmed = full.split('<').next().unwrap_or(full);
    trimmed
        .rsplit("::")
        .find(|part| !part.starts_with('{') && !part.is_empty())
        .unwrap_or(full)
}

pub(crate) fn future_name<F>() -> &'static str {
    type_name::<F>()
}

/// Converts a future's output on the loop thread. `()` becomes `None`, as a Python
/// function without a return value gives (PyO3 turns `()` into an empty tuple elsewhere).
pub(crate) fn to_python<T>(py: Python<'_>, result: PyResult<T>) -> PyResult<Py<PyAny>>
where
    T: for<'py> IntoPyObject<'py> + 'static,
{
    let value = result?;
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<()>() {
        return Ok(py.None());
    }
    value
        .into_pyobject(py)
        .map(|bound| bound.into_any().unbind())
        .map_err(Into::into)
}

thread_local! {
    /// How many times a [`PyFuture`](crate::PyFuture) polled on its own loop's thread was
    /// left pending: `Home::Auto`'s first poll compares it before and after.
    static PYTHON_WAITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn python_waits() -> u64 {
    PYTHON_WAITS.with(std::cell::Cell::get)
}

/// Counts a wait on Python work of the loop running on this thread (see `Home::Auto`).
pub(crate) fn note_python_wait() {
    PYTHON_WAITS.with(|waits| waits.set(waits.get().wrapping_add(1)));
}

#[cfg(test)]
mod tests {
    use super::short_name;

    #[test]
    fn short_name_keeps_the_last_named_segment() {
        assert_eq!(short_name("crate::module::fetch::{{closure}}"), "fetch");
        assert_eq!(short_name("crate::module::fetch"), "fetch");
        assert_eq!(short_name("fetch"), "fetch");
    }

    #[test]
    fn short_name_strips_generic_parameters() {
        assert_eq!(
            short_name("crate::module::fetch<alloc::string::String>::{{closure}}"),
            "fetch"
        );
        assert_eq!(
            short_name("core::future::ready::Ready<core::result::Result<i32, E>>"),
            "Ready"
        );
        assert_eq!(
            short_name("crate::outer::{{closure}}::{{closure}}<u8>"),
            "outer"
        );
    }

    #[test]
    fn short_name_falls_back_to_the_full_name() {
        assert_eq!(short_name("{{closure}}"), "{{closure}}");
        assert_eq!(short_name(""), "");
    }
}
