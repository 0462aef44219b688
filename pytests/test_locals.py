"""TaskLocals: inside a converted future, `get_current_loop` is the loop the coroutine was
awaited on (on the loop thread and on the runtime's threads), and `get_current_locals`
carries a copy of the awaiting task's contextvars context."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import uvloop

import pyo3_aio_tests as m
from harness import loop_factory, run_on

user = contextvars.ContextVar("user")


def test_the_run_fixture_uses_the_requested_loop(run, loop_kind):
    async def main():
        return type(asyncio.get_running_loop())

    loop_type = run(main)
    assert issubclass(loop_type, uvloop.Loop) == (loop_kind == "uvloop")


def test_get_current_loop_inside_the_rust_future_is_the_running_loop(run, runtime):
    async def main():
        running = asyncio.get_running_loop()
        # After a sleep: asked from the runtime's thread.
        assert await m.current_loop(runtime) is running
        assert await m.current_loop_after(runtime, 0.001) is running
        # On the inline first poll: asked from the loop thread.
        assert await m.current_loop_after(runtime, 0) is running

    run(main)


def test_after_a_sleep_the_future_runs_off_the_loop_thread(run, runtime):
    """What makes the previous test meaningful: the loop was found from another thread."""

    async def main():
        first, after = await m.where_polled(runtime, 0.001)
        return first, after, threading.get_ident()

    first, after, loop_thread = run(main)
    assert first == loop_thread
    assert after != loop_thread


def test_each_of_two_concurrent_loops_sees_its_own(loop_kind, runtime):
    barrier = threading.Barrier(2, timeout=10)
    results = {}

    async def ask_repeatedly():
        running = asyncio.get_running_loop()
        seen = []
        for _ in range(20):
            seen.extend(await asyncio.gather(m.current_loop(runtime), m.current_loop_after(runtime, 0)))
        return all(loop is running for loop in seen)

    def in_thread(name):
        barrier.wait()
        try:
            results[name] = run_on(loop_kind, ask_repeatedly)
        except BaseException as error:  # noqa: BLE001 - reported below
            results[name] = error

    threads = [threading.Thread(target=in_thread, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {"a": True, "b": True}


def test_sequential_loops_each_see_their_own(loop_kind, runtime):
    async def main():
        return await m.current_loop(runtime) is asyncio.get_running_loop()

    assert [run_on(loop_kind, main) for _ in range(3)] == [True, True, True]


def test_a_coroutine_created_before_any_loop_binds_to_the_loop_that_awaits_it(loop_kind, runtime):
    coroutine = m.current_loop(runtime)  # no loop exists yet
    loop = loop_factory(loop_kind)()
    try:
        assert loop.run_until_complete(coroutine) is loop
    finally:
        loop.close()


def test_current_locals_carry_the_awaiting_tasks_context(run, runtime):
    async def one_task(i):
        user.set(f"user {i}")
        return (
            await m.context_var_after(runtime, 0, user),      # inline first poll
            await m.context_var_after(runtime, 0.001, user),  # runtime thread
        )

    async def main():
        unset = await m.context_var_after(runtime, 0.001, user)
        return unset, await asyncio.gather(*[one_task(i) for i in range(10)])

    unset, seen = run(main)
    assert unset is None
    assert seen == [(f"user {i}", f"user {i}") for i in range(10)]


def test_scope_gives_spawned_tasks_the_loop_and_context(run, runtime):
    async def main():
        user.set("scoped user")

        async def read():
            await asyncio.sleep(0.001)
            return user.get(None), asyncio.get_running_loop()

        value, loop = await m.await_py_in_scope(runtime, read())
        return value, loop is asyncio.get_running_loop()

    assert run(main) == ("scoped user", True)
