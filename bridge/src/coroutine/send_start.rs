//! A `Send` future not yet awaited, and its first await: the inline first poll, then the
//! choice of its home.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::task::Context;
use std::task::Poll;
use std::task::Waker;

use pyo3::prelude::*;

use crate::sync::lock;
use pyo3_aio_core::Spawner;
use pyo3_aio_core::completion;

use crate::coroutine::Start;
use crate::coroutine::Started;
use crate::coroutine::in_runtime::entered;
use crate::coroutine::in_runtime::entered_if_usable;
use crate::coroutine::in_runtime::refuse_unusable;
use crate::coroutine::on_loop_thread::start_on_loop_thread;
use crate::coroutine::on_runtime::Running;
use crate::coroutine::on_runtime::SpawnedSource;
use crate::coroutine::on_runtime::drive;
use crate::coroutine::python_waits;
use crate::coroutine::spare_box;
use crate::coroutine::to_python;
use crate::event_loop::registry::register_running_loop;
use crate::framework::Framework;
use crate::locals::LocalsSlot;
use crate::locals::Scoped;
use crate::locals::fill;
use crate::locals::scoped_lazily;
use crate::options::FirstPoll;
use crate::options::Home;
use crate::options::Options;
use crate::panic::poll_catching;
use crate::thread_bound::ThreadBound;

pin_project_lite::pin_project! {
    /// A `Send` future not yet awaited, with what its first await needs. The future is held
    /// inline, and this box is what later runs it, on the runtime (`drive`) or on the loop
    /// thread, so a conversion costs one allocation for both.
    pub(crate) struct SendStart<F, T, S> {
        // Its task locals' slot is made when first needed (`Current::Lazy`): a ready await
        // that never asks for them allocates none.
        #[pin]
        future: Scoped<F>,
        pub(crate) spawner: S,
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
        Self {
            future: scoped_lazily(future),
            spawner,
            options,
            outside: false,
            _output: std::marker::PhantomData,
        }
    }

    /// Gives the future `locals` up front, instead of those of the loop that first awaits
    /// it.
    pub(crate) fn set_locals(self: Pin<&mut Self>, locals: crate::TaskLocals) {
        let _ = self.slot().set(locals);
    }

    /// The task locals' slot, made now if nothing asked for it yet.
    fn slot(self: Pin<&mut Self>) -> LocalsSlot {
        match self.project().future.value_mut() {
            Some(current) => current.slot().clone(),
            // Only while the future polls, and nothing asks for the slot then.
            None => {
                debug_assert!(false, "the slot was asked for during a poll");
                Arc::new(OnceLock::new())
            }
        }
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
pub(crate) fn to_loop_thread<F, T, S>(
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
            let slot = this.as_mut().slot();
            return start_on_loop_thread(py, to_loop_thread(this), slot, options.first_poll);
        }
        // RegisterWakeup the running loop before user code runs, so that `into_future` called
        // from a task this future spawns finds it as "the one running loop".
        register_running_loop(py)?;
        if options.first_poll == FirstPoll::Inline {
            // Only `Home::Auto` reads it (a thread-local read saved on every other await).
            let waits_before = (options.home == Home::Auto).then(python_waits);
            // A no-op waker: whichever home the future gets polls it again with its own
            // waker before it waits (the runtime on spawn, the loop thread at once).
            let polled = this
                .as_mut()
                .poll_first(&mut Context::from_waker(Waker::noop()))?;
            if let Poll::Ready(result) = polled {
                let value = to_python(py, result);
                spare_box::recycle(this);
                return Ok(Started::Ready(value));
            }
            if waits_before.is_some_and(|before| python_waits() != before) {
                // Pending on Python work of this loop: it stays here (see `Home::Auto`). Any
                // wake the no-op waker swallowed happened before this second poll, which sees
                // its effect; no Python code ran in between.
                let slot = this.as_mut().slot();
                return start_on_loop_thread(py, to_loop_thread(this), slot, FirstPoll::Inline);
            }
        } else {
            refuse_unusable(&this.spawner)?;
        }
        let framework = Framework::require(py)?;
        fill(py, &this.as_mut().slot(), framework.event_loop())?;
        let shared = framework.shared(py)?;
        let (producer, consumer) = completion::<PyResult<T>>();
        let spawner = this.spawner.clone();
        let running = Running::new(this);
        let source = Arc::new(SpawnedSource {
            consumer: Mutex::new(consumer),
            runtime: spawner.name(),
            running: Some(running.clone()),
            waker: OnceLock::new(),
        });
        let (started, waker) = framework.suspend(py, &shared, source.clone())?;
        let registered = lock(&source.consumer).poll_result(&mut Context::from_waker(&waker));
        debug_assert!(registered.is_pending(), "nothing was spawned yet");
        let _ = source.waker.set(waker);
        spawner
            .spawn(Box::pin(drive(running, producer)))
            .map_err(crate::errors::refused)?;
        Ok(started)
    }
}

/// [`future_into_py`](crate::generic::future_into_py) with per-call [`Options`] (where the pending future
/// lives and whether it is polled inline first).
///
/// # Errors
///
/// As [`future_into_py`](crate::generic::future_into_py).
pub fn future_into_py_with<'py, S, F, T>(
    py: Python<'py>,
    spawner: S,
    options: Options,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    S: Spawner + Clone,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    crate::coroutine::install_am_send(py);
    let start = SendStart::new(future, spawner, options);
    let coroutine = crate::coroutine::RustCoroutine::new(
        spare_box::boxed(start),
        crate::coroutine::future_name::<F>(),
    );
    Ok(Bound::new(py, coroutine)?.into_any())
}
