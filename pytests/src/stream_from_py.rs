//! Python async iterables consumed from Rust (`into_stream`, `into_stream_with`).

use std::pin::Pin;

use futures_core::Stream;
use pyo3::prelude::*;
use pyo3_aio::{PyStream, StreamOptions};

use crate::Runtime;

async fn next_item<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// `into_stream` (no capacity) or `into_stream_with` that capacity.
fn open_stream(iterable: Bound<'_, PyAny>, capacity: Option<usize>) -> PyResult<PyStream> {
    match capacity {
        None => pyo3_aio::into_stream(iterable),
        Some(capacity) => {
            pyo3_aio::into_stream_with(StreamOptions::default().capacity(capacity), iterable)
        }
    }
}

/// Drains `stream` (at most `limit` items), awaiting `after_each(item)` after each item;
/// an `Err` item is kept as its exception object. The stream is dropped before returning.
async fn drain(
    mut stream: PyStream,
    limit: Option<usize>,
    after_each: Option<Py<PyAny>>,
) -> PyResult<Vec<Py<PyAny>>> {
    let mut items = Vec::new();
    while limit.is_none_or(|limit| items.len() < limit) {
        let Some(item) = next_item(&mut stream).await else {
            break;
        };
        match item {
            Ok(value) => {
                if let Some(after_each) = &after_each {
                    let awaited = Python::attach(|py| {
                        pyo3_aio::into_future(after_each.bind(py).call1((value.clone_ref(py),))?)
                    })?;
                    awaited.await?;
                }
                items.push(value);
            }
            Err(error) => {
                items.push(Python::attach(|py| error.into_value(py).into_any()));
            }
        }
    }
    drop(stream);
    Ok(items)
}

/// Rust drains the Python async iterable through `into_stream` (`into_stream_with` when
/// `capacity` is given) and returns the list of its items, an exception it raised included
/// as the exception object at its position. `limit`: drop the Rust stream after that many
/// items. `after_each`: an async function Rust awaits after each item before pulling the
/// next. `from_runtime`: call `into_stream` from the runtime's thread after a short sleep
/// (otherwise at once, on the loop thread, where bad input raises synchronously).
#[pyfunction]
#[pyo3(signature = (runtime, iterable, *, capacity = None, limit = None, after_each = None, from_runtime = false))]
fn consume<'py>(
    py: Python<'py>,
    runtime: Runtime,
    iterable: Bound<'py, PyAny>,
    capacity: Option<usize>,
    limit: Option<usize>,
    after_each: Option<Py<PyAny>>,
    from_runtime: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if from_runtime {
        let iterable = iterable.unbind();
        let nap = runtime.sleep(0.001);
        runtime.convert(py, async move {
            nap.await;
            let stream = Python::attach(|py| open_stream(iterable.into_bound(py), capacity))?;
            drain(stream, limit, after_each).await
        })
    } else {
        let stream = open_stream(iterable, capacity)?;
        runtime.convert(py, drain(stream, limit, after_each))
    }
}

/// Rust takes the first `k` items of the Python async iterable, then drops the stream.
#[pyfunction]
fn consume_first<'py>(
    py: Python<'py>,
    runtime: Runtime,
    iterable: Bound<'py, PyAny>,
    k: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let stream = pyo3_aio::into_stream(iterable)?;
    runtime.convert(py, drain(stream, Some(k), None))
}

/// Calls `into_stream` (or `into_stream_with`) synchronously and drops the stream at once.
#[pyfunction]
#[pyo3(signature = (iterable, capacity = None))]
fn into_stream_now(iterable: Bound<'_, PyAny>, capacity: Option<usize>) -> PyResult<()> {
    open_stream(iterable, capacity).map(drop)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_functions!(m, consume, consume_first, into_stream_now);
    Ok(())
}
