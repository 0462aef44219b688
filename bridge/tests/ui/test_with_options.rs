#[pyo3_aio::async_std::test(timeout = 5)]
async fn sleeps() -> pyo3::PyResult<()> {
    Ok(())
}

fn main() {
    pyo3_aio::testing::main()
}
