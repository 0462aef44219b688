use pyo3::prelude::*;

#[pyo3_aio::tokio::main]
fn main() -> PyResult<()> {
    Ok(())
}
