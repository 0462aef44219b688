//! Python awaitable -> Rust future under trio: the awaitable runs as a trio system task
//! (`run_awaitable` in `tasks.py`) in the caller's context.
//!
//! Why a system task: it belongs to the run rather than to a nursery of the code that
//! happened to poll the Rust future, so it can be started from a runtime thread (through
//! the run's wake queue) and outlive the poll that started it; a cancel scope around the
//! awaiting trio code does not reach it (the Rust side decides: dropping the future cancels
//! the task's own scope); and its exception is handed to the Rust side instead of crashing
//! a nursery. It runs in the context given (the locals' copy of the awaiting task's
//! context), as `create_task(context=)` does on asyncio.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::Weak;
use std::task::Context;
use std::task::Waker;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_aio_core::Producer;
use pyo3_aio_core::completion;

use crate::callables;
use crate::event_loop::LoopItem;
use crate::event_loop::LoopRef;
use crate::event_loop::waker::{KeptForLoop, LoopBound, LoopWaker};
use crate::into_future::PyFuture;
use crate::locals::TaskLocals;
use crate::sync::lock;
use crate::unwinding;
use crate::unwinding::{CancelsTask, UnwindState, Unwinding};

type PyProducer = Producer<PyResult<Py<PyAny>>>;

/// Starts `awaitable` as a task of the trio run of `locals` (its token): at once on the
/// run's thread, through the run's wake queue from any other thread.
pub(crate) fn start(
    py: Python<'_>,
    awaitable: &Bound<'_, PyAny>,
    locals: &TaskLocals,
) -> PyResult<PyFuture> {
    let token = locals.event_loop(py);
    let (producer, consumer) = completion::<PyResult<Py<PyAny>>>();
    let context = match locals.context(py) {
        Some(context) => context,
        None => crate::asyncio::copy_current_context(py)?,
    };
    let here = crate::trio::current_token(py).is_some_and(|current| current.is(&token));
    let shared = crate::trio::state_of(py, &token)?;
    if here {
        spawn(py, &Arc::downgrade(&shared), awaitable, &context, producer)?;
    } else {
        let target = Arc::downgrade(&shared);
        let awaitable = awaitable.clone().unbind();
        let context = context.unbind();
        shared.queue(LoopItem::Call(Box::new(move |py| {
            let producer = std::cell::Cell::new(Some(producer));
            let spawned = spawn_from(py, &target, awaitable.bind(py), context.bind(py), &producer);
            if let Err(error) = spawned {
                // The task could not be started: the Rust side awaiting it gets the error.
                if let Some(producer) = producer.take() {
                    drop(producer.complete(Err(error)));
                }
            }
            Ok(())
        })));
    }
    Ok(PyFuture::from_consumer(consumer))
}

fn spawn_from(
    py: Python<'_>,
    shared: &LoopRef,
    awaitable: &Bound<'_, PyAny>,
    context: &Bound<'_, PyAny>,
    producer: &std::cell::Cell<Option<PyProducer>>,
) -> PyResult<()> {
    match producer.take() {
        Some(unstarted) => spawn(py, shared, awaitable, context, unstarted),
        None => Ok(()),
    }
}

/// Spawns the system task; the cell's producer goes to its [`TrioDone`].
fn spawn(
    py: Python<'_>,
    shared: &LoopRef,
    awaitable: &Bound<'_, PyAny>,
    context: &Bound<'_, PyAny>,
    mut producer: PyProducer,
) -> PyResult<()> {
    if producer.is_cancelled() {
        // The Rust side gave up before the task started: close a coroutine so Python does
        // not warn that it was never awaited.
        if awaitable.hasattr("close")? {
            let _ = awaitable.call_method0("close");
        }
        return Ok(());
    }
    let done = Py::new(
        py,
        TrioDone {
            producer: Mutex::new(None),
            scope: Mutex::new(ScopeState::NotStarted),
            unwinding: Mutex::new(None),
        },
    )?;
    // The cancellation path is registered before anyone can complete the cell.
    let canceller = LoopWaker::new(
        shared.clone(),
        CancelScope {
            done: KeptForLoop::new(done.clone_ref(py)),
            unwound: UnwindState::default(),
        },
    );
    let waker = Waker::from(canceller);
    let _ = producer.poll_cancelled(&mut Context::from_waker(&waker));
    *lock(&done.get().producer) = Some(producer);
    let kwargs = PyDict::new(py);
    kwargs.set_item("context", context)?;
    kwargs.set_item("name", "pyo3_aio.into_future")?;
    let run_awaitable = crate::trio::task_function(py, "run_awaitable")?;
    let spawned = callables::trio_spawn_system_task(py)?
        .call((run_awaitable, awaitable, &done), Some(&kwargs));
    if let Err(error) = spawned {
        if let Some(producer) = lock(&done.get().producer).take() {
            drop(producer.complete(Err(error)));
        }
    }
    Ok(())
}

/// The cancel scope of an awaitable's task, as the Rust side sees it.
enum ScopeState {
    /// The task has not run yet.
    NotStarted,
    /// The Rust future was dropped before the task ran: cancel its scope once it exists.
    CancelRequested,
    Running(Py<PyAny>),
    Finished,
}

/// What `run_awaitable` reports to: completes the cell with the awaitable's result or
/// exception, and holds the task's cancel scope for the Rust side's drop.
#[pyclass(frozen, name = "_TrioDone", module = "pyo3_aio")]
pub(crate) struct TrioDone {
    producer: Mutex<Option<PyProducer>>,
    scope: Mutex<ScopeState>,
    /// A waiter's wait for the task's end, once its Rust future was dropped (see
    /// `unwinding.rs`).
    unwinding: Mutex<Option<Weak<dyn Unwinding>>>,
}

impl TrioDone {
    fn complete(&self, result: PyResult<Py<PyAny>>) {
        *lock(&self.scope) = ScopeState::Finished;
        if let Some(producer) = lock(&self.producer).take() {
            // Err: the Rust future was dropped meanwhile; the result is dropped here.
            drop(producer.complete(result));
        }
        let unwinding = lock(&self.unwinding).take();
        if let Some(unwinding) = unwinding.and_then(|unwinding| unwinding.upgrade()) {
            unwinding.finish();
        }
    }

    /// Reports the task's end to `unwinding`: now if it has ended, else when it does.
    fn finish_when_done(&self, unwinding: Weak<dyn Unwinding>) {
        let state = lock(&self.scope);
        if !matches!(*state, ScopeState::Finished) {
            *lock(&self.unwinding) = Some(unwinding);
            return;
        }
        drop(state);
        if let Some(unwinding) = unwinding.upgrade() {
            unwinding.finish();
        }
    }

    /// The Rust future was dropped: cancel the task's scope (now, or as it starts).
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        let scope = {
            let mut state = lock(&self.scope);
            match &*state {
                ScopeState::NotStarted => {
                    *state = ScopeState::CancelRequested;
                    return Ok(());
                }
                ScopeState::Running(scope) => scope.clone_ref(py),
                ScopeState::CancelRequested | ScopeState::Finished => return Ok(()),
            }
        };
        scope.call_method0(py, pyo3::intern!(py, "cancel"))?;
        Ok(())
    }
}

#[pymethods]
impl TrioDone {
    fn started(&self, scope: &Bound<'_, PyAny>) -> PyResult<()> {
        let cancel = {
            let mut state = lock(&self.scope);
            let cancel = matches!(*state, ScopeState::CancelRequested);
            *state = ScopeState::Running(scope.clone().unbind());
            cancel
        };
        if cancel {
            scope.call_method0(pyo3::intern!(scope.py(), "cancel"))?;
        }
        Ok(())
    }

    fn succeed(&self, value: Py<PyAny>) {
        self.complete(Ok(value));
    }

    fn fail(&self, error: &Bound<'_, PyAny>) {
        self.complete(Err(PyErr::from_value(error.clone())));
    }
}

/// The producer-side waker: the Rust future was dropped, so cancel the task's scope.
struct CancelScope {
    done: KeptForLoop<TrioDone>,
    /// The task's end, for a cancelled Rust future's waiter (see `unwinding.rs`).
    unwound: UnwindState,
}

impl CancelsTask for CancelScope {
    fn unwind_state(&self) -> &UnwindState {
        &self.unwound
    }
}

impl LoopBound for CancelScope {
    fn woken(&self, waker: &Arc<LoopWaker<Self>>) {
        unwinding::note(waker.clone(), &self.unwound);
    }

    fn run(&self, py: Python<'_>, waker: &Arc<LoopWaker<Self>>) {
        let Some(done) = self.done.get(py) else {
            self.unwound.finish();
            return;
        };
        if let Err(error) = done.get().cancel(py) {
            error.write_unraisable(py, Some(done.bind(py)));
        }
        if self.unwound.is_watched() {
            let weak: Weak<dyn Unwinding> = Arc::downgrade(waker) as _;
            done.get().finish_when_done(weak);
        }
    }

    fn abandon(&self) {
        self.done.release();
        self.unwound.finish();
    }
}
