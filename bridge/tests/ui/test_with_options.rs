use pyo3::prelude::*;

#[pyo3_aio::async_std::test(timeout = 5)]
async fn sleeps() -> PyResult<()> {
    Ok(())
}

fn main() {
    pyo3_aio::testing::main()
}
