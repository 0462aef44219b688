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
//! 3. the coroutine yields a small [`Waiter`] to the Task; the loop's drain resolves it and
//!    calls the Task's wake-up directly.

use std::any::type_name;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use pyo3::BoundObject;
use pyo3::exceptions::{
    PyRuntimeError, PyRuntimeWarning, PyStopIteration, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use pyo3_aio_core::{Closed, Consumer, Producer, Spawner, completion};

use crate::event_loop::{
    Held, LoopRef, Resume, lock, loop_shared, register_running_loop, running_loop, wake_on_loop,
};
use crate::locals::{LocalsSlot, fill, scoped};
use crate::panic::poll_catching;
use crate::thread_bound::ThreadBound;
use crate::waiter::{Source, Waiter, producer_dropped, resolve, resolve_with};

/// Where a converted future that is still pending after its first poll lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Home {
    /// Decided by the inline first poll (the default): a future left pending on Python
    /// work of its own loop (an [`into_future`](crate::into_future) of a coroutine it
    /// started there) stays on the loop thread, like [`Home::LoopThread`], so every
    /// round trip to Python is a plain call with no thread hop; any other pending future
    /// goes to the runtime, like [`Home::Runtime`]. The choice is made once: a future that
    /// awaits Python first and then does heavy synchronous work should ask for
    /// [`Home::Runtime`]. With [`FirstPoll::Deferred`] there is no first poll to decide
    /// from, and the future goes to the runtime.
    #[default]
    Auto,
    /// On the runtime's worker threads: parallel, polled without the GIL. Best for futures
    /// that do CPU work or mostly wait on Rust I/O.
    Runtime,
    /// On the event loop's thread, re-polled when woken: no thread hop. Best for futures
    /// that mostly await Python or finish quickly. (`!Send` futures always live here.)
    LoopThread,
}

/// Whether the first poll happens inline, on the loop thread, when first awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstPoll {
    /// Poll once inline while holding the GIL: a future that is ready at once costs no
    /// thread hop. The default.
    #[default]
    Inline,
    /// Hand the future to its home without polling it: use this when the future does
    /// heavy synchronous work before its first `.await`, which would otherwise run on the
    /// loop thread with the GIL held.
    Deferred,
}

/// Per-call options of `future_into_py_with`.
///
/// ```
/// use pyo3_aio::{FirstPoll, Home, Options};
///
/// let options = Options::default().home(Home::LoopThread).first_poll(FirstPoll::Deferred);
/// assert_eq!(options, Options { home: Home::LoopThread, first_poll: FirstPoll::Deferred });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Where the future lives while pending.
    pub home: Home,
    /// Whether it is polled inline when first awaited.
    pub first_poll: FirstPoll,
}

impl Options {
    /// Sets [`Options::home`].
    pub fn home(mut self, home: Home) -> Self {
        self.home = home;
        self
    }

    /// Sets [`Options::first_poll`].
    pub fn first_poll(mut self, first_poll: FirstPoll) -> Self {
        self.first_poll = first_poll;
        self
    }
}

/// What the first await of a coroutine produced.
pub(crate) enum Started {
    Ready(PyResult<Py<PyAny>>),
    Waiting(Py<Waiter>),
}

/// A converted future not yet awaited.
pub(crate) trait Start: Send {
    fn start(self: Box<Self>, py: Python<'_>) -> PyResult<Started>;
}

enum State {
    Created(Exclusive<Box<dyn Start>>),
    Running,
    Waiting(Py<Waiter>),
    Done,
}

/// Makes a `Send` value `Sync` by offering no shared access to it at all (pyclasses must
/// be `Sync`; the futures inside need not be).
struct Exclusive<T>(T);

// SAFETY: the field is private and only reached by value or through `&mut`, never through
// `&Exclusive`, so sharing `&Exclusive` between threads shares nothing.
unsafe impl<T: Send> Sync for Exclusive<T> {}

/// The exception `throw(typ, val, tb)` raises, built as generators do: an exception
/// instance as given, or the class called with `val`; `tb` becomes its traceback.
pub(crate) fn thrown(
    typ: &Bound<'_, PyAny>,
    val: Option<&Bound<'_, PyAny>>,
    tb: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyErr> {
    let error = if let Ok(class) = typ.cast::<PyType>() {
        let instance = match val {
            Some(value) if value.is_instance(class)? => value.clone(),
            Some(value) if !value.is_none() => class.call1((value,))?,
            _ => class.call0()?,
        };
        PyErr::from_value(instance)
    } else {
        PyErr::from_value(typ.clone())
    };
    if let Some(traceback) = tb.filter(|tb| !tb.is_none()) {
        error
            .value(typ.py())
            .call_method1("with_traceback", (traceback,))?;
    }
    Ok(error)
}

/// PEP 479 for Rust futures: a `StopIteration` error would read as a return value to
/// whoever resumes the coroutine, so it becomes a `RuntimeError` with it as the cause, as
/// in a Python coroutine.
pub(crate) fn no_stop_iteration(py: Python<'_>, error: PyErr) -> PyErr {
    if !error.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) {
        return error;
    }
    let replaced = PyRuntimeError::new_err("coroutine raised StopIteration");
    replaced.set_cause(py, Some(error));
    replaced
}

/// What one step of the coroutine produced.
pub(crate) enum Step {
    /// Suspend: hand this (the waiter) to the Task.
    Yield(Py<PyAny>),
    /// Finish with this value.
    Return(Py<PyAny>),
}

/// `StopIteration(value)`, built as an instance so a tuple value is not taken as args.
fn stop_iteration(py: Python<'_>, value: Py<PyAny>) -> PyErr {
    match py.get_type::<PyStopIteration>().call1((value,)) {
        Ok(instance) => PyErr::from_value(instance),
        Err(error) => error,
    }
}

/// Python 3.10+ `am_send`: `await` and the Task resume the coroutine through this slot,
/// which returns the result directly instead of raising `StopIteration` (the slow part
/// of finishing a non-generator awaitable). PyO3 has no `#[pymethods]` name for the slot,
/// so [`install_am_send`] puts it on the type once.
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn am_send(
    slf: *mut pyo3::ffi::PyObject,
    arg: *mut pyo3::ffi::PyObject,
    result: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    // SAFETY: CPython calls type slots with the thread attached to the interpreter.
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: CPython passes valid borrowed references for `slf` and `arg` (`arg` may
        // be NULL for "send None").
        let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
        let this = this.cast::<RustCoroutine>()?;
        if !arg.is_null() {
            // SAFETY: as above.
            RustCoroutine::check_sent(this, &unsafe { Bound::from_borrowed_ptr(py, arg) })?;
        }
        RustCoroutine::step(this)
    }));
    let outcome = outcome.unwrap_or_else(|payload| Err(crate::panic::panic_to_pyerr(payload)));
    // SAFETY: `result` is the out-pointer CPython passed to this slot.
    unsafe { send_result(py, outcome, result) }
}

/// Hands an `am_send` outcome to CPython: the value through `result`, or the error set as
/// the current exception.
///
/// # Safety
///
/// `result` must be the valid out-pointer CPython passed to the `am_send` slot.
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
pub(crate) unsafe fn send_result(
    py: Python<'_>,
    outcome: PyResult<Step>,
    result: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    use pyo3::ffi::PySendResult;
    let (value, status) = match outcome {
        Ok(Step::Yield(value)) => (value.into_ptr(), PySendResult::PYGEN_NEXT),
        Ok(Step::Return(value)) => (value.into_ptr(), PySendResult::PYGEN_RETURN),
        Err(error) => {
            error.restore(py);
            (std::ptr::null_mut(), PySendResult::PYGEN_ERROR)
        }
    };
    // SAFETY: the caller guarantees `result` is valid for writes.
    unsafe { *result = value };
    status
}

/// Puts [`am_send`] on the `RustCoroutine` type, once per process (and registers the
/// classes with the shared `pyo3_aio` module).
pub(crate) fn install_am_send(py: Python<'_>) {
    crate::shared::register_types(py);
    #[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
    {
        static INSTALLED: PyOnceLock<()> = PyOnceLock::new();
        install_send_slot::<RustCoroutine>(py, &INSTALLED, am_send);
    }
    #[cfg(not(all(Py_3_10, not(Py_LIMITED_API), not(PyPy))))]
    let _ = py;
}

/// The `am_await` slot of types whose `__await__` returns the object itself.
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
unsafe extern "C" fn await_self(slf: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    // SAFETY: CPython passes a valid object; the slot returns a new reference to it.
    unsafe { pyo3::ffi::Py_NewRef(slf) }
}

/// Sets the `am_send` slot of pyclass `T`'s type to `send`, once (`installed` guards it).
#[cfg(all(Py_3_10, not(Py_LIMITED_API), not(PyPy)))]
pub(crate) fn install_send_slot<T: pyo3::PyTypeInfo>(
    py: Python<'_>,
    installed: &PyOnceLock<()>,
    send: pyo3::ffi::sendfunc,
) {
    installed.get_or_init(py, || {
        let class = py.get_type::<T>();
        let type_object = class.as_type_ptr();
        // SAFETY: `type_object` is the heap type PyO3 created for `T`; its `tp_as_async`
        // points into that heap type (`T` defines `__await__`, so the table exists).
        // Writing a slot and then calling PyType_Modified is how slots are changed after
        // creation; we hold the GIL, so no one reads it meanwhile.
        unsafe {
            let methods = (*type_object).tp_as_async;
            if !methods.is_null() {
                (*methods).am_send = Some(send);
                // `__await__` returns the object itself: a plain C slot does that without
                // the trampoline of a Python-visible method.
                (*methods).am_await = Some(await_self);
                pyo3::ffi::PyType_Modified(type_object);
            }
        }
    });
}

/// The coroutine object returned by `future_into_py`.
#[pyclass(name = "RustCoroutine", module = "pyo3_aio", weakref)]
pub struct RustCoroutine {
    state: State,
    name: &'static str,
}

impl RustCoroutine {
    pub(crate) fn new(start: Box<dyn Start>, name: &'static str) -> Self {
        Self {
            state: State::Created(Exclusive(start)),
            name,
        }
    }

    /// Advances the coroutine: the object to yield to the Task, or the value to return.
    fn step(slf: &Bound<'_, Self>) -> PyResult<Step> {
        let py = slf.py();
        let state = std::mem::replace(&mut slf.borrow_mut().state, State::Running);
        let started = match state {
            State::Created(start) => start.0.start(py),
            State::Waiting(waiter) => {
                let outcome = waiter.borrow(py).outcome(py);
                match outcome {
                    Some(result) => Ok(Started::Ready(result)),
                    // Resumed before the result arrived (a stray send): keep waiting.
                    None => {
                        let yielded = waiter.clone_ref(py).into_any();
                        waiter.borrow_mut(py).rearm();
                        slf.borrow_mut().state = State::Waiting(waiter);
                        return Ok(Step::Yield(yielded));
                    }
                }
            }
            State::Running => {
                return Err(PyValueError::new_err("coroutine already executing"));
            }
            State::Done => {
                slf.borrow_mut().state = State::Done;
                return Err(PyRuntimeError::new_err(
                    "cannot reuse already awaited coroutine",
                ));
            }
        };
        match started {
            Ok(Started::Ready(result)) => {
                slf.borrow_mut().state = State::Done;
                result
                    .map(Step::Return)
                    .map_err(|error| no_stop_iteration(py, error))
            }
            Ok(Started::Waiting(waiter)) => {
                let yielded = waiter.clone_ref(py).into_any();
                slf.borrow_mut().state = State::Waiting(waiter);
                Ok(Step::Yield(yielded))
            }
            Err(error) => {
                slf.borrow_mut().state = State::Done;
                Err(error)
            }
        }
    }

    /// A coroutine that has not started takes only `None`, as Python's do.
    fn check_sent(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if !value.is_none() && matches!(slf.borrow().state, State::Created(_)) {
            return Err(PyTypeError::new_err(
                "can't send non-None value to a just-started coroutine",
            ));
        }
        Ok(())
    }

    /// `send(value)` as Python's protocol has it: a returned value becomes StopIteration.
    fn send_value(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Self::check_sent(slf, value)?;
        match Self::step(slf)? {
            Step::Yield(yielded) => Ok(yielded),
            Step::Return(value) => Err(stop_iteration(slf.py(), value)),
        }
    }

    /// `close()` or `throw()` from inside the coroutine's own step, as CPython refuses it.
    fn not_running(slf: &Bound<'_, Self>) -> PyResult<()> {
        if matches!(slf.borrow().state, State::Running) {
            return Err(PyValueError::new_err("coroutine already executing"));
        }
        Ok(())
    }

    /// Ends the coroutine from outside (`close`, `throw`): the Rust future is dropped and
    /// a Task waiting on it is woken to find the coroutine finished.
    fn finish(slf: &Bound<'_, Self>) {
        let state = std::mem::replace(&mut slf.borrow_mut().state, State::Done);
        if let State::Waiting(waiter) = state {
            Waiter::coroutine_finished(waiter.bind(slf.py()));
        }
    }
}

#[pymethods]
impl RustCoroutine {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::send_value(slf, &slf.py().None().into_bound(slf.py()))
    }

    fn send(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Self::send_value(slf, value)
    }

    /// Raises the given exception here: the Rust future is dropped first.
    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        slf: &Bound<'_, Self>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        Self::not_running(slf)?;
        // As CPython's coroutines: a finished one refuses, whatever is thrown in.
        if matches!(slf.borrow().state, State::Done) {
            return Err(PyRuntimeError::new_err(
                "cannot reuse already awaited coroutine",
            ));
        }
        Self::finish(slf);
        Err(thrown(typ, val, tb)?)
    }

    /// Drops the Rust future; awaiting afterwards raises RuntimeError.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::not_running(slf)?;
        Self::finish(slf);
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
    fn cr_running(&self) -> bool {
        matches!(self.state, State::Running)
    }

    /// Whether it waits for its Rust future (3.11's `cr_suspended`).
    #[getter]
    fn cr_suspended(&self) -> bool {
        matches!(self.state, State::Waiting(_))
    }

    /// A stand-in frame while not finished (see `introspect.rs`), `None` once finished, as
    /// `inspect.getcoroutinestate` reads it.
    #[getter]
    fn cr_frame(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let started = match self.state {
            State::Created(_) => false,
            State::Running | State::Waiting(_) => true,
            State::Done => return Ok(None),
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
        match &self.state {
            State::Waiting(waiter) => Some(waiter.clone_ref(py).into_any()),
            _ => None,
        }
    }

    fn __repr__(&self) -> String {
        format!("<RustCoroutine {}>", short_name(self.name))
    }

    /// The waiter is the one Python object a coroutine holds; its Task holds the coroutine
    /// and the waiter holds the Task's wake-up, so the garbage collector must see this edge
    /// to collect a Task abandoned on a closed loop.
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let State::Waiting(waiter) = &self.state {
            visit.call(waiter)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        if let State::Waiting(_) = self.state {
            // Dropping the waiter cancels the Rust future (Waiter's Drop).
            self.state = State::Done;
        }
    }
}

impl Drop for RustCoroutine {
    fn drop(&mut self) {
        if matches!(self.state, State::Created(_)) {
            let name = short_name(self.name);
            Python::attach(|py| {
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

/// Runs `work` inside `spawner`'s runtime context (tokio's timers and I/O need it on a
/// thread that is not one of the runtime's) and returns what it returned.
pub(crate) fn entered<R>(spawner: &(impl Spawner + ?Sized), work: impl FnOnce() -> R) -> R {
    let mut work = Some(work);
    let mut output = None;
    spawner.enter(&mut || {
        if let Some(work) = work.take() {
            output = Some(work());
        }
    });
    // A spawner that does not call the closure (it has no context to enter) still runs it.
    output.unwrap_or_else(|| work.take().map(|work| work()).expect("runs once"))
}

/// [`entered`] for a first poll: the runtime's `RuntimeError` instead of running `work` when
/// the runtime cannot run futures here (one step with entering, see
/// [`Spawner::enter_usable`]).
fn entered_if_usable<R>(
    spawner: &(impl Spawner + ?Sized),
    work: impl FnOnce() -> R,
) -> PyResult<R> {
    let mut work = Some(work);
    let mut output = None;
    spawner
        .enter_usable(&mut || {
            if let Some(work) = work.take() {
                output = Some(work());
            }
        })
        .map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
    Ok(output.unwrap_or_else(|| work.take().map(|work| work()).expect("runs once")))
}

pin_project_lite::pin_project! {
    /// A future or stream polled inside its runtime's context: a `!Send` one lives on the
    /// loop thread, where tokio's timers and I/O would find no runtime otherwise.
    pub(crate) struct InRuntime<S, F> {
        spawner: S,
        #[pin]
        inner: F,
    }
}

impl<S, F> InRuntime<S, F> {
    pub(crate) fn new(spawner: S, inner: F) -> Self {
        Self { spawner, inner }
    }
}

/// A runtime that cannot run futures here (shut down, or inherited through `fork()`) as
/// the `RuntimeError` a conversion raises, rather than letting a poll outside any runtime
/// context fail with the runtime's own panic.
fn refuse_unusable(spawner: &impl Spawner) -> PyResult<()> {
    spawner
        .usable()
        .map_err(|error| PyRuntimeError::new_err(error.to_string()))
}

impl<S: Spawner, F: Future<Output = PyResult<T>>, T> Future for InRuntime<S, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        refuse_unusable(this.spawner)?;
        entered(this.spawner, || this.inner.poll(cx))
    }
}

impl<S: Spawner, St: futures_core::Stream<Item = PyResult<T>>, T> futures_core::Stream
    for InRuntime<S, St>
{
    type Item = St::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<St::Item>> {
        let this = self.project();
        if let Err(error) = refuse_unusable(this.spawner) {
            return Poll::Ready(Some(Err(error)));
        }
        entered(this.spawner, || this.inner.poll_next(cx))
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

/// The running loop, or the error for awaiting a pending future outside one.
fn require_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    running_loop(py)?.ok_or_else(|| {
        crate::locals::no_running_loop(
            py,
            "no running event loop: await this coroutine from asyncio (asyncio.run, a Task, \
             or another coroutine running on a loop)",
        )
    })
}

// ---------------------------------------------------------------------------------------
// Send futures

pin_project_lite::pin_project! {
    /// A `Send` future not yet awaited, with what its first await needs. The future is held
    /// inline, and this box is what later runs it, on the runtime (`drive`) or on the loop
    /// thread, so a conversion costs one allocation for both.
    pub(crate) struct SendStart<F, T, S> {
        #[pin]
        future: pyo3_aio_core::scope::Scope<LocalsSlot, F>,
        slot: LocalsSlot,
        spawner: S,
        options: Options,
        // Polled outside the runtime (on the loop thread): each poll enters its context,
        // which tokio timers and I/O need there as much as on a worker.
        outside: bool,
        _output: std::marker::PhantomData<fn() -> T>,
    }
}

impl<F, T, S> SendStart<F, T, S>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
    S: Spawner + Clone,
{
    pub(crate) fn new(future: F, spawner: S, options: Options) -> Self {
        let slot: LocalsSlot = Arc::new(OnceLock::new());
        Self {
            future: scoped(slot.clone(), future),
            slot,
            spawner,
            options,
            outside: false,
            _output: std::marker::PhantomData,
        }
    }

    /// Gives the future `locals` up front, instead of those of the loop that first awaits
    /// it.
    pub(crate) fn set_locals(&self, locals: crate::TaskLocals) {
        let _ = self.slot.set(locals);
    }

    /// The inline first poll: inside the runtime's context, catching a panic, or the
    /// runtime's `RuntimeError` when it cannot run futures here (nothing polled then).
    pub(crate) fn poll_first(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> PyResult<Poll<F::Output>> {
        let this = self.project();
        entered_if_usable(this.spawner, || poll_catching(this.future, cx))
    }
}

impl<F: Future, T, S: Spawner> SendStart<F, T, S> {
    /// Polls the future inside its runtime's context.
    fn poll_entered(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        entered(this.spawner, || this.future.poll(cx))
    }
}

impl<F: Future, T, S: Spawner> Future for SendStart<F, T, S> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.outside {
            self.poll_entered(cx)
        } else {
            self.project().future.poll(cx)
        }
    }
}

/// The future, to live on the loop thread: polled there inside its runtime's context, and
/// droppable anywhere (it is `Send`).
fn on_loop_thread<F, T, S>(
    mut this: Pin<Box<SendStart<F, T, S>>>,
) -> ThreadBound<Pin<Box<SendStart<F, T, S>>>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
    S: Spawner,
{
    *this.as_mut().project().outside = true;
    ThreadBound::new_send(this)
}

impl<F, T, S> Start for SendStart<F, T, S>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
    S: Spawner + Clone,
{
    fn start(self: Box<Self>, py: Python<'_>) -> PyResult<Started> {
        // A runtime that cannot work here (shut down for good, or inherited through fork)
        // says why before anything polls the future, rather than leaving it to hang.
        let mut this = Box::into_pin(self);
        let options = this.options;
        if options.home == Home::LoopThread {
            refuse_unusable(&this.spawner)?;
            let slot = this.slot.clone();
            return start_on_loop_thread(py, on_loop_thread(this), slot, options.first_poll.into());
        }
        // Register the running loop before user code runs, so that `into_future` called
        // from a task this future spawns finds it as "the one running loop".
        register_running_loop(py)?;
        if options.first_poll == FirstPoll::Inline {
            let waits_before = python_waits();
            // A no-op waker: whichever home the future gets polls it again with its own
            // waker before it waits (the runtime on spawn, the loop thread at once).
            let polled = this
                .as_mut()
                .poll_first(&mut Context::from_waker(Waker::noop()))?;
            if let Poll::Ready(result) = polled {
                return Ok(Started::Ready(to_python(py, result)));
            }
            if options.home == Home::Auto && python_waits() != waits_before {
                // Pending on Python work of this loop: it stays here (see `Home::Auto`). Any
                // wake the no-op waker swallowed happened before this second poll, which sees
                // its effect; no Python code ran in between.
                let slot = this.slot.clone();
                return start_on_loop_thread(py, on_loop_thread(this), slot, Begin::Inline);
            }
        } else {
            refuse_unusable(&this.spawner)?;
        }
        let event_loop = require_loop(py)?;
        fill(py, &this.slot, &event_loop)?;
        let shared = loop_shared(py, &event_loop)?;
        let (producer, consumer) = completion::<PyResult<T>>();
        let spawner = this.spawner.clone();
        let running = Running::new(this);
        let source = Arc::new(SpawnedSource {
            consumer: Mutex::new(consumer),
            runtime: spawner.name(),
            running: Some(running.clone()),
            waker: OnceLock::new(),
        });
        let waiter = Py::new(py, Waiter::new(event_loop.unbind(), source.clone()))?;
        let notify = Arc::new(Notify {
            shared: Arc::downgrade(&shared),
            waiter: Held::new(waiter.clone_ref(py)),
            queued: AtomicBool::new(false),
        });
        let tracked: std::sync::Weak<dyn Resume> = Arc::downgrade(&notify) as _;
        shared.track(py, tracked);
        let waker = Waker::from(notify);
        let registered = source
            .consumer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .poll_result(&mut Context::from_waker(&waker));
        debug_assert!(registered.is_pending(), "nothing was spawned yet");
        let _ = source.waker.set(waker);
        spawner
            .spawn(Box::pin(drive(running, producer)))
            .map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
        Ok(Started::Waiting(waiter))
    }
}

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

impl<F> Dispose for pyo3_aio_core::scope::Scope<LocalsSlot, F> {
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
}

impl<F: Dispose> Running<F> {
    pub(crate) fn new(future: Pin<Box<F>>) -> Arc<Self> {
        Arc::new(Self {
            future: Mutex::new(Some(future)),
            gone: AtomicBool::new(false),
            on_gone: Mutex::new(None),
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
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.dispose()));
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
}

impl<F: Dispose + Send> Discard for Running<F> {
    fn discard(&self) -> bool {
        if self.gone.load(Ordering::Acquire) {
            return true;
        }
        let future = match self.future.try_lock() {
            Ok(mut future) => future.take(),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner().take(),
            Err(std::sync::TryLockError::WouldBlock) => return false,
        };
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
        let taken = self
            .consumer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_take()?;
        Some(match taken {
            Ok(result) => to_python(py, result),
            Err(Closed::ProducerDropped) => Err(producer_dropped(self.runtime)),
            Err(closed) => Err(PyRuntimeError::new_err(closed.to_string())),
        })
    }

    fn cancel(&self, _py: Python<'_>) -> bool {
        self.consumer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cancel()
    }

    fn arrived(&self) -> Option<bool> {
        Some(
            self.consumer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_complete(),
        )
    }

    fn discard(&self) {
        if let Some(running) = &self.running {
            running.discard();
        }
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

/// The waker of a spawned future's consumer: queues the waiter for resolution.
struct Notify {
    shared: LoopRef,
    waiter: Held<Waiter>,
    queued: AtomicBool,
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        wake_on_loop(self, &self.shared, &self.queued);
    }
}

impl Resume for Notify {
    fn resume(self: Arc<Self>, py: Python<'_>) {
        self.queued.store(false, Ordering::Release);
        if let Some(waiter) = self.waiter.get(py) {
            resolve(py, waiter.bind(py));
        }
    }

    fn abandon(&self) {
        self.waiter.release();
    }

    fn loop_closed(&self, py: Python<'_>) {
        if let Some(waiter) = self.waiter.take() {
            Waiter::loop_closed(waiter.bind(py));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Futures living on the loop thread (all `!Send` ones, and Send ones by choice)

pub(crate) struct LocalStart<F> {
    future: ThreadBound<Pin<Box<pyo3_aio_core::scope::Scope<LocalsSlot, F>>>>,
    slot: LocalsSlot,
    first_poll: FirstPoll,
}

impl<F: Future> LocalStart<F> {
    pub(crate) fn new(future: F, first_poll: FirstPoll) -> Self {
        let slot: LocalsSlot = Arc::new(OnceLock::new());
        Self {
            future: ThreadBound::new(Box::pin(scoped(slot.clone(), future))),
            slot,
            first_poll,
        }
    }
}

impl<F, T> Start for LocalStart<F>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    fn start(self: Box<Self>, py: Python<'_>) -> PyResult<Started> {
        let mut this = *self;
        if this.future.get_mut().is_none() {
            return Err(PyRuntimeError::new_err(
                "a !Send Rust future was awaited on another thread than the one that created it",
            ));
        }
        start_on_loop_thread(py, this.future, this.slot, this.first_poll.into())
    }
}

/// How a future starts its life on the loop thread.
enum Begin {
    /// Poll it now (`FirstPoll::Inline`).
    Inline,
    /// Poll it on the next drain (`FirstPoll::Deferred`).
    Deferred,
}

impl From<FirstPoll> for Begin {
    fn from(first_poll: FirstPoll) -> Self {
        match first_poll {
            FirstPoll::Inline => Begin::Inline,
            FirstPoll::Deferred => Begin::Deferred,
        }
    }
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

fn start_on_loop_thread<F, T>(
    py: Python<'_>,
    future: ThreadBound<Pin<Box<F>>>,
    slot: LocalsSlot,
    begin: Begin,
) -> PyResult<Started>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    let event_loop = require_loop(py)?;
    let shared = loop_shared(py, &event_loop)?;
    let task = Arc::new(LocalTask {
        shared: Arc::downgrade(&shared),
        queued: AtomicBool::new(false),
        state: Mutex::new(LocalState {
            future: Some(future),
            waiter: None,
            cancelled: false,
        }),
        _output: std::marker::PhantomData,
    });
    match begin {
        Begin::Inline => {
            if let Poll::Ready(result) = task.poll(py) {
                return Ok(Started::Ready(result));
            }
        }
        Begin::Deferred => task.wake_by_ref(),
    }
    let tracked: std::sync::Weak<dyn Resume> = Arc::downgrade(&task) as _;
    shared.track(py, tracked);
    fill(py, &slot, &event_loop)?;
    let waiter = Py::new(py, Waiter::new(event_loop.unbind(), task.clone()))?;
    task.lock().waiter = Some(waiter.clone_ref(py));
    Ok(Started::Waiting(waiter))
}

struct LocalState<F: ?Sized> {
    future: Option<ThreadBound<Pin<Box<F>>>>,
    waiter: Option<Py<Waiter>>,
    cancelled: bool,
}

struct LocalTask<F: ?Sized, T> {
    shared: LoopRef,
    queued: AtomicBool,
    state: Mutex<LocalState<F>>,
    _output: std::marker::PhantomData<fn() -> T>,
}

impl<F, T> LocalTask<F, T>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState<F>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Polls the future on the loop thread. The lock is not held while polling, so the
    /// future may cancel its own waiter.
    fn poll(self: &Arc<Self>, py: Python<'_>) -> Poll<PyResult<Py<PyAny>>> {
        self.queued.store(false, Ordering::Release);
        let Some(mut bound) = self.lock().future.take() else {
            return Poll::Pending;
        };
        let Some(future) = bound.get_mut() else {
            // Not the owner thread: cannot happen for items drained by the loop thread.
            self.lock().future = Some(bound);
            return Poll::Pending;
        };
        let waker = Waker::from(self.clone());
        let polled = poll_catching(future.as_mut(), &mut Context::from_waker(&waker));
        match polled {
            Poll::Ready(result) => {
                drop(bound);
                Poll::Ready(to_python(py, result))
            }
            Poll::Pending => {
                let mut state = self.lock();
                if !state.cancelled {
                    state.future = Some(bound);
                }
                Poll::Pending
            }
        }
    }
}

impl<F, T> Wake for LocalTask<F, T>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        wake_on_loop(self, &self.shared, &self.queued);
    }
}

impl<F, T> Resume for LocalTask<F, T>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    fn resume(self: Arc<Self>, py: Python<'_>) {
        if let Poll::Ready(result) = self.poll(py) {
            let waiter = self.lock().waiter.take();
            if let Some(waiter) = waiter {
                resolve_with(py, waiter.bind(py), result);
            }
        }
    }

    /// The loop closed and its Task will never run again: drop the future and free the
    /// waiter of the Task's wake-up, so the Task, its coroutine and the loop can go.
    fn loop_closed(&self, py: Python<'_>) {
        let waiter = self
            .lock()
            .waiter
            .as_ref()
            .map(|waiter| waiter.clone_ref(py));
        self.abandon();
        if let Some(waiter) = waiter {
            Waiter::loop_closed(waiter.bind(py));
        }
    }

    /// The loop closed: nothing will poll this future again. Let go of the waiter (a
    /// cycle through this waker otherwise) and of the future: a `Send` one is dropped
    /// here, a `!Send` one only on its own thread (else leaked; see `ThreadBound`).
    fn abandon(&self) {
        let (future, waiter) = {
            let mut state = self.lock();
            (state.future.take(), state.waiter.take())
        };
        drop(future);
        drop(waiter);
    }
}

impl<F, T> Source for LocalTask<F, T>
where
    F: Future<Output = PyResult<T>> + 'static,
    T: for<'py> IntoPyObject<'py> + 'static,
{
    fn take(&self, _py: Python<'_>) -> Option<PyResult<Py<PyAny>>> {
        None
    }

    fn cancel(&self, _py: Python<'_>) -> bool {
        let (future, waiter) = {
            let mut state = self.lock();
            state.cancelled = true;
            (state.future.take(), state.waiter.take())
        };
        // Dropped outside the lock: a future's destructor may run arbitrary code.
        drop(future);
        drop(waiter);
        true
    }
}
