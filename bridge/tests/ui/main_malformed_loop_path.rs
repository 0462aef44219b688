#[pyo3_aio::tokio::main(event_loop = "uvloop")]
async fn main() {}
