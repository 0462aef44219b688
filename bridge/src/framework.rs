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
use crate::coroutine::Started;
use crate::event_loop::LoopShared;
use crate::event_loop::Resume;
use crate::event_loop::registry::loop_shared;
use crate::event_loop::waker::KeptForLoop;
use crate::event_loop::waker::LoopWaker;
use crate::waiter::RustFutureWaiter;
use crate::waiter::source::Source;

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
                let notify = LoopWaker::new(
                    Arc::downgrade(shared),
                    crate::coroutine::on_runtime::ResolveWaiter {
                        waiter: KeptForLoop::new(waiter.clone_ref(py)),
                    },
                );
                let tracked: std::sync::Weak<dyn Resume> = Arc::downgrade(&notify) as _;
                shared.track(py, tracked);
                Ok((Started::Waiting(waiter), Waker::from(notify)))
            }
            Framework::Trio(_) => crate::trio::suspend(py, shared, source),
        }
    }
}
