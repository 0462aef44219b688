//! A `#[main]` whose event loop comes from a closure (annotated or not); it runs and checks
//! that the loop it got is the one the closure made.

use pyo3::prelude::*;

#[pyo3_aio::smol::main(event_loop = |py| {
    let event_loop = py.import("asyncio")?.call_method0("new_event_loop")?;
    event_loop.call_method1("set_debug", (true,))?;
    Ok(event_loop)
})]
async fn main() -> PyResult<()> {
    let debug = Python::attach(|py| -> PyResult<bool> {
        pyo3_aio::get_current_loop(py)?.call_method0("get_debug")?.extract()
    })?;
    assert!(debug, "main runs on the loop the closure made");
    Ok(())
}
