//! The extension module the pytest suite imports: every bridge feature, on every runtime.
//!
//! Functions take the runtime's name (`"tokio"`, `"async-std"`, `"smol"`) as a
//! `Runtime` so each test runs unchanged on all three; `runtime.rs` is the one place a
//! name becomes the runtime's functions. One module per concept:
//!
//! - `futures`: Rust futures awaited from Python (`future_into_py`), `local`: `!Send` ones,
//!   `eager`: `future_into_py_eager`, `homes`: where a pending future lives;
//! - `into_future`: Python awaitables awaited from Rust;
//! - `stream_to_py` and `stream_from_py`: streams both ways;
//! - `spawners`: spawners of the tests' own (counting, a thread per task, misbehaving);
//! - `lifecycle`: runtimes a test owns, shutdown; `stress`: storms of tracked futures;
//!   `edges`: the differential suite's guarded futures; `unwinding`: futures holding
//!   Python awaitables when cancelled; `badinput`: the APIs that take
//!   Python objects; `mutants`: the mutation tests' probes;
//! - `blocking`: `block_on`, `spawn_task` and the background loops;
//! - `probes` and `poll_fn`: the small pieces the others build from.

use pyo3::prelude::*;

/// Adds each `#[pyfunction]` named to the module `$m`.
macro_rules! add_functions {
    ($m:expr, $($function:ident),+ $(,)?) => {
        $($m.add_function(wrap_pyfunction!($function, $m)?)?;)+
    };
}

/// `$future` inside an async block of the calling function. The bridge names a coroutine
/// after the function its future's type was written in (`coroutine 'sleep' was never
/// awaited`, `__name__`), so a future built by a shared helper is wrapped here to keep
/// the name of the entry point that returns it.
macro_rules! named_here {
    ($future:expr) => {{
        let future = $future;
        // Clippy would have the block be `future` itself, which loses the name.
        #[allow(clippy::redundant_async_block)]
        async move {
            future.await
        }
    }};
}

mod badinput;
mod blocking;
mod eager;
mod edges;
mod futures;
mod homes;
mod into_future;
mod lifecycle;
mod local;
mod mutants;
mod poll_fn;
mod probes;
mod runtime;
mod spawners;
mod stream_from_py;
mod stream_to_py;
mod stress;
mod unwinding;

pub(crate) use homes::options_from;
pub(crate) use poll_fn::PollFn;
pub(crate) use runtime::Runtime;

/// [`Runtime::convert_with`] for a caller that holds the runtime's name.
pub(crate) fn convert_with<'py, F, T>(
    py: Python<'py>,
    runtime: &str,
    options: pyo3_aio::Options,
    future: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: std::future::Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    Runtime::from_name(runtime)?.convert_with(py, options, future)
}

#[pymodule]
fn pyo3_aio_tests(m: &Bound<'_, PyModule>) -> PyResult<()> {
    blocking::register(m)?;
    probes::register(m)?;
    futures::register(m)?;
    into_future::register(m)?;
    local::register(m)?;
    eager::register(m)?;
    homes::register(m)?;
    spawners::register(m)?;
    stream_to_py::register(m)?;
    stream_from_py::register(m)?;
    lifecycle::register(m)?;
    stress::register(m)?;
    badinput::register(m)?;
    edges::register(m)?;
    mutants::register(m)?;
    unwinding::register(m)?;
    m.add(
        "DEFAULT_CAPACITY",
        pyo3_aio::StreamOptions::DEFAULT_CAPACITY,
    )?;
    m.add("RustPanic", m.py().get_type::<pyo3_aio::RustPanic>())?;
    let names = pyo3::types::PyTuple::new(m.py(), Runtime::ALL.map(Runtime::name))?;
    m.add("RUNTIMES", names)?;
    Ok(())
}
