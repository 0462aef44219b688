//! Which async framework runs on this thread: the one choice the seam makes, where a
//! pending conversion first needs its loop.
//!
//! asyncio is asked first (`asyncio._get_running_loop`, one C call); trio only when asyncio
//! has no loop here and `trio` is already imported (its run-local token). Nothing here runs
//! for a ready await.

use std::sync::Arc;
use std::task::Waker;

use pyo3::prelude::*;

use crate::asyncio::running::running_loop;
use crate::event_loop::LoopShared;
use crate::event_loop::registry::loop_shared;
use crate::event_loop::waker::KeptForLoop;
use crate::event_loop::waker::tracked;
use crate::trio::TrioWait;
use crate::waiter::RustFutureWaiter;
use crate::waiter::source::Source;

/// What the first await of a coroutine produced.
pub(crate) enum Started {
    Ready(PyResult<Py<PyAny>>),
    Waiting(Py<RustFutureWaiter>),
    /// Under trio: the task's wait, and the message to yield to trio's run loop.
    Trio {
        wait: Py<TrioWait>,
        message: Py<PyAny>,
    },
}

/// The framework running on this thread, with its loop object: an asyncio event loop, or
/// trio's `TrioToken` for the current `trio.run` (what [`TaskLocals`](crate::TaskLocals)
/// then holds as its "event loop").
pub(crate) enum Framework<'py> {
    Asyncio(Bound<'py, PyAny>),
    Trio(Bound<'py, PyAny>),
}

impl<'py> Framework<'py> {
    /// The framework running here, if any.
    pub(crate) fn running(py: Python<'py>) -> PyResult<Option<Self>> {
        if let Some(event_loop) = running_loop(py)? {
            return Ok(Some(Framework::Asyncio(event_loop)));
        }
        Ok(crate::trio::current_token(py).map(Framework::Trio))
    }

    /// The framework running here, or the error naming the supported ones.
    pub(crate) fn require(py: Python<'py>) -> PyResult<Self> {
        Self::running(py)?.ok_or_else(|| {
            crate::errors::no_running_loop(
                py,
                "no running event loop: await this coroutine from asyncio (asyncio.run, a \
                 Task, or another coroutine running on a loop) or from trio (trio.run, a \
                 nursery; anyio on either backend)",
            )
        })
    }

    /// The object that stands for the loop: the asyncio loop, or the trio token.
    pub(crate) fn event_loop(&self) -> &Bound<'py, PyAny> {
        match self {
            Framework::Asyncio(event_loop) | Framework::Trio(event_loop) => event_loop,
        }
    }

    /// The loop's shared state (its wake queue), made on first use.
    pub(crate) fn shared(&self, py: Python<'py>) -> PyResult<Arc<LoopShared>> {
        match self {
            Framework::Asyncio(event_loop) => loop_shared(py, event_loop),
            Framework::Trio(token) => crate::trio::run_shared(py, token),
        }
    }

    /// Suspends the awaiting task on `source`, a runtime future's result: the object the
    /// coroutine yields, and the waker that resumes the task from the loop's drain (it is
    /// tracked, so a loop that closes first releases the future).
    pub(crate) fn suspend(
        self,
        py: Python<'py>,
        shared: &Arc<LoopShared>,
        source: Arc<dyn Source>,
    ) -> PyResult<(Started, Waker)> {
        match self {
            Framework::Asyncio(event_loop) => {
                let waiter = Py::new(py, RustFutureWaiter::new(event_loop.unbind(), source))?;
                let notify = tracked(
                    py,
                    shared,
                    crate::waiter::ResolveWaiter {
                        waiter: KeptForLoop::new(waiter.clone_ref(py)),
                    },
                );
                Ok((Started::Waiting(waiter), Waker::from(notify)))
            }
            Framework::Trio(_) => {
                let (wait, message, waker) = crate::trio::suspend(py, shared, source)?;
                Ok((Started::Trio { wait, message }, waker))
            }
        }
    }
}

impl<'py> Framework<'py> {
    /// Suspends the awaiting task on a future that lives on the loop thread (`source`,
    /// which resolves the returned [`Suspended`] itself when its future finishes).
    pub(crate) fn suspend_here(
        self,
        py: Python<'py>,
        source: Arc<dyn Source>,
    ) -> PyResult<(Started, Suspended)> {
        match self {
            Framework::Asyncio(event_loop) => {
                let waiter = Py::new(py, RustFutureWaiter::new(event_loop.unbind(), source))?;
                Ok((
                    Started::Waiting(waiter.clone_ref(py)),
                    Suspended::Asyncio(waiter),
                ))
            }
            Framework::Trio(_) => {
                let (wait, message) = crate::trio::wait::wait(py, source)?;
                Ok((
                    Started::Trio {
                        wait: wait.clone_ref(py),
                        message,
                    },
                    Suspended::Trio(wait),
                ))
            }
        }
    }
}

/// What a task waits on while a loop-thread future is pending: the asyncio waiter yielded
/// to its Task, or the trio task's wait.
pub(crate) enum Suspended {
    Asyncio(Py<RustFutureWaiter>),
    Trio(Py<crate::trio::TrioWait>),
}

impl Suspended {
    pub(crate) fn clone_ref(&self, py: Python<'_>) -> Self {
        match self {
            Suspended::Asyncio(waiter) => Suspended::Asyncio(waiter.clone_ref(py)),
            Suspended::Trio(wait) => Suspended::Trio(wait.clone_ref(py)),
        }
    }

    /// Resumes the task with a result computed on the loop thread.
    pub(crate) fn resolve_with(&self, py: Python<'_>, result: PyResult<Py<PyAny>>) {
        match self {
            Suspended::Asyncio(waiter) => crate::waiter::resolve_with(py, waiter.bind(py), result),
            Suspended::Trio(wait) => crate::trio::TrioWait::resolve_with(wait.bind(py), result),
        }
    }

    /// The loop closed while the task waited: see [`RustFutureWaiter::loop_closed`].
    pub(crate) fn loop_closed(&self, py: Python<'_>) {
        match self {
            Suspended::Asyncio(waiter) => RustFutureWaiter::loop_closed(waiter.bind(py)),
            Suspended::Trio(wait) => crate::trio::TrioWait::coroutine_finished(wait.bind(py)),
        }
    }
}
