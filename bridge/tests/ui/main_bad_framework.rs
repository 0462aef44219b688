#[pyo3_aio::smol::main(framework = "curio")]
async fn main() {}
