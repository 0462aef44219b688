#[pyo3_aio::async_std::main(worker_threads = 4)]
async fn main() {}
