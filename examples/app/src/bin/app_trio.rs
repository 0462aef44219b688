//! A tokio program whose Python side is a trio application: `framework = "trio"` runs the
//! body as the main task of a `trio.run`. The program checks that the current "loop" is the
//! run's `TrioToken` and awaits a trio coroutine from Rust, and exits non-zero otherwise.
//!
//! Embedded Python does not see a virtualenv by itself: run it with `PYTHONPATH` set to the
//! site-packages that hold trio (`cargo xtask demo` does).

use pyo3::exceptions::PyAssertionError;
use pyo3::prelude::*;

#[pyo3_aio::tokio::main(framework = "trio")]
async fn main() -> PyResult<()> {
    Python::attach(|py| -> PyResult<()> {
        let current = pyo3_aio::get_current_loop(py)?;
        let token = py.import("trio.lowlevel")?.getattr("TrioToken")?;
        if !current.is_instance(&token)? {
            return Err(PyAssertionError::new_err(format!(
                "expected the trio run's TrioToken, get_current_loop() is a {}",
                current.get_type().name()?
            )));
        }
        println!("trio: get_current_loop() is the run's TrioToken");
        Ok(())
    })?;

    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let said = Python::attach(|py| {
        let helpers = pyo3_aio_app_example::import_helpers(py)?;
        pyo3_aio::into_future(helpers.call_method1("trio_sleep", (0.05,))?)
    })?
    .await?;
    let said: String = Python::attach(|py| said.extract(py))?;
    println!("trio: app_helpers.trio_sleep says {said:?}");
    if !said.ends_with("in trio") {
        return Err(PyAssertionError::new_err(format!(
            "expected the coroutine to run under trio: {said}"
        )));
    }
    Ok(())
}
