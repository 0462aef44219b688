//! pyo3-asyncio's README program on smol (async-std's successor): `async fn main` runs on
//! smol while Python's event loop owns the main thread.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

#[pyo3_aio::smol::main]
async fn main() -> PyResult<()> {
    let sleep = Python::attach(|py| {
        let asyncio = py.import("asyncio")?;
        pyo3_aio::into_future(asyncio.call_method1("sleep", (0.1,))?)
    })?;
    let started = Instant::now();
    println!("smol: sleeping for 0.1s in asyncio.sleep");
    sleep.await?;
    println!("smol: done after {:.2}s", started.elapsed().as_secs_f64());

    smol::Timer::after(Duration::from_millis(10)).await;
    println!("smol: and 10ms in smol::Timer");

    let said = Python::attach(|py| {
        let helpers = pyo3_aio_app_example::import_helpers(py)?;
        pyo3_aio::into_future(helpers.call_method1("py_sleep", (0.05,))?)
    })?
    .await?;
    let said: String = Python::attach(|py| said.extract(py))?;
    println!("smol: app_helpers.py_sleep says {said:?}");

    let sum = Python::attach(|py| {
        let helpers = pyo3_aio_app_example::import_helpers(py)?;
        pyo3_aio::into_future(helpers.call_method1("add_later", (40, 2))?)
    })?
    .await?;
    let sum: i64 = Python::attach(|py| sum.extract(py))?;
    println!("smol: app_helpers.add_later(40, 2) = {sum}");
    assert_eq!(sum, 42, "the sum computed in Python");
    Ok(())
}
