//! A `#[main]` whose event loop factory is a Rust closure expression (smol), and a `#[test]`
//! that is only registered (a plain binary never calls the harness).

use pyo3::prelude::*;

#[pyo3_aio::smol::test]
async fn registered() -> PyResult<()> {
    Ok(())
}

#[pyo3_aio::smol::main(event_loop = |py: Python<'_>| py.import("asyncio")?.call_method0("new_event_loop"))]
async fn main() {
    smol::Timer::after(std::time::Duration::from_millis(1)).await;
}
