#[pyo3_aio::smol::main(event_loop = "uvloop.")]
async fn main() {}
