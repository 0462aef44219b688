#[pyo3_aio::tokio::main(flavor = current_thread)]
async fn main() {}
