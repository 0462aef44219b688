//! Blocking on a Python-backed future while holding the GIL deadlocks (the event loop needs
//! the GIL to run the awaitable); debug builds detect it and return an error instead.
//! `cargo test` builds with debug assertions, which is what this checks.

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3_aio::TaskLocals;

const LOOP_THREAD: &str = r#"
import asyncio, threading

loop = asyncio.new_event_loop()
thread = threading.Thread(target=loop.run_forever, daemon=True)
thread.start()

def stop():
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
"#;

#[cfg(debug_assertions)]
#[test]
fn blocking_on_into_future_while_holding_the_gil_is_an_error_not_a_deadlock() {
    Python::attach(|py| {
        let module = PyModule::from_code(
            py,
            &CString::new(LOOP_THREAD).unwrap(),
            c"gil_deadlock.py",
            c"gil_deadlock",
        )
        .unwrap();
        let locals = TaskLocals::new(module.getattr("loop").unwrap());
        let asyncio = py.import("asyncio").unwrap();

        // The mistake: block on the future with the GIL held. The loop's thread can never
        // run the sleep, so without the check this would hang forever.
        let awaitable = asyncio.call_method1("sleep", (0.01, "late")).unwrap();
        let future = pyo3_aio::into_future_with_locals(&locals, awaitable).unwrap();
        let error = futures_lite_block_on(future).unwrap_err();
        assert!(error.is_instance_of::<pyo3::exceptions::PyRuntimeError>(py));
        let message = error.to_string();
        assert!(message.contains("holds the GIL"), "{message}");
        assert!(message.contains("deadlock"), "{message}");

        // The same, with the GIL released while blocking: the loop runs it.
        let awaitable = asyncio.call_method1("sleep", (0.01, "in time")).unwrap();
        let future = pyo3_aio::into_future_with_locals(&locals, awaitable).unwrap();
        let value = py.detach(|| futures_lite_block_on(future)).unwrap();
        assert_eq!(value.extract::<String>(py).unwrap(), "in time");

        module.getattr("stop").unwrap().call0().unwrap();
    });
}

/// A minimal block_on: parks the thread until woken.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}
