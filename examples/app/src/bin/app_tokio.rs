//! pyo3-asyncio's README program on tokio: Python's event loop owns the main thread, and
//! `async fn main` runs on tokio's workers, awaiting `asyncio.sleep` and a coroutine from the
//! example's own Python module.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

#[pyo3_aio::tokio::main]
async fn main() -> PyResult<()> {
    let thread = std::thread::current();
    println!(
        "tokio: main runs on thread {:?}",
        thread.name().unwrap_or("?")
    );

    let started = Instant::now();
    let sleep = Python::attach(|py| {
        let asyncio = py.import("asyncio")?;
        // asyncio.sleep(...) is a coroutine; into_future makes it a Rust future.
        pyo3_aio::into_future(asyncio.call_method1("sleep", (0.1,))?)
    })?;
    println!("tokio: sleeping for 0.1s in asyncio.sleep");
    sleep.await?;
    println!("tokio: done after {:.2}s", started.elapsed().as_secs_f64());

    // A Rust timer and a Python coroutine, awaited side by side.
    let py_sleep = Python::attach(|py| {
        let helpers = pyo3_aio_app_example::import_helpers(py)?;
        pyo3_aio::into_future(helpers.call_method1("py_sleep", (0.05,))?)
    })?;
    let (said, ()) = tokio::join!(py_sleep, tokio::time::sleep(Duration::from_millis(50)));
    let said: String = Python::attach(|py| said?.extract(py))?;
    println!("tokio: app_helpers.py_sleep says {said:?}");

    let sum = Python::attach(|py| {
        let helpers = pyo3_aio_app_example::import_helpers(py)?;
        pyo3_aio::into_future(helpers.call_method1("add_later", (40, 2))?)
    })?
    .await?;
    let sum: i64 = Python::attach(|py| sum.extract(py))?;
    println!("tokio: app_helpers.add_later(40, 2) = {sum}");
    assert_eq!(sum, 42, "the sum computed in Python");
    Ok(())
}
