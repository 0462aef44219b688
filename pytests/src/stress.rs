//! Helpers for the stress and fault tests (`test_stress_*.py`, `test_faults_*.py`).
//!
//! Storm futures carry a `Tracked` guard with an index into a table of drop counts, so a
//! test can check that each of its futures was dropped exactly once (not zero times: a
//! leak; not twice: a double drop), whichever side won the race.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::Runtime;
use crate::into_future::{await_calls, call_into_future};
use crate::poll_fn::{before_timer, yield_now};

/// The drop counts of the current storm, one per index (`storm_reset`).
static TABLE: Mutex<Option<Arc<Vec<AtomicU8>>>> = Mutex::new(None);

/// Tracked guards dropped since the process started (all storms).
static TRACKED_DROPS: AtomicUsize = AtomicUsize::new(0);

/// Counts its drop at `index` of the storm table it was made for.
struct Tracked {
    table: Arc<Vec<AtomicU8>>,
    index: usize,
}

impl Tracked {
    fn new(index: usize) -> PyResult<Self> {
        let table = TABLE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| PyValueError::new_err("call storm_reset(n) first"))?;
        if index >= table.len() {
            return Err(PyValueError::new_err(format!(
                "index {index} out of range for a storm of {}",
                table.len()
            )));
        }
        Ok(Tracked { table, index })
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.table[self.index].fetch_add(1, Ordering::SeqCst);
        TRACKED_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Starts a storm of `n` tracked futures: every drop count back to zero.
#[pyfunction]
fn storm_reset(n: usize) {
    let table = (0..n).map(|_| AtomicU8::new(0)).collect();
    *TABLE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(table));
}

/// `(never dropped, dropped once, dropped more than once)` over the current storm's futures.
#[pyfunction]
fn storm_drops() -> (usize, usize, usize) {
    let table = TABLE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut counts = (0, 0, 0);
    for slot in table.iter().flat_map(|table| table.iter()) {
        match slot.load(Ordering::SeqCst) {
            0 => counts.0 += 1,
            1 => counts.1 += 1,
            _ => counts.2 += 1,
        }
    }
    counts
}

/// How many tracked futures were dropped since the process started.
#[pyfunction]
fn tracked_drops() -> usize {
    TRACKED_DROPS.load(Ordering::SeqCst)
}

/// A tracked future (storm slot `index`) that sleeps `micros` microseconds on the runtime's
/// timer (0: ready on the inline first poll), then returns `value`.
#[pyfunction]
fn storm_value<'py>(
    py: Python<'py>,
    runtime: Runtime,
    index: usize,
    micros: u64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let guard = Tracked::new(index)?;
    let nap = runtime.delay(micros as f64 / 1e6);
    runtime.convert(py, async move {
        let _guard = guard;
        nap.await;
        Ok(value)
    })
}

/// A tracked future (storm slot `index`) in which Rust awaits `factory()` through
/// `into_future`, racing it against a `micros` timer (None: no timer); when the timer wins
/// the Rust future of the awaitable is dropped, which cancels the Python task. With
/// `from_runtime`, `factory` is called and `into_future` applied on the runtime's thread
/// after one suspension (else at once, on the loop thread). Returns `("done", result)` or
/// `("dropped", None)`.
#[pyfunction]
#[pyo3(signature = (runtime, index, factory, micros = None, from_runtime = false))]
fn storm_await_py<'py>(
    py: Python<'py>,
    runtime: Runtime,
    index: usize,
    factory: Bound<'py, PyAny>,
    micros: Option<u64>,
    from_runtime: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let guard = Tracked::new(index)?;
    let early = if from_runtime {
        None
    } else {
        Some(pyo3_aio::into_future(factory.call0()?)?)
    };
    let factory = factory.unbind();
    let nap = micros.map(|micros| runtime.sleep(micros as f64 / 1e6));
    runtime.convert(py, async move {
        let _guard = guard;
        let future = match early {
            Some(future) => future,
            None => {
                yield_now().await;
                call_into_future(&factory)?
            }
        };
        match before_timer(future, nap).await {
            Some(result) => Ok(("done", Some(result?))),
            None => Ok(("dropped", None)),
        }
    })
}

/// Returns `value` after one suspension: pending on the inline first poll, so the future
/// hops to the runtime and its completion comes back from a worker thread.
#[pyfunction]
fn hop<'py>(py: Python<'py>, runtime: Runtime, value: Py<PyAny>) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, async move {
        yield_now().await;
        Ok(value)
    })
}

/// Rust awaits `factory()` `count` times in a row (from the runtime's thread after one
/// suspension), dropping each result there (no GIL); returns `count`.
#[pyfunction]
fn await_py_times<'py>(
    py: Python<'py>,
    runtime: Runtime,
    factory: Py<PyAny>,
    count: usize,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, async move {
        yield_now().await;
        await_calls(&factory, count, drop).await?;
        Ok(count)
    })
}

/// A future that holds `value` and keeps waking on the runtime's timer every `micros`
/// microseconds, forever (until dropped).
#[pyfunction]
fn hold_and_tick<'py>(
    py: Python<'py>,
    runtime: Runtime,
    micros: u64,
    value: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    runtime.convert(py, async move {
        let _value = value;
        loop {
            runtime.sleep(micros as f64 / 1e6).await;
        }
        #[allow(unreachable_code)]
        Ok(())
    })
}

/// Blocks the calling thread for `seconds` with the GIL released (`py.detach`).
#[pyfunction]
fn detach_for(py: Python<'_>, seconds: f64) {
    py.detach(|| std::thread::sleep(Duration::from_secs_f64(seconds)));
}

fn wait_for_drops(target: usize, timeout: f64) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    while TRACKED_DROPS.load(Ordering::SeqCst) < target {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    true
}

/// With the GIL released (`py.detach`), waits until `tracked_drops()` reaches `target`,
/// then `linger` seconds more (so the completions that follow the drops land too); returns
/// whether the target was reached before `timeout` seconds.
#[pyfunction]
fn detach_until_dropped(py: Python<'_>, target: usize, timeout: f64, linger: f64) -> bool {
    py.detach(|| {
        let reached = wait_for_drops(target, timeout);
        std::thread::sleep(Duration::from_secs_f64(linger));
        reached
    })
}

static HOLDS: AtomicUsize = AtomicUsize::new(0);

/// Holds the GIL (never releasing it) until `tracked_drops()` reaches `target`, then
/// `linger` seconds more; returns whether the target was reached before `timeout`.
/// Counts the finished holds in `holds()`.
#[pyfunction]
fn hold_gil_until_dropped(_py: Python<'_>, target: usize, timeout: f64, linger: f64) -> bool {
    let reached = wait_for_drops(target, timeout);
    std::thread::sleep(Duration::from_secs_f64(linger));
    HOLDS.fetch_add(1, Ordering::SeqCst);
    reached
}

/// How many `hold_gil_until_dropped` calls have finished.
#[pyfunction]
fn holds() -> usize {
    HOLDS.load(Ordering::SeqCst)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(
        m,
        storm_reset,
        storm_drops,
        tracked_drops,
        storm_value,
        storm_await_py,
        hop,
        await_py_times,
        hold_and_tick,
        detach_for,
        detach_until_dropped,
        hold_gil_until_dropped,
        holds,
    );
    Ok(())
}
