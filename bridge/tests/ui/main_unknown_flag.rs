#[pyo3_aio::async_std::main(uvloop)]
async fn main() {}
