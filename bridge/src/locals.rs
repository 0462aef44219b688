//! `TaskLocals`: the event loop and `contextvars.Context` a Rust future belongs to.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::sync::OnceLock;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3_aio_core::scope;

use crate::asyncio::copy_current_context;
use crate::asyncio::is_event_loop;
use crate::asyncio::running::running_loop;
use crate::framework::Framework;

/// The event loop and `contextvars.Context` that Python work started from Rust runs in.
///
/// Inside a future converted with `future_into_py` they are set automatically: the loop the
/// coroutine was first awaited on and a copy of the awaiting task's context. Elsewhere,
/// build them with [`TaskLocals::with_running_loop`] or [`TaskLocals::new`] and carry them
/// into a future with [`scope()`].
///
/// Cloning is cheap and needs no GIL.
///
/// ```
/// use pyo3::prelude::*;
///
/// Python::attach(|py| -> PyResult<()> {
///     let event_loop = py.import("asyncio")?.call_method0("new_event_loop")?;
///     let locals = pyo3_aio::TaskLocals::new(event_loop.clone()).copy_context(py)?;
///     assert!(locals.event_loop(py).is(&event_loop));
///     event_loop.call_method0("close")?;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct TaskLocals(Arc<Inner>);

struct Inner {
    event_loop: Py<PyAny>,
    context: Option<Py<PyAny>>,
}

impl TaskLocals {
    /// Locals for `event_loop`, with no context (Python work then runs in a copy of the
    /// context current when it is scheduled).
    pub fn new(event_loop: Bound<'_, PyAny>) -> Self {
        Self(Arc::new(Inner {
            event_loop: event_loop.unbind(),
            context: None,
        }))
    }

    /// Locals for the loop running on this thread: the asyncio loop, or under trio the
    /// run's `trio.lowlevel.TrioToken`.
    ///
    /// # Errors
    ///
    /// `RuntimeError` when no event loop or trio run runs on this thread.
    pub fn with_running_loop(py: Python<'_>) -> PyResult<Self> {
        match Framework::running(py)? {
            Some(framework) => Ok(Self::new(framework.event_loop().clone())),
            None => Err(PyRuntimeError::new_err(
                "no running event loop: call this from a coroutine or callback running on an \
                 asyncio event loop or in a trio run, or build TaskLocals::new(event_loop) \
                 yourself",
            )),
        }
    }

    /// The same loop, with `context` as the context.
    pub fn with_context(self, context: Bound<'_, PyAny>) -> Self {
        Self(Arc::new(Inner {
            event_loop: self.0.event_loop.clone_ref(context.py()),
            context: Some(context.unbind()),
        }))
    }

    /// The same loop, with a copy of the context current on this thread.
    ///
    /// # Errors
    ///
    /// When `contextvars.copy_context` fails.
    pub fn copy_context(self, py: Python<'_>) -> PyResult<Self> {
        Ok(self.with_context(copy_current_context(py)?))
    }

    /// The event loop.
    pub fn event_loop<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.0.event_loop.bind(py).clone()
    }

    /// The context, if one was set.
    pub fn context<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.0
            .context
            .as_ref()
            .map(|context| context.bind(py).clone())
    }
}

impl std::fmt::Debug for TaskLocals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskLocals")
            .field("event_loop", &self.0.event_loop)
            .field("context", &self.0.context)
            .finish()
    }
}

/// What a scope holds: locals set up front, or filled in when first needed (converted
/// futures fill it before they leave the loop thread).
pub(crate) type LocalsSlot = Arc<OnceLock<TaskLocals>>;

/// What the current scope's thread-local holds during a poll.
#[derive(Clone)]
pub(crate) enum Current {
    /// A slot, shared with whatever fills it or hands it on.
    Slot(LocalsSlot),
    /// No slot yet: a converted future before anything asked for its locals. The first
    /// [`get_current_locals`] inside it puts a slot here, which the future's scope keeps
    /// for its later polls; a ready await that never asks allocates nothing.
    Lazy,
}

impl Current {
    /// The slot, made now (and kept) if there was none.
    pub(crate) fn slot(&mut self) -> &LocalsSlot {
        if let Current::Lazy = self {
            *self = Current::Slot(Arc::new(OnceLock::new()));
        }
        match self {
            Current::Slot(slot) => slot,
            Current::Lazy => unreachable!("a slot was just made"),
        }
    }
}

/// A future inside a scope of task locals (see [`scoped`]).
pub(crate) type Scoped<F> = scope::Scope<Current, F>;

thread_local! {
    static CURRENT: Cell<Option<Current>> = const { Cell::new(None) };
}

/// Wraps a future so that [`get_current_locals`] inside it returns the slot's locals.
pub(crate) fn scoped<F: Future>(slot: LocalsSlot, future: F) -> Scoped<F> {
    scope::scope(&CURRENT, Current::Slot(slot), future)
}

/// Wraps a converted future whose locals are found when first asked for (see
/// [`Current::Lazy`]).
pub(crate) fn scoped_lazily<F: Future>(future: F) -> Scoped<F> {
    scope::scope(&CURRENT, Current::Lazy, future)
}

/// Runs `f` with `slot` as the current locals (for streams, polled outside a future).
pub(crate) fn with_locals<R>(slot: LocalsSlot, f: impl FnOnce() -> R) -> R {
    scope::sync_scope(&CURRENT, Current::Slot(slot), f)
}

/// Fills `slot` from the running loop and current context, if it is still empty.
pub(crate) fn fill(
    py: Python<'_>,
    slot: &OnceLock<TaskLocals>,
    event_loop: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if slot.get().is_none() {
        let locals = TaskLocals::new(event_loop.clone()).copy_context(py)?;
        let _ = slot.set(locals);
    }
    Ok(())
}

/// Runs `future` with `locals` as its task locals, on any executor.
///
/// ```
/// # use pyo3::prelude::*;
/// # Python::attach(|py| -> PyResult<()> {
/// let event_loop = py.import("asyncio")?.call_method0("new_event_loop")?;
/// let locals = pyo3_aio::TaskLocals::new(event_loop.clone());
/// let inside = pyo3_aio::scope(locals, async {
///     Python::attach(|py| pyo3_aio::get_current_loop(py).map(|l| l.unbind()))
/// });
/// let seen = futures_lite_block_on(inside)?;
/// assert!(seen.bind(py).is(&event_loop));
/// # event_loop.call_method0("close")?;
/// # Ok(())
/// # }).unwrap();
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// ```
pub fn scope<F>(locals: TaskLocals, future: F) -> impl Future<Output = F::Output> + Send
where
    F: Future + Send,
{
    scoped(Arc::new(OnceLock::from(locals)), future)
}

/// [`scope()`] for `!Send` futures.
pub fn scope_local<F: Future>(locals: TaskLocals, future: F) -> impl Future<Output = F::Output> {
    scoped(Arc::new(OnceLock::from(locals)), future)
}

/// The task locals of the current conversion or scope, else of the loop running on this
/// thread (with a copy of the current context).
///
/// # Errors
///
/// `RuntimeError` outside any scope and any running loop.
pub fn get_current_locals(py: Python<'_>) -> PyResult<TaskLocals> {
    if let Some(mut current) = scope::current(&CURRENT) {
        let lazy = matches!(current, Current::Lazy);
        let slot = current.slot().clone();
        if lazy {
            // From now on this scope has a slot (it keeps what the thread-local holds when
            // the poll ends).
            CURRENT.with(|cell| cell.set(Some(current)));
        }
        if let Some(locals) = slot.get() {
            return Ok(locals.clone());
        }
        // The inline first poll, on the loop thread: fill the slot now.
        if let Some(framework) = Framework::running(py)? {
            fill(py, &slot, framework.event_loop())?;
            if let Some(locals) = slot.get() {
                return Ok(locals.clone());
            }
        }
    }
    match Framework::running(py)? {
        Some(framework) => TaskLocals::new(framework.event_loop().clone()).copy_context(py),
        None => Err(PyRuntimeError::new_err(
            "no running event loop and no task locals: call this inside a future converted \
             with future_into_py, on a thread running an asyncio loop or a trio run, or \
             inside pyo3_aio::scope(locals, future)",
        )),
    }
}

/// The locals of the current scope only (no fallback), for `into_future`.
pub(crate) fn scoped_locals() -> Option<TaskLocals> {
    match scope::current(&CURRENT)? {
        Current::Slot(slot) => slot.get().cloned(),
        Current::Lazy => None,
    }
}

/// The event loop of the current conversion or scope, else the loop running on this thread.
/// Under trio the "loop" is the run's `trio.lowlevel.TrioToken` (what `TaskLocals` holds
/// there, and what `into_future_with_locals` accepts).
///
/// # Errors
///
/// `RuntimeError` outside any scope and any running loop.
pub fn get_current_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    if let Some(locals) = scoped_locals() {
        return Ok(locals.event_loop(py));
    }
    match running_loop(py)? {
        Some(event_loop) => Ok(event_loop),
        None => get_current_locals(py).map(|locals| locals.event_loop(py)),
    }
}

/// Checks locals that may come from user code (`TaskLocals::new` takes any object): a
/// junk loop or context would otherwise fail later, far from its cause, or leave a task
/// that can never run.
pub(crate) fn check_locals(py: Python<'_>, locals: &TaskLocals) -> PyResult<()> {
    let event_loop = locals.event_loop(py);
    if !is_event_loop(&event_loop)? && !crate::trio::is_token(&event_loop) {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "the task locals' event loop must be an asyncio event loop or a trio token, got '{}'",
            event_loop.get_type().name()?
        )));
    }
    check_context(locals.context(py).as_ref())
}

/// Checks the context of locals from user code (the loop is checked by [`check_locals`]).
pub(crate) fn check_context(context: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    if let Some(context) = context {
        // SAFETY: plain type check on a valid object pointer.
        if unsafe { pyo3::ffi::PyContext_CheckExact(context.as_ptr()) } == 0 {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "the task locals' context must be a contextvars.Context, got '{}'",
                context.get_type().name()?
            )));
        }
    }
    Ok(())
}
