//! A `#[main]` whose event loop comes from a Rust function, with tokio options; it runs and
//! checks that the loop it got is the one the factory made.

use pyo3::prelude::*;

fn debug_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let event_loop = py.import("asyncio")?.call_method0("new_event_loop")?;
    event_loop.call_method1("set_debug", (true,))?;
    Ok(event_loop)
}

#[pyo3_aio::tokio::main(event_loop = debug_loop, flavor = "multi_thread", worker_threads = 2)]
async fn main() -> PyResult<()> {
    let debug = Python::attach(|py| -> PyResult<bool> {
        pyo3_aio::get_current_loop(py)?.call_method0("get_debug")?.extract()
    })?;
    assert!(debug, "main runs on the loop debug_loop made");
    Ok(())
}
