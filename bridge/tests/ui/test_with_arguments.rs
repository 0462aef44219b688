use pyo3::prelude::*;

#[pyo3_aio::smol::test]
async fn sleeps(seconds: f64) -> PyResult<()> {
    let _ = seconds;
    Ok(())
}

fn main() {
    pyo3_aio::testing::main()
}
