#[pyo3_aio::tokio::test]
fn sleeps() -> pyo3::PyResult<()> {
    Ok(())
}

fn main() {
    pyo3_aio::testing::main()
}
