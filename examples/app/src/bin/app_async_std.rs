//! pyo3-asyncio's README program on async-std: `async fn main` runs on async-std while
//! Python's event loop owns the main thread.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

#[pyo3_aio::async_std::main]
async fn main() -> PyResult<()> {
    let sleep = Python::attach(|py| {
        let asyncio = py.import("asyncio")?;
        pyo3_aio::into_future(asyncio.call_method1("sleep", (0.1,))?)
    })?;
    let started = Instant::now();
    println!("async-std: sleeping for 0.1s in asyncio.sleep");
    sleep.await?;
    println!(
        "async-std: done after {:.2}s",
        started.elapsed().as_secs_f64()
    );

    async_std::task::sleep(Duration::from_millis(10)).await;
    println!("async-std: and 10ms in async_std::task::sleep");

    let said = Python::attach(|py| {
        let helpers = pyo3_aio_app_example::import_helpers(py)?;
        pyo3_aio::into_future(helpers.call_method1("py_sleep", (0.05,))?)
    })?
    .await?;
    let said: String = Python::attach(|py| said.extract(py))?;
    println!("async-std: app_helpers.py_sleep says {said:?}");

    let sum = Python::attach(|py| {
        let helpers = pyo3_aio_app_example::import_helpers(py)?;
        pyo3_aio::into_future(helpers.call_method1("add_later", (40, 2))?)
    })?
    .await?;
    let sum: i64 = Python::attach(|py| sum.extract(py))?;
    println!("async-std: app_helpers.add_later(40, 2) = {sum}");
    assert_eq!(sum, 42, "the sum computed in Python");
    Ok(())
}
