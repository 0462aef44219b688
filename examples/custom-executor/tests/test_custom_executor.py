"""minipool, a custom executor, carrying the bridge: results, errors, cancellation both
ways, streams, and shutdown while conversions are pending. Each test runs on asyncio's
default loop and on uvloop, with its own executor."""

from __future__ import annotations

import asyncio

import pytest

from custom_executor_example import DropProbe, Executor, RustPanic
from loops import PATIENCE, run_directly, wait_until

#: What the bridge raises for a conversion whose future the executor dropped unfinished.
DROPPED = "the Rust future was dropped by the minipool runtime before it completed"
#: What it raises when the executor refuses a new future.
REFUSED = "the minipool runtime could not run the future: it has shut down"
#: The wait of a test marked as a known bridge bug: long enough to see it fail.
KNOWN_BUG_PATIENCE = 0.25


async def double_later(x):
    await asyncio.sleep(0.001)
    return 2 * x


async def raise_later(error):
    await asyncio.sleep(0.001)
    raise error


async def sleep_forever(events):
    """Sleeps until cancelled, and records the cancellation in `events`."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        events.append("cancelled")
        raise


# -- results ------------------------------------------------------------------------------


def test_sleep_returns_its_result(run, executor):
    assert run(lambda: executor.sleep(0.01, "done")) == "done"


def test_a_coroutine_runs_without_a_wrapper(loop_kind, executor):
    assert run_directly(loop_kind, executor.sleep(0.001, 5)) == 5


def test_the_computation_runs_on_a_worker(run, executor):
    async def main():
        return await executor.sum_of_squares(1000), await executor.thread_name()

    total, thread = run(main)
    assert total == sum(i * i for i in range(1000))
    assert thread.startswith("minipool-worker-")


def test_gathered_sleeps_all_return(run, executor):
    async def main():
        return await asyncio.gather(*(executor.sleep(0.01, i) for i in range(100)))

    assert run(main) == list(range(100))


def test_rust_awaits_a_python_coroutine(run, executor):
    assert run(lambda: executor.await_python(double_later(21), delay=0.01)) == 42


# -- errors -------------------------------------------------------------------------------


def test_a_rust_error_is_raised(run, executor):
    with pytest.raises(ValueError, match="^bad input$"):
        run(lambda: executor.fail("bad input"))


def test_a_panic_raises_rust_panic(run, executor):
    with pytest.raises(RustPanic, match="^on purpose$"):
        run(lambda: executor.panic("on purpose"))


def test_a_python_exception_crosses_rust_unchanged(run, executor):
    error = KeyError("raised in Python")
    with pytest.raises(KeyError) as raised:
        run(lambda: executor.await_python(raise_later(error), delay=0.001))
    assert raised.value is error


def test_a_bad_duration_is_refused(executor):
    with pytest.raises(ValueError, match="expected a finite, non-negative number of seconds"):
        executor.sleep(-1)


# -- cancellation, Python -> Rust ---------------------------------------------------------


@pytest.mark.parametrize("made_in", ["python", "rust"])
def test_a_cancelled_awaitable_is_finalized_before_its_task_is_done(run, executor, made_in):
    """A Rust future's destructor is its `finally`: cancelling the Task that awaits it has
    dropped it by the time the Task is done, as a native coroutine's `finally` has run."""

    async def native_pending_forever(finalized):
        try:
            await asyncio.Event().wait()
        finally:
            finalized.append(True)

    async def main():
        if made_in == "python":
            finalized = []
            awaitable = native_pending_forever(finalized)
        else:
            probe = DropProbe()
            awaitable = executor.pending_forever(probe)
        task = asyncio.ensure_future(awaitable)
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return bool(finalized) if made_in == "python" else probe.dropped

    assert run(main)


def test_wait_for_drops_the_rust_future_on_timeout(run, executor):
    probe = DropProbe()

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(executor.pending_forever(probe), 0.01)
        return await wait_until(lambda: probe.dropped)

    assert run(main)


# -- cancellation, Rust -> Python ---------------------------------------------------------


def test_dropping_the_rust_future_cancels_the_python_task(run, executor):
    events = []

    async def main():
        with pytest.raises(TimeoutError, match="the Python task was cancelled"):
            await executor.wait_for(sleep_forever(events), 0.02)
        return await wait_until(lambda: events == ["cancelled"])

    assert run(main)


def test_a_python_task_that_finishes_in_time_is_not_cancelled(run, executor):
    assert run(lambda: executor.wait_for(double_later(2), PATIENCE)) == 4


# -- streams ------------------------------------------------------------------------------


def test_a_stream_yields_every_item(run, executor):
    async def main():
        return [item async for item in executor.count(20, 0.001)]

    assert run(main) == list(range(20))


def test_closing_a_stream_early_drops_it(run, executor):
    probe = DropProbe()

    async def main():
        numbers = executor.count(1_000_000, 0.001, probe)
        async for number in numbers:
            if number == 2:
                break
        await numbers.aclose()
        return await wait_until(lambda: probe.dropped)

    assert run(main)


# -- shutdown -----------------------------------------------------------------------------


def test_shutdown_ends_pending_conversions_with_an_error_naming_the_executor(run, executor):
    probe = DropProbe()
    events = []

    async def main():
        tasks = [
            asyncio.ensure_future(executor.pending_forever(probe)),
            asyncio.ensure_future(executor.sleep(3600)),
            # The delay makes its first poll wait on minipool's timer, so it lives on the
            # executor (a Rust future that awaits Python at once lives on the loop thread).
            asyncio.ensure_future(executor.await_python(sleep_forever(events), delay=0.001)),
        ]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in tasks)
        report = executor.shutdown()
        # Bounded: a conversion that never ends fails here instead of hanging.
        outcomes = await asyncio.wait_for(
            asyncio.gather(*tasks, return_exceptions=True), PATIENCE
        )
        dropped = await wait_until(lambda: probe.dropped)
        cancelled = await wait_until(lambda: events == ["cancelled"])
        return report, outcomes, dropped, cancelled

    report, outcomes, dropped, cancelled = run(main)
    assert report == {"dropped": 3, "busy_workers": 0}
    for outcome in outcomes:
        assert isinstance(outcome, RuntimeError)
        assert str(outcome).startswith(DROPPED)
    assert dropped, "the Rust future was never dropped"
    assert cancelled, "the Python task awaited from Rust was never cancelled"


def test_a_future_living_on_the_loop_thread_needs_no_executor(run, executor):
    async def main():
        # Its first poll is left pending by the Python coroutine it awaits, so the bridge
        # keeps it on the loop thread (`Home::Auto`): the executor's shutdown leaves it be.
        task = asyncio.ensure_future(executor.await_python(double_later(21)))
        await asyncio.sleep(0)
        report = executor.shutdown()
        return report, await asyncio.wait_for(task, PATIENCE)

    assert run(main) == ({"dropped": 0, "busy_workers": 0}, 42)


@pytest.mark.xfail(
    strict=True,
    reason="known bridge bug: a stream whose pump the runtime drops unfinished (at shutdown) "
    "never wakes the pending __anext__ (bridge/src/stream.rs: the pump ends the channel only "
    "when it returns, not when it is dropped)",
)
def test_a_stream_pending_at_shutdown_ends_with_an_error_naming_the_executor(run, executor):
    async def main():
        numbers = executor.count(10, 3600)
        step = asyncio.ensure_future(numbers.__anext__())
        await asyncio.sleep(0.05)
        executor.shutdown()
        # Short: while the bug stands this wait always runs out. Once it is fixed the test
        # passes (XPASS, a failure under `strict`): remove the mark and wait PATIENCE.
        with pytest.raises(RuntimeError, match="minipool"):
            await asyncio.wait_for(step, KNOWN_BUG_PATIENCE)

    run(main)


def test_new_conversions_are_refused_after_shutdown(run, executor):
    executor.shutdown()

    async def main():
        with pytest.raises(RuntimeError, match=f"^{REFUSED}$"):
            await executor.thread_name()
        with pytest.raises(RuntimeError, match=f"^{REFUSED}$"):
            executor.count(3, 0.001)
        # A sleep is polled once inline before it reaches the executor: it finds the timer
        # gone and says so, rather than waiting for a wake-up that cannot come.
        with pytest.raises(RustPanic, match="after the minipool executor shut down"):
            await executor.sleep(1)
        # A future that is ready at its first poll never needs the executor.
        return await executor.sleep(0, "inline")

    assert run(main) == "inline"


def test_shutdown_twice_does_nothing_the_second_time(executor):
    assert executor.shutdown() == {"dropped": 0, "busy_workers": 0}
    assert executor.shutdown() == {"dropped": 0, "busy_workers": 0}


def test_executors_are_independent(run, executor):
    other = Executor(workers=1)
    other.shutdown()

    async def main():
        with pytest.raises(RuntimeError, match=f"^{REFUSED}$"):
            await other.thread_name()
        return await executor.sleep(0.001, "still running")

    assert run(main) == "still running"
