//! pyo3-asyncio's `tokio_current_thread` example: tokio's current-thread runtime. Python
//! keeps the main thread, so pyo3-aio drives the runtime from a thread of its own; every
//! task of the program runs there.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

#[pyo3_aio::tokio::main(flavor = "current_thread")]
async fn main() -> PyResult<()> {
    let main_thread = std::thread::current().id();
    let thread = std::thread::current();
    println!(
        "tokio (current_thread): main runs on thread {:?}",
        thread.name().unwrap_or("?")
    );

    let sleep = Python::attach(|py| {
        let asyncio = py.import("asyncio")?;
        pyo3_aio::into_future(asyncio.call_method1("sleep", (0.1,))?)
    })?;
    let started = Instant::now();
    println!("tokio (current_thread): sleeping for 0.1s in asyncio.sleep");
    sleep.await?;
    println!(
        "tokio (current_thread): done after {:.2}s",
        started.elapsed().as_secs_f64()
    );

    // A spawned task runs on the same single thread.
    let spawned = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        std::thread::current().id()
    });
    let spawned_thread = spawned.await.expect("the spawned task finishes");
    assert_eq!(
        spawned_thread, main_thread,
        "current_thread: tasks share one thread"
    );
    println!("tokio (current_thread): a spawned task ran on the same thread");

    let said = Python::attach(|py| {
        let helpers = pyo3_aio_app_example::import_helpers(py)?;
        pyo3_aio::into_future(helpers.call_method1("py_sleep", (0.05,))?)
    })?
    .await?;
    let said: String = Python::attach(|py| said.extract(py))?;
    println!("tokio (current_thread): app_helpers.py_sleep says {said:?}");
    Ok(())
}
