#[pyo3_aio::async_std::main]
async fn main(name: String) {
    println!("{name}");
}
