#[pyo3_aio::smol::main]
fn main() {}
