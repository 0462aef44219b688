#[pyo3_aio::smol::main(flavor = "current_thread")]
async fn main() {}
