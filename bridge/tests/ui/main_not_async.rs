#[pyo3_aio::tokio::main]
fn main() -> pyo3::PyResult<()> {
    Ok(())
}
