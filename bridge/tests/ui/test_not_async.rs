use pyo3::prelude::*;

#[pyo3_aio::tokio::test]
fn sleeps() -> PyResult<()> {
    Ok(())
}

fn main() {
    pyo3_aio::testing::main()
}
