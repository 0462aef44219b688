//! A `#[main]` whose event loop factory is a path to a Rust function in a module (smol),
//! next to a `#[test]` that is only registered (a plain binary never calls the harness).

mod factories {
    use pyo3::prelude::*;

    pub fn default_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        py.import("asyncio")?.call_method0("new_event_loop")
    }
}

#[pyo3_aio::smol::test]
async fn registered() -> pyo3::PyResult<()> {
    Ok(())
}

#[pyo3_aio::smol::main(event_loop = factories::default_loop)]
async fn main() {
    smol::Timer::after(std::time::Duration::from_millis(1)).await;
}
