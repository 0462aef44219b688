//! A tokio program on uvloop, which pyo3-asyncio's attribute cannot do: the loop factory is
//! named in the attribute. The program checks that the loop really is a `uvloop.Loop`, both
//! from Rust and from inside a Python coroutine, and exits non-zero otherwise.
//!
//! Embedded Python does not see a virtualenv by itself: run it with `PYTHONPATH` set to the
//! site-packages that hold uvloop (`cargo xtask demo` does).

use pyo3::exceptions::PyAssertionError;
use pyo3::prelude::*;

#[pyo3_aio::tokio::main(event_loop = "uvloop.new_event_loop")]
async fn main() -> PyResult<()> {
    // From Rust: the task locals of `main` name the loop it runs on.
    Python::attach(|py| -> PyResult<()> {
        let running = pyo3_aio::get_current_loop(py)?;
        let uvloop_loop = py.import("uvloop")?.getattr("Loop")?;
        if !running.is_instance(&uvloop_loop)? {
            return Err(PyAssertionError::new_err(format!(
                "expected a uvloop.Loop, the program runs on {}",
                running.get_type().name()?
            )));
        }
        println!("uvloop: get_current_loop() is a uvloop.Loop");
        Ok(())
    })?;

    // From Python: a coroutine awaited from Rust sees the same loop running.
    let seen = Python::attach(|py| {
        let helpers = pyo3_aio_app_example::import_helpers(py)?;
        pyo3_aio::into_future(helpers.call_method0("running_loop_type")?)
    })?
    .await?;
    let seen: String = Python::attach(|py| seen.extract(py))?;
    println!("uvloop: inside a coroutine, asyncio.get_running_loop() is a {seen}");
    if seen != "uvloop.Loop" {
        return Err(PyAssertionError::new_err(format!(
            "expected coroutines to run on uvloop.Loop, they run on {seen}"
        )));
    }

    let said = Python::attach(|py| {
        let helpers = pyo3_aio_app_example::import_helpers(py)?;
        pyo3_aio::into_future(helpers.call_method1("py_sleep", (0.05,))?)
    })?
    .await?;
    let said: String = Python::attach(|py| said.extract(py))?;
    println!("uvloop: app_helpers.py_sleep says {said:?}");
    Ok(())
}
