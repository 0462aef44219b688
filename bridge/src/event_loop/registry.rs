//! The registry: one [`LoopShared`] per event loop, found from the loop, created and wired
//! to the loop (its reader or fallback) on first use.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::Mutex;

use pyo3::exceptions::PyNotImplementedError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::sync::lock;

use crate::asyncio::running::runs_here;
use crate::event_loop::LoopShared;
use crate::event_loop::LoopThread;
use crate::event_loop::signal::SignalFd;
use crate::event_loop::signal::Wakeup;

/// The `call_soon` callback of `signal_from_loop_thread`: drains the loop's queue if the
/// state still exists (it holds it weakly, so the state does not keep itself alive).
#[pyclass(frozen, name = "_DrainSoon", module = "pyo3_aio")]
pub(crate) struct DrainSoon {
    shared: std::sync::Weak<LoopShared>,
}

#[pymethods]
impl DrainSoon {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        match self.shared.upgrade() {
            Some(shared) => shared.drain(py),
            None => Ok(()),
        }
    }
}

/// The `add_reader` callback: drains the loop's queue.
#[pyclass(frozen, name = "_LoopWakeup", module = "pyo3_aio")]
pub(crate) struct LoopWakeup {
    shared: Arc<LoopShared>,
    /// This is the object registered with `add_reader`: when the loop releases it (it
    /// closed its selector), the loop will not drain again.
    reader: bool,
}

impl Drop for LoopWakeup {
    fn drop(&mut self) {
        if self.reader {
            self.shared.close();
        }
    }
}

#[pymethods]
impl LoopWakeup {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.clear_fd();
        self.shared.drain(py)
    }
}

/// Registers the loop running on this thread, if any, so that `into_future` called from
/// other threads finds it: cheap when this thread already registered a loop that still
/// runs (`asyncio::running::register_running_loop`).
#[inline]
pub(crate) fn register_running_loop(py: Python<'_>) -> PyResult<()> {
    crate::asyncio::running::register_running_loop(py, |event_loop| {
        loop_shared(py, event_loop).map(drop)
    })
}

fn create(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<LoopShared>> {
    let shared = Arc::new(LoopShared::new());
    let drain = Bound::new(
        py,
        LoopWakeup {
            shared: shared.clone(),
            reader: true,
        },
    )?;
    let fd = SignalFd::open()?;
    let on_loop_thread = runs_here(py, event_loop)?;
    if !on_loop_thread {
        let register = Bound::new(
            py,
            RegisterWakeup {
                shared: shared.clone(),
                event_loop: event_loop.clone().unbind(),
                drain: drain.unbind(),
                fd: Mutex::new(Some(fd)),
            },
        )?;
        event_loop.call_method1(pyo3::intern!(py, "call_soon_threadsafe"), (register,))?;
        return Ok(shared);
    }
    install(py, &shared, event_loop, &drain, fd)?;
    Ok(shared)
}

/// Sets up the wake-up of a loop first contacted from another thread, on the loop's own
/// thread (registering a reader is not thread-safe for every loop), then drains what was
/// queued meanwhile.
#[pyclass(frozen, name = "_RegisterWakeup", module = "pyo3_aio")]
struct RegisterWakeup {
    shared: Arc<LoopShared>,
    event_loop: Py<PyAny>,
    drain: Py<LoopWakeup>,
    /// Taken by the one call; closed with this object if the loop never calls it.
    fd: Mutex<Option<SignalFd>>,
}

#[pymethods]
impl RegisterWakeup {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let Some(fd) = lock(&self.fd).take() else {
            return Ok(());
        };
        install(
            py,
            &self.shared,
            self.event_loop.bind(py),
            self.drain.bind(py),
            fd,
        )?;
        self.shared.drain(py)
    }
}

fn install(
    py: Python<'_>,
    shared: &Arc<LoopShared>,
    event_loop: &Bound<'_, PyAny>,
    drain: &Bound<'_, LoopWakeup>,
    fd: SignalFd,
) -> PyResult<()> {
    let weak_loop = py.import("weakref")?.getattr("ref")?.call1((event_loop,))?;
    let drain_soon = Py::new(
        py,
        DrainSoon {
            shared: Arc::downgrade(shared),
        },
    )?;
    crate::forced_exit::park_on_forced_exit();
    let _ = shared.loop_thread.set(LoopThread {
        id: crate::thread_bound::current_thread_id(),
        call_soon: Some((weak_loop.unbind(), drain_soon)),
    });
    match event_loop.call_method1(pyo3::intern!(py, "add_reader"), (fd.read_fd(), drain)) {
        Ok(_) => {
            let _ = shared.wakeup.set(Wakeup::Fd(fd));
        }
        Err(error) if error.is_instance_of::<PyNotImplementedError>(py) => {
            let call_soon_threadsafe =
                event_loop.getattr(pyo3::intern!(py, "call_soon_threadsafe"))?;
            let _ = shared.wakeup.set(Wakeup::Threadsafe {
                call_soon_threadsafe: call_soon_threadsafe.unbind(),
                drain: drain.clone().into_any().unbind(),
            });
        }
        Err(error) => return Err(error),
    }
    Ok(())
}

thread_local! {
    /// The last loop this thread looked up, held strongly so its address cannot be reused
    /// by another loop while cached.
    static LAST: RefCell<Option<(Py<PyAny>, Arc<LoopShared>)>> = const { RefCell::new(None) };
}

/// Per-process state kept with the GIL: made again in a forked child, where the
/// parent's entries (loops that do not run there, their eventfds) must not be found.
///
/// Its lock is only taken with the GIL held, never across a Python call, so no other thread
/// holds it when `os.fork()` (which holds the GIL) forks.
struct PerProcess<T>(Mutex<Option<(usize, Py<T>)>>);

impl<T> PerProcess<T> {
    const fn new() -> Self {
        Self(Mutex::new(None))
    }

    fn get_or_try_init<'py>(
        &self,
        py: Python<'py>,
        init: impl FnOnce() -> PyResult<Py<T>>,
    ) -> PyResult<Bound<'py, T>> {
        let generation = pyo3_aio_core::fork::generation();
        let mut slot = lock(&self.0);
        if let Some((made_in, value)) = slot.as_ref()
            && *made_in == generation
        {
            return Ok(value.bind(py).clone());
        }
        let value = init()?;
        let bound = value.bind(py).clone();
        // The parent's value (if any) is only this process's copy of it: dropping it here
        // releases the child's references, nothing of the parent's.
        let old = slot.replace((generation, value));
        drop(slot);
        drop(old);
        Ok(bound)
    }
}

/// `weakref.WeakKeyDictionary` from loop to its `_LoopWakeup`: an entry lives as long as
/// its loop does.
static REGISTRY: PerProcess<PyAny> = PerProcess::new();

fn registry(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    REGISTRY.get_or_try_init(py, || {
        Ok(crate::callables::weak_key_dictionary(py)?.call0()?.unbind())
    })
}

/// The shared state of `event_loop`, created (and registered with the loop) on first use.
/// Must be called on the loop's own thread.
pub(crate) fn loop_shared(
    py: Python<'_>,
    event_loop: &Bound<'_, PyAny>,
) -> PyResult<Arc<LoopShared>> {
    let cached = LAST.with(|last| {
        last.borrow()
            .as_ref()
            .filter(|(cached, shared)| {
                cached.as_ptr() == event_loop.as_ptr() && shared.is_current()
            })
            .map(|(_, shared)| shared.clone())
    });
    if let Some(shared) = cached {
        return Ok(shared);
    }
    let registry = registry(py)?;
    let known = match registry.get_item(event_loop) {
        Ok(wakeup) => Some(wakeup),
        Err(_) => fallback_registry(py)?.get_item(event_loop)?,
    };
    let shared = match known {
        Some(wakeup) => wakeup.cast_into::<LoopWakeup>()?.get().shared.clone(),
        None => {
            let shared = create(py, event_loop)?;
            let wakeup = Bound::new(
                py,
                LoopWakeup {
                    shared: shared.clone(),
                    reader: false,
                },
            )?;
            if registry.set_item(event_loop, &wakeup).is_err() {
                // A loop that cannot be weakly referenced: keep it in a plain dict.
                fallback_registry(py)?.set_item(event_loop, wakeup)?;
            }
            shared
        }
    };
    let old = LAST.with(|last| {
        last.borrow_mut()
            .replace((event_loop.clone().unbind(), shared.clone()))
    });
    drop(old);
    Ok(shared)
}

static FALLBACK: PerProcess<PyDict> = PerProcess::new();

fn fallback_registry(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    FALLBACK.get_or_try_init(py, || Ok(PyDict::new(py).unbind()))
}

/// Every loop that hosted a conversion and is running now (for `into_future` called from a
/// thread that has no loop of its own).
pub(crate) fn running_loops<'py>(py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let mut running = Vec::new();
    for event_loop in registry(py)?.try_iter()? {
        let event_loop = event_loop?;
        if event_loop.call_method0("is_running")?.is_truthy()? {
            running.push(event_loop);
        }
    }
    for event_loop in fallback_registry(py)?.keys() {
        if event_loop.call_method0("is_running")?.is_truthy()? {
            running.push(event_loop);
        }
    }
    Ok(running)
}
