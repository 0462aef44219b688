"""`future_into_py_eager` under trio: the Rust future starts at the call (polled inline,
spawned on its runtime if pending) and the call returns a coroutine that awaits its result.

trio's closest native counterpart is a task started at once whose outcome is awaited
later (`native_eager`: a system task, as the Rust future runs outside any nursery; a
cancelled await cancels it, as a cancelled await drops the Rust future). Each scenario that
both can run is run with both (`differential`) and must end the same way.
"""

from __future__ import annotations

import contextvars
import gc

import outcome
import pytest

trio = pytest.importorskip("trio")
import trio.testing  # noqa: E402

import pyo3_aio_tests as m  # noqa: E402
from harness import PATIENCE  # noqa: E402
from test_trio import cancel_while_the_runtime_polls, interrupt_soon  # noqa: E402


class NativeStarted:
    """`async_fn(*args)` started now as a system task; awaiting this awaits its outcome: at
    once if it is done, else until it is (a cancelled await cancels the task). Left
    unawaited, the task runs on, and nothing warns."""

    def __init__(self, async_fn, *args):
        self._done = trio.Event()
        self._result = []
        self._scope = trio.CancelScope()
        trio.lowlevel.spawn_system_task(self._run, async_fn, *args)

    async def _run(self, async_fn, *args):
        with self._scope:
            self._result.append(await outcome.acapture(async_fn, *args))
        self._done.set()

    async def _wait(self):
        if not self._done.is_set():
            try:
                await self._done.wait()
            except BaseException:
                self._scope.cancel()
                raise
        return self._result[0].unwrap()

    def __await__(self):
        return self._wait().__await__()


async def native_sleep(seconds, value):
    await trio.sleep(seconds)
    return value


async def native_raise_after(seconds, error):
    await trio.sleep(seconds)
    raise error


async def native_call_after(seconds, callback):
    await trio.sleep(seconds)
    callback()


async def native_never():
    await trio.sleep_forever()


@pytest.fixture(params=["native", "bridge"])
def eager(request, runtime):
    """The scenario's started futures: trio tasks started now, or the bridge's eager ones."""
    if request.param == "native":
        return {
            "sleep": lambda seconds, value: NativeStarted(native_sleep, seconds, value),
            "raise_after": lambda seconds, error: NativeStarted(native_raise_after, seconds, error),
            "never": lambda: NativeStarted(native_never),
            "call_after": lambda seconds, callback: NativeStarted(native_call_after, seconds, callback),
        }
    return {
        "sleep": lambda seconds, value: m.eager_sleep(runtime, seconds, value),
        "raise_after": lambda seconds, error: m.eager_raise_after(runtime, seconds, error),
        "never": lambda: m.eager_never(runtime),
        "call_after": lambda seconds, callback: m.eager_call_after(runtime, seconds, callback),
    }


async def wait_until(condition):
    with trio.fail_after(PATIENCE):
        while not condition():
            await trio.sleep(0.001)


def test_the_value_arrives(eager):
    async def main():
        return await eager["sleep"](0.001, "value")

    assert trio.run(main) == "value"


def test_it_runs_to_its_end_before_being_awaited(eager):
    async def main():
        finished = []
        started = [eager["call_after"](0.001, lambda: finished.append(True)) for _ in range(20)]
        await wait_until(lambda: len(finished) == 20)
        return [await future for future in started]

    assert trio.run(main) == [None] * 20


def test_unawaited_it_runs_to_its_end(eager):
    async def main():
        finished = []
        eager["call_after"](0.001, lambda: finished.append(True))
        gc.collect()
        await wait_until(lambda: finished)
        return finished

    assert trio.run(main) == [True]


# pytest-trio runs these as trio tests.


@pytest.mark.trio
async def test_a_pending_await_is_a_checkpoint(runtime):
    # A future that never finishes: one that finished before the await (a loaded machine
    # may pause this thread that long) is awaited without a checkpoint, by design.
    future = m.eager_never(runtime)
    with trio.move_on_after(0.005) as scope:
        with trio.testing.assert_checkpoints():
            await future
    assert scope.cancelled_caught


@pytest.mark.trio
async def test_a_ready_one_is_awaited_without_a_checkpoint(runtime):
    future = m.eager_ready(runtime, 5)
    with trio.testing.assert_no_checkpoints():
        assert await future == 5


@pytest.mark.trio
async def test_an_already_cancelled_scope_stops_a_pending_await_at_once(eager):
    future = eager["never"]()
    with trio.CancelScope() as scope:
        scope.cancel()
        await future
        pytest.fail("the await must raise Cancelled")
    assert scope.cancelled_caught


def test_nursery_gathers_results(eager):
    async def main():
        started = [eager["sleep"](0.001 * (index % 5), index) for index in range(200)]
        results = []

        async def one(future):
            results.append(await future)

        async with trio.open_nursery() as nursery:
            for future in started:
                nursery.start_soon(one, future)
        return sorted(results)

    assert trio.run(main) == list(range(200))


def test_exception_crosses_as_the_same_object(eager):
    error = ValueError("boom")

    async def main():
        with pytest.raises(ValueError) as raised:
            await eager["raise_after"](0.001, error)
        return raised.value

    assert trio.run(main) is error


def test_a_panic_becomes_rust_panic(runtime):
    async def main():
        with pytest.raises(m.RustPanic, match="eager kaput"):
            await m.eager_panic_after(runtime, 0.001, "eager kaput")
        return "raised"

    assert trio.run(main) == "raised"


def test_cancel_scope_outcomes_match(eager):
    async def main():
        with trio.move_on_after(0.005) as short:
            await eager["sleep"](60, None)
        long_future = eager["sleep"](0.001, "kept")
        with trio.move_on_after(60) as long:
            value = await long_future
        never = eager["never"]()
        with trio.CancelScope() as already:
            already.cancel()
            await never
        return short.cancelled_caught, long.cancelled_caught, value, already.cancelled_caught

    assert trio.run(main) == (True, False, "kept", True)


def test_fail_after_raises_too_slow(eager):
    async def main():
        with pytest.raises(trio.TooSlowError):
            with trio.fail_after(0.005):
                await eager["sleep"](60, None)
        return "ok"

    assert trio.run(main) == "ok"


def test_shielded_scope_keeps_the_future(eager):
    async def main():
        future = eager["sleep"](0.02, "shielded")
        with trio.move_on_after(0.001):
            with trio.CancelScope(shield=True):
                value = await future
        return value

    assert trio.run(main) == "shielded"


def test_nursery_failure_cancels_pending_siblings(eager):
    error = KeyError("first")

    async def main():
        cancelled = []

        async def sibling(future):
            try:
                await future
            except trio.Cancelled:
                cancelled.append(True)
                raise

        async def failing(future):
            await future

        with pytest.raises(BaseException) as caught:
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(sibling, eager["never"]())
                nursery.start_soon(failing, eager["raise_after"](0.005, error))
        leaves = list(getattr(caught.value, "exceptions", [caught.value]))
        return [leaf is error for leaf in leaves], cancelled

    assert trio.run(main) == ([True], [True, True, True])


def test_keyboard_interrupt_reaches_a_waiting_main_task(eager):
    async def main():
        future = eager["never"]()
        interrupt_soon()
        await future

    with pytest.raises(KeyboardInterrupt):
        trio.run(main)


def test_a_cancelled_await_drops_the_future_before_the_scope_exits(runtime):
    async def main():
        before = m.dropped()
        future = m.eager_never(runtime)
        with trio.move_on_after(0.01) as scope:
            await future
        return scope.cancelled_caught, m.dropped() - before

    assert trio.run(main) == (True, 1)


def test_one_cancel_scope_drops_every_awaited_future(runtime):
    async def main():
        before = m.dropped()
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                for _ in range(100):
                    nursery.start_soon(m.eager_never, runtime)
                await trio.sleep(0.001)
                scope.cancel()
        return m.dropped() - before

    assert trio.run(main) == 100


def test_keyboard_interrupt_drops_the_future(runtime):
    async def main():
        future = m.eager_never(runtime)
        interrupt_soon()
        await future

    before = m.dropped()
    with pytest.raises(KeyboardInterrupt):
        trio.run(main)
    assert m.dropped() - before == 1


def test_the_end_of_the_run_drops_unawaited_futures(runtime):
    async def main():
        futures = [m.eager_never(runtime) for _ in range(10)]
        await trio.sleep(0.001)
        return len(futures)

    before = m.dropped()
    assert trio.run(main) == 10
    assert m.dropped() - before == 10


def test_the_callers_context_at_the_call_is_seen(runtime):
    var = contextvars.ContextVar("var")

    async def main():
        var.set("at the call")
        inline = m.eager_context_var_after(runtime, 0, var)
        later = m.eager_context_var_after(runtime, 0.001, var)
        var.set("at the await")
        return await inline, await later

    assert trio.run(main) == ("at the call", "at the call")


def test_current_loop_inside_it_is_the_runs_token(runtime):
    async def main():
        return await m.eager_current_loop(runtime) is trio.lowlevel.current_trio_token()

    assert trio.run(main)


def test_it_is_awaited_once(runtime):
    async def main():
        future = m.eager_sleep(runtime, 0.001, 1)
        first = await future
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await future
        return first

    assert trio.run(main) == 1


def test_awaited_in_another_run_it_raises(runtime):
    async def start():
        return m.eager_sleep(runtime, 60, None)

    future = trio.run(start)

    async def other():
        with pytest.raises(RuntimeError, match="awaited by a task of that run"):
            await future
        return "raised"

    assert trio.run(other) == "raised"


def test_a_cancel_while_the_runtime_polls_waits_for_the_drop():
    assert cancel_while_the_runtime_polls(lambda latch: latch.eager()) == (True, True, True)
