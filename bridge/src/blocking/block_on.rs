//! Running a Rust future to completion from synchronous Python.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3_aio_core::{Spawner, completion};

use crate::asyncio::running_loop;
use crate::coroutine::{Running, SendStart, drive};
use crate::errors::{closed_cell, producer_dropped};
use crate::options::Options;

/// How often the main thread looks for a signal (Ctrl-C) while it waits.
const SIGNAL_CHECK: Duration = Duration::from_millis(20);

pub(crate) fn block_on<S, F, T>(py: Python<'_>, spawner: S, future: F) -> PyResult<T>
where
    S: Spawner + Clone,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
{
    let runtime = spawner.name();
    // Only the main thread receives signals; others wait without looking. Asked before
    // the first poll: a Ctrl-C that arrives during it would otherwise be raised by this
    // Python call, after the spawn, skipping the drop below.
    let slice = is_main_thread(py)?.then_some(SIGNAL_CHECK);
    let mut start = Box::pin(SendStart::new(future, spawner.clone(), Options::default()));
    if let Some(here) = running_loop(py)? {
        // This call blocks `here` until it returns: a coroutine the future awaits must run
        // on a loop that is free, with the caller's context variables.
        let background = super::background::loop_after(&here)?;
        start
            .as_mut()
            .set_locals(crate::TaskLocals::new(background).copy_context(py)?);
    }
    // Ready at once (or failing at once): no thread, no wait.
    if let Poll::Ready(result) = start
        .as_mut()
        .poll_first(&mut Context::from_waker(Waker::noop()))?
    {
        return result;
    }
    let (producer, mut consumer) = completion::<PyResult<T>>();
    let running = Running::new(start);
    spawner
        .spawn(Box::pin(drive(running.clone(), producer)))
        .map_err(crate::errors::refused)?;
    let waker = Waker::from(Arc::new(super::Unpark(std::thread::current())));
    loop {
        let outcome = py.detach(
            || match consumer.poll_result(&mut Context::from_waker(&waker)) {
                Poll::Ready(outcome) => Some(outcome),
                Poll::Pending => {
                    match slice {
                        Some(slice) => std::thread::park_timeout(slice),
                        None => std::thread::park(),
                    }
                    None
                }
            },
        );
        match outcome {
            Some(Ok(result)) => return result,
            Some(Err(closed)) => return Err(closed_cell(closed, || producer_dropped(runtime))),
            None => {}
        }
        if let Err(interrupt) = py.check_signals() {
            // Ctrl-C (or another signal handler raising): drop the future before the
            // exception reaches the caller, as cancelling an awaited conversion does.
            let _ = consumer.cancel();
            super::drop_and_wait(py, &*running);
            return Err(interrupt);
        }
    }
}

/// Whether this is Python's main thread, the one that runs signal handlers.
/// Whether this is Python's main thread: `threading.main_thread().ident`, looked up once
/// per process (a forked child has its own), compared with this thread's ident. No Python
/// code runs on the common path, so a pending Ctrl-C is not raised from here, and a ready
/// blocking call pays two loads and a comparison.
fn is_main_thread(py: Python<'_>) -> PyResult<bool> {
    static MAIN: std::sync::Mutex<Option<(u64, usize)>> = std::sync::Mutex::new(None);
    let generation = pyo3_aio_core::fork::generation();
    let known = *crate::sync::lock(&MAIN);
    let main = match known {
        Some((ident, seen)) if seen == generation => ident,
        _ => {
            let ident = py
                .import("threading")?
                .call_method0("main_thread")?
                .getattr("ident")?
                .extract::<u64>()?;
            *crate::sync::lock(&MAIN) = Some((ident, generation));
            ident
        }
    };
    #[allow(
        clippy::useless_conversion,
        reason = "c_ulong is u64 here, u32 on some platforms"
    )]
    // SAFETY: a plain query of the calling thread's identifier.
    let current = u64::from(unsafe { pyo3::ffi::PyThread_get_thread_ident() });
    Ok(current == main)
}
