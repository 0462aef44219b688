#[pyo3_aio::tokio::main(framework = "trio", event_loop = "uvloop.new_event_loop")]
async fn main() {}
