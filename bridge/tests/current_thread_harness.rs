//! The test harness on a current-thread tokio runtime. The harness's `main` configures the
//! runtime and gives it a thread that drives it (as `#[main(flavor = "current_thread")]`
//! does), then hands over to `pyo3_aio::testing::main`; every test body then runs on that
//! one thread.

use std::time::Duration;

use pyo3::prelude::*;

const DRIVER: &str = "pyo3-aio-tokio-current-thread";

#[pyo3_aio::tokio::test]
async fn body_runs_on_the_driving_thread() -> PyResult<()> {
    assert_eq!(std::thread::current().name(), Some(DRIVER));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let sleep = Python::attach(|py| {
        pyo3_aio::into_future(py.import("asyncio")?.call_method1("sleep", (0.001,))?)
    })?;
    sleep.await?;
    assert_eq!(std::thread::current().name(), Some(DRIVER));
    Ok(())
}

#[pyo3_aio::tokio::test]
async fn python_awaits_rust_on_the_current_thread_runtime() -> PyResult<()> {
    let coroutine = Python::attach(|py| {
        let coroutine = pyo3_aio::tokio::future_into_py(py, async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(7)
        })?;
        pyo3_aio::into_future(coroutine)
    })?;
    let value = coroutine.await?;
    assert_eq!(Python::attach(|py| value.extract::<i32>(py))?, 7);
    Ok(())
}

fn main() {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    pyo3_aio::tokio::init(builder).expect("nothing has used the runtime yet");
    // pyo3-aio-tokio drives a current-thread runtime on a thread of its own.
    pyo3_aio::testing::main()
}
