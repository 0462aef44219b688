//! The eager variant under trio: the Rust future starts at once, and the call returns a
//! coroutine that waits for its result.
//!
//! trio has no futures to hand out, so the object is a [`RustCoroutine`] whose future was
//! polled inline at the call and, still pending, spawned on the runtime right then. Its
//! result waits in the completion cell until a task awaits the coroutine: ready by then,
//! the await returns it without a checkpoint; otherwise the task suspends the way the lazy
//! path does (`trio.lowlevel.wait_task_rescheduled`), and a cancel scope or Ctrl-C drops
//! the future through the wait's abort. Left unawaited, the future runs on (fire and
//! forget) until it finishes or the run ends (which drops it).

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::task::Context;
use std::task::Poll;
use std::task::Waker;

use pyo3::prelude::*;
use pyo3_aio_core::Spawner;
use pyo3_aio_core::completion;

use crate::coroutine::RustCoroutine;
use crate::coroutine::Start;
use crate::coroutine::Started;
use crate::coroutine::in_runtime::entered_if_usable;
use crate::coroutine::on_runtime::Running;
use crate::coroutine::on_runtime::SpawnedSource;
use crate::coroutine::on_runtime::drive;
use crate::coroutine::to_python;
use crate::locals::LocalsSlot;
use crate::locals::fill;
use crate::locals::scoped;
use crate::panic::poll_catching;
use crate::sync::lock;
use crate::trio::TrioWait;

/// Starts `future` now under the trio run `token` stands for and returns the coroutine
/// that awaits its result (see the module's doc).
pub(crate) fn future_into_py_eager<'py, S, F, T>(
    py: Python<'py>,
    spawner: S,
    token: &Bound<'py, PyAny>,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let slot: LocalsSlot = Arc::new(OnceLock::new());
    fill(py, &slot, token)?;
    let mut future = Box::pin(scoped(slot, future));
    let polled = entered_if_usable(&spawner, || {
        poll_catching(future.as_mut(), &mut Context::from_waker(Waker::noop()))
    })?;
    let started = match polled {
        Poll::Ready(result) => Eager::Ready(to_python(py, result)),
        Poll::Pending => {
            let shared = crate::trio::state_of(py, token)?;
            let (producer, consumer) = completion::<PyResult<T>>();
            let running = Running::new(future);
            let source = Arc::new(SpawnedSource {
                consumer: Mutex::new(consumer),
                runtime: spawner.name(),
                running: Some(running.clone()),
                waker: OnceLock::new(),
            });
            let (wait, waker) = crate::trio::wait::unclaimed(py, &shared, source.clone())?;
            let registered = lock(&source.consumer).poll_result(&mut Context::from_waker(&waker));
            debug_assert!(registered.is_pending(), "nothing was spawned yet");
            let _ = source.waker.set(waker);
            if let Err(refused) = spawner.spawn(Box::pin(drive(running, producer))) {
                TrioWait::coroutine_finished(wait.bind(py));
                return Err(crate::errors::refused(refused));
            }
            Eager::Pending(wait)
        }
    };
    crate::coroutine::install_am_send(py);
    let coroutine = RustCoroutine::new(
        Box::new(TrioEager {
            token: token.clone().unbind(),
            started: Some(started),
        }),
        crate::coroutine::future_name::<F>(),
    )
    .quiet();
    Ok(Bound::new(py, coroutine)?.into_any())
}

/// Where an eager future stood when its call returned.
enum Eager {
    /// It finished on the inline poll.
    Ready(PyResult<Py<PyAny>>),
    /// It runs on the runtime; its result comes through this wait.
    Pending(Py<TrioWait>),
}

/// The eager coroutine's one await.
struct TrioEager {
    /// The run the future started in, the only one whose drain can resume an awaiter.
    token: Py<PyAny>,
    started: Option<Eager>,
}

impl Start for TrioEager {
    fn start(mut self: Box<Self>, py: Python<'_>) -> PyResult<Started> {
        let wait = match self.started.take() {
            Some(Eager::Ready(result)) => return Ok(Started::Ready(result)),
            Some(Eager::Pending(wait)) => wait,
            None => return Err(crate::errors::already_awaited()),
        };
        let wait = wait.bind(py);
        if let Some(result) = TrioWait::take_arrived(wait) {
            return Ok(Started::Ready(result));
        }
        let claimed = if crate::trio::current_token(py).is_some_and(|t| t.is(&self.token)) {
            TrioWait::claim(wait)
        } else {
            Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this eager Rust future was started in a trio run and can only be awaited \
                 by a task of that run",
            ))
        };
        match claimed {
            Ok(message) => Ok(Started::Trio {
                wait: wait.clone().unbind(),
                message,
            }),
            Err(error) => {
                TrioWait::abandon(wait);
                Err(error)
            }
        }
    }
}

impl Drop for TrioEager {
    fn drop(&mut self) {
        // Never awaited: the future runs on; its result is dropped when it arrives.
        if let Some(Eager::Pending(wait)) = self.started.take() {
            crate::forced_exit::attach(|py| TrioWait::abandon(wait.bind(py)));
        }
    }
}
