#[pyo3_aio::tokio::main(foo = 1)]
async fn main() {}
