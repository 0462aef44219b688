#[pyo3_aio::smol::test]
async fn sleeps(seconds: f64) -> pyo3::PyResult<()> {
    let _ = seconds;
    Ok(())
}

fn main() {
    pyo3_aio::testing::main()
}
