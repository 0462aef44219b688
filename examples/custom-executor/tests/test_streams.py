"""A Rust stream produced on minipool, consumed with `async for`, on asyncio's default loop
and uvloop."""

from __future__ import annotations

from custom_executor_example import DropProbe
from harness import wait_until


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
