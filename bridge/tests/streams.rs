//! Streams both ways, through asyncio, on tokio: nothing lost, duplicated or reordered;
//! early exits drop or close the other side.

use std::ffi::CString;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_core::Stream;
use pyo3::prelude::*;
use pyo3::types::PyList;

const ITEMS: u64 = 100_000;

fn python<'py>(py: Python<'py>, code: &str) -> PyResult<Bound<'py, PyModule>> {
    PyModule::from_code(
        py,
        &CString::new(code).unwrap(),
        c"streams_test.py",
        c"streams_test",
    )
}

async fn next<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

struct Counting(u64, u64);

impl futures_core::Stream for Counting {
    type Item = PyResult<u64>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.0 == this.1 {
            return std::task::Poll::Ready(None);
        }
        this.0 += 1;
        std::task::Poll::Ready(Some(Ok(this.0 - 1)))
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn rust_stream_into_async_for_keeps_every_item_in_order() {
    Python::attach(|py| -> PyResult<()> {
        let module = python(
            py,
            "async def collect(stream):\n    return [item async for item in stream]\n",
        )?;
        let stream = pyo3_aio::tokio::stream_into_py(py, Counting(0, ITEMS))?;
        let collected = py
            .import("asyncio")?
            .call_method1("run", (module.call_method1("collect", (stream,))?,))?;
        let collected: Vec<u64> = collected.extract()?;
        assert_eq!(collected, (0..ITEMS).collect::<Vec<_>>());
        Ok(())
    })
    .unwrap();
}

#[test]
fn break_out_of_async_for_drops_the_rust_stream() {
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = SetOnDrop(dropped.clone());
    Python::attach(|py| -> PyResult<()> {
        let module = python(
            py,
            "import asyncio\n\
             async def first_three(stream, dropped):\n    \
                 seen = []\n    \
                 async for item in stream:\n        \
                     seen.append(item)\n        \
                     if len(seen) == 3:\n            \
                         break\n    \
                 await stream.aclose()\n    \
                 for _ in range(2000):\n        \
                     if dropped():\n            \
                         return seen\n        \
                     await asyncio.sleep(0.001)\n    \
                 raise AssertionError('the Rust stream was not dropped')\n",
        )?;
        let stream = pyo3_aio::tokio::stream_into_py(py, {
            let guard = guard;
            let mut inner = Counting(0, u64::MAX);
            futures_stream(move |cx| {
                let _ = &guard;
                std::pin::Pin::new(&mut inner).poll_next(cx)
            })
        })?;
        let flag = dropped.clone();
        let probe = pyo3::types::PyCFunction::new_closure(py, None, None, move |_, _| {
            flag.load(Ordering::SeqCst)
        })?;
        let seen = py.import("asyncio")?.call_method1(
            "run",
            (module.call_method1("first_three", (stream, probe))?,),
        )?;
        assert_eq!(seen.extract::<Vec<u64>>()?, vec![0, 1, 2]);
        Ok(())
    })
    .unwrap();
    assert!(dropped.load(Ordering::SeqCst));
}

fn futures_stream<T>(
    poll: impl FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Option<T>> + Send + Unpin,
) -> impl futures_core::Stream<Item = T> + Send {
    struct PollFn<F>(F);
    impl<F, T> futures_core::Stream for PollFn<F>
    where
        F: FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Option<T>> + Unpin,
    {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            (self.0)(cx)
        }
    }
    PollFn(poll)
}

#[test]
fn python_async_generator_into_rust_stream_keeps_every_item_in_order() {
    Python::attach(|py| -> PyResult<()> {
        let module = python(
            py,
            "import asyncio\n\
             async def numbers(n):\n    \
                 for i in range(n):\n        \
                     if i % 1000 == 0:\n            \
                         await asyncio.sleep(0)\n        \
                     yield i\n\
             async def drive(coroutine):\n    \
                 return await coroutine\n",
        )?;
        let generator = module.call_method1("numbers", (ITEMS,))?.unbind();
        let coroutine = pyo3_aio::tokio::future_into_py(py, async move {
            let mut stream = Python::attach(|py| pyo3_aio::into_stream(generator.into_bound(py)))?;
            let mut received = Vec::new();
            while let Some(item) = next(&mut stream).await {
                received.push(Python::attach(|py| item?.extract::<u64>(py))?);
            }
            Ok(received)
        })?;
        let received = py
            .import("asyncio")?
            .call_method1("run", (module.call_method1("drive", (coroutine,))?,))?;
        assert_eq!(
            received.extract::<Vec<u64>>()?,
            (0..ITEMS).collect::<Vec<_>>()
        );
        Ok(())
    })
    .unwrap();
}

#[test]
fn dropping_the_rust_stream_early_closes_the_python_generator() {
    Python::attach(|py| -> PyResult<()> {
        let module = python(
            py,
            "import asyncio\n\
             events = []\n\
             async def endless():\n    \
                 try:\n        \
                     i = 0\n        \
                     while True:\n            \
                         yield i\n            \
                         i += 1\n            \
                         await asyncio.sleep(0)\n    \
                 finally:\n        \
                     events.append('finally')\n\
             async def drive(coroutine):\n    \
                 taken = await coroutine\n    \
                 for _ in range(2000):\n        \
                     if events:\n            \
                         return taken\n        \
                     await asyncio.sleep(0.001)\n    \
                 raise AssertionError('the generator was not closed')\n",
        )?;
        let generator = module.call_method0("endless")?.unbind();
        let coroutine = pyo3_aio::tokio::future_into_py(py, async move {
            let mut stream = Python::attach(|py| pyo3_aio::into_stream(generator.into_bound(py)))?;
            let mut taken = Vec::new();
            for _ in 0..5 {
                let item = next(&mut stream).await.expect("endless")?;
                taken.push(Python::attach(|py| item.extract::<u64>(py))?);
            }
            drop(stream);
            Ok(taken)
        })?;
        let taken = py
            .import("asyncio")?
            .call_method1("run", (module.call_method1("drive", (coroutine,))?,))?;
        assert_eq!(taken.extract::<Vec<u64>>()?, vec![0, 1, 2, 3, 4]);
        let events = module.getattr("events")?.cast_into::<PyList>()?;
        assert_eq!(events.len(), 1);
        Ok(())
    })
    .unwrap();
}
