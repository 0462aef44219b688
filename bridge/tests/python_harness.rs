//! Rust tests that need the Python main thread, run by `pyo3_aio::testing::main`, on every
//! runtime.

use std::ffi::CString;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

const HELPERS: &str = r#"
import asyncio, contextvars

async def double_later(x):
    await asyncio.sleep(0.001)
    return 2 * x

async def fail_later(message):
    await asyncio.sleep(0.001)
    raise ValueError(message)

async def running_loop():
    return asyncio.get_running_loop()

async def call_and_await(function, *args):
    return await function(*args)
"#;

fn helpers(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    PyModule::from_code(
        py,
        &CString::new(HELPERS).unwrap(),
        c"harness_helpers.py",
        c"harness_helpers",
    )
}

/// Rust awaits `helpers.double_later(x)` and returns the result as a Rust value.
async fn double_in_python(x: i64) -> PyResult<i64> {
    let future = Python::attach(|py| {
        pyo3_aio::into_future(helpers(py)?.call_method1("double_later", (x,))?)
    })?;
    let value = future.await?;
    Python::attach(|py| value.extract::<i64>(py))
}

async fn python_error_crosses() -> PyResult<()> {
    let future = Python::attach(|py| {
        pyo3_aio::into_future(helpers(py)?.call_method1("fail_later", ("from python",))?)
    })?;
    let error = future.await.expect_err("the coroutine raises");
    Python::attach(|py| {
        assert!(error.is_instance_of::<PyValueError>(py));
        assert_eq!(error.value(py).to_string(), "from python");
        assert!(
            error.traceback(py).is_some(),
            "the traceback travels with the exception"
        );
    });
    Ok(())
}

async fn locals_name_the_running_loop() -> PyResult<()> {
    // On a runtime worker: the locals come from `run`.
    let from_rust = Python::attach(|py| pyo3_aio::get_current_loop(py).map(Bound::unbind))?;
    let future =
        Python::attach(|py| pyo3_aio::into_future(helpers(py)?.call_method0("running_loop")?))?;
    let from_python = future.await?;
    Python::attach(|py| {
        assert!(
            from_rust.bind(py).is(from_python.bind(py)),
            "get_current_loop inside run is the loop the coroutine ran on"
        );
    });
    Ok(())
}

#[pyo3_aio::tokio::test]
async fn tokio_awaits_python() -> PyResult<()> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(double_in_python(21).await?, 42);
    Ok(())
}

#[pyo3_aio::tokio::test]
async fn tokio_python_error_crosses() -> PyResult<()> {
    python_error_crosses().await
}

#[pyo3_aio::tokio::test]
async fn tokio_locals() -> PyResult<()> {
    locals_name_the_running_loop().await
}

#[pyo3_aio::tokio::test]
async fn tokio_many_round_trips() -> PyResult<()> {
    let mut total = 0;
    for i in 0..200 {
        total += double_in_python(i).await?;
    }
    assert_eq!(total, (0..200).map(|i| 2 * i).sum::<i64>());
    Ok(())
}

#[pyo3_aio::tokio::test]
async fn tokio_spawned_task_needs_no_scope() -> PyResult<()> {
    let doubled = tokio::spawn(double_in_python(5))
        .await
        .map_err(|error| PyValueError::new_err(error.to_string()))??;
    assert_eq!(doubled, 10);
    Ok(())
}

#[pyo3_aio::async_std::test]
async fn async_std_awaits_python() -> PyResult<()> {
    async_std::task::sleep(Duration::from_millis(1)).await;
    assert_eq!(double_in_python(4).await?, 8);
    python_error_crosses().await?;
    locals_name_the_running_loop().await
}

#[pyo3_aio::smol::test]
async fn smol_awaits_python() -> PyResult<()> {
    smol::Timer::after(Duration::from_millis(1)).await;
    assert_eq!(double_in_python(-3).await?, -6);
    python_error_crosses().await?;
    locals_name_the_running_loop().await
}

/// `run` returns any `Send` value and propagates errors and panics.
#[pyo3_aio::tokio::test]
async fn run_propagates_values_errors_and_panics() -> PyResult<()> {
    // Nested `run` needs its own thread: this test already runs inside one.
    let outcome = std::thread::spawn(|| {
        Python::attach(|py| {
            let value = pyo3_aio::tokio::run(py, async { Ok(vec![1u8, 2, 3]) })?;
            let error = pyo3_aio::tokio::run(py, async {
                Err::<(), _>(PyValueError::new_err("rust error"))
            })
            .expect_err("the error propagates");
            let length = value.len();
            let panic = pyo3_aio::smol::run(py, async move {
                if length == 3 {
                    panic!("planned panic");
                }
                Ok(())
            })
            .expect_err("the panic propagates");
            assert!(error.is_instance_of::<PyValueError>(py));
            assert!(panic.is_instance_of::<pyo3_aio::RustPanic>(py));
            assert!(panic.to_string().contains("planned panic"));
            Ok::<_, PyErr>(value)
        })
    })
    .join()
    .map_err(|_| PyValueError::new_err("the thread panicked"))??;
    assert_eq!(outcome, vec![1, 2, 3]);
    Ok(())
}

/// The body of a test runs on the runtime's workers, never on the loop's (main) thread.
#[pyo3_aio::tokio::test]
async fn tokio_test_body_runs_on_a_worker() -> PyResult<()> {
    let on_worker = || std::thread::current().name() == Some("pyo3-aio-tokio");
    assert!(on_worker(), "the body starts on a tokio worker");
    double_in_python(1).await?;
    assert!(on_worker(), "and resumes on one after awaiting Python");
    Ok(())
}

/// A test with a blocking part: the locals are taken in the async part, where `run` set
/// them, and handed to the blocking pool, which has none of its own.
#[pyo3_aio::tokio::test]
async fn tokio_blocking_part_awaits_python_with_locals() -> PyResult<()> {
    let locals = Python::attach(pyo3_aio::get_current_locals)?;
    let doubled = tokio::task::spawn_blocking(move || -> PyResult<i64> {
        let outside = Python::attach(|py| pyo3_aio::get_current_loop(py).map(drop));
        assert!(
            outside.is_err(),
            "a blocking-pool thread has no task locals"
        );
        let future = Python::attach(|py| {
            let awaitable = helpers(py)?.call_method1("double_later", (21,))?;
            pyo3_aio::into_future_with_locals(&locals, awaitable)
        })?;
        let value = tokio::runtime::Handle::current().block_on(future)?;
        Python::attach(|py| value.extract::<i64>(py))
    })
    .await
    .map_err(|error| PyValueError::new_err(error.to_string()))??;
    assert_eq!(doubled, 42);
    Ok(())
}

#[pyfunction]
fn triple_on_loop_thread(py: Python<'_>, x: i64) -> PyResult<Bound<'_, PyAny>> {
    let x = std::rc::Rc::new(x);
    pyo3_aio::tokio::local_future_into_py(py, async move { Ok(*x * 3) })
}

/// A `!Send` future made by a function that Python calls: the call, and so the future,
/// is on the loop thread.
#[pyo3_aio::tokio::test]
async fn tokio_local_future_made_on_the_loop_thread() -> PyResult<()> {
    let future = Python::attach(|py| {
        let function = wrap_pyfunction!(triple_on_loop_thread, py)?;
        let call = helpers(py)?.call_method1("call_and_await", (function, 7))?;
        pyo3_aio::into_future(call)
    })?;
    let value = future.await?;
    assert_eq!(Python::attach(|py| value.extract::<i64>(py))?, 21);
    Ok(())
}

/// A `!Send` future made in the test body (a runtime worker) is refused by the loop.
#[pyo3_aio::tokio::test]
async fn tokio_local_future_made_off_the_loop_thread_is_refused() -> PyResult<()> {
    let future = Python::attach(|py| {
        let x = std::rc::Rc::new(1);
        let coroutine = pyo3_aio::tokio::local_future_into_py(py, async move { Ok(*x) })?;
        pyo3_aio::into_future(coroutine)
    })?;
    let error = future.await.expect_err("the loop refuses the coroutine");
    Python::attach(|py| {
        assert!(error.is_instance_of::<pyo3::exceptions::PyRuntimeError>(py));
        assert_eq!(
            error.value(py).to_string(),
            "a !Send Rust future was awaited on another thread than the one that created it"
        );
    });
    Ok(())
}

fn main() {
    pyo3_aio::testing::main()
}
