"""Python-side fuzzing of the test module's public functions with odd objects (atheris).

Each input is decoded by a small grammar into a loop kind, a runtime, an entry point and
an object (plain values, coroutines that return / raise / yield junk, awaitables whose
`__await__` misbehaves, async iterators whose `__anext__` misbehaves, futures of another
loop, cancelled futures, nested combinations). The call runs inside a fresh loop and must
end with a result, with one of the exceptions the input itself made (the very same
object), or with an exception of a type on the entry point's allow-list (`ALLOWED`, exact
types: a `RustPanic`, a pyo3 `PanicException`, a stray `StopIteration` or anything else
is a finding); the loop's exception handler must not be called; the loop must still run
a plain coroutine afterwards.

    python pytests/fuzz/fuzz_bridge.py -max_total_time=60 -max_len=512 -timeout=60 "$(mktemp -d)" pytests/fuzz/seeds   # bounded
    python pytests/fuzz/fuzz_bridge.py -max_total_time=300 -max_len=512 -timeout=60 "$(mktemp -d)" pytests/fuzz/seeds  # full

(libFuzzer writes new inputs into the first directory: keep it out of the repository.
`-max_len` leaves room for nested awaitables: libFuzzer would otherwise cap new inputs at
the size of the largest seed. `-timeout` turns an input that hangs into a finding.)

Exits 0 when nothing was found.
"""

from __future__ import annotations

import asyncio
import sys

import atheris

with atheris.instrument_imports():
    import pyo3_aio_tests as m

import uvloop

LOOPS = (asyncio.new_event_loop, uvloop.new_event_loop)
RUNTIMES = m.RUNTIMES
OTHER_LOOP = asyncio.new_event_loop()  # never run: its futures are "of another loop"


class Found(AssertionError):
    pass


class Junk(Exception):
    pass


class OddBase(BaseException):
    pass


class Await:
    def __init__(self, body):
        self.body = body

    def __await__(self):
        return self.body()


class AsyncIter:
    def __init__(self, anext):
        self.anext = anext
        self.calls = 0

    def __aiter__(self):
        return self

    def __anext__(self):
        self.calls += 1
        return self.anext(self.calls)


def plain(fdp: atheris.FuzzedDataProvider):
    choice = fdp.ConsumeIntInRange(0, 9)
    return [
        None,
        fdp.ConsumeInt(8),
        fdp.ConsumeUnicode(8),
        fdp.ConsumeBytes(4),
        fdp.ConsumeFloat(),
        [1, 2],
        {"k": 1},
        object(),
        Junk("value"),
        (lambda: 1),
    ][choice]


#: The exceptions the current input made (`error`): one of them may come back as is.
INJECTED: list = []


def error(fdp):
    made = [Junk("raised"), ValueError("v"), StopIteration(3), StopAsyncIteration(), OddBase("b"),
            asyncio.CancelledError(), GeneratorExit(), KeyError("k")][fdp.ConsumeIntInRange(0, 7)]
    INJECTED.append(made)
    return made


def raise_(exc):
    raise exc


def awaitable(fdp, depth, off_loop=False):
    """A factory of an awaitable. `off_loop`: into_future is called off the loop thread."""
    kind = fdp.ConsumeIntInRange(0, 11)
    value = plain(fdp)
    exc = error(fdp)
    if kind == 0:
        async def returns():
            return value
        return returns
    if kind == 1:
        async def raises():
            await asyncio.sleep(0)
            raise exc
        return raises
    if kind == 2:
        return lambda: Await(lambda: value)  # __await__ returns a non-iterator (or junk)
    if kind == 3:
        return lambda: Await(lambda: raise_(exc))
    if kind == 4:
        def yields():
            yield value
            return 1
        return lambda: Await(yields)
    if kind == 5:
        def stops():
            return iter(()) if value is None else iter([value])
        return lambda: Await(stops)
    if kind == 6:
        return lambda: OTHER_LOOP.create_future()
    if kind == 7:
        def cancelled():
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            return future
        return cancelled
    if kind == 8:
        def finished():
            async def once():
                return 1
            coroutine = once()
            try:
                coroutine.send(None)
            except StopIteration:
                pass
            return coroutine
        return finished
    if kind == 9 and depth < 3:
        inner = awaitable(fdp, depth + 1)
        runtime = RUNTIMES[fdp.ConsumeIntInRange(0, 2)]
        return lambda: m.await_py(runtime, inner())  # Python -> Rust -> Python
    if kind == 10:
        seconds = fdp.ConsumeIntInRange(0, 2) / 1000
        return lambda: m.sleep(RUNTIMES[0], seconds, value)
    return lambda: value  # a plain value: not awaitable


def iterable(fdp):
    kind = fdp.ConsumeIntInRange(0, 6)
    stop_at = fdp.ConsumeIntInRange(1, 4)
    exc = error(fdp)
    value = plain(fdp)

    async def item(n):
        return n

    if kind == 0:
        return AsyncIter(lambda n: value)  # __anext__ returns a non-awaitable
    if kind == 1:
        return AsyncIter(lambda n: raise_(exc) if n >= stop_at else item(n))
    if kind == 2:
        async def late(n):
            raise exc
        return AsyncIter(lambda n: late(n) if n >= stop_at else item(n))
    if kind == 3:
        return AsyncIter(lambda n: OTHER_LOOP.create_future())
    if kind == 4:
        async def generator():
            for n in range(stop_at):
                yield n
            raise exc
        return generator()
    if kind == 5:
        class AiterJunk:
            def __aiter__(self):
                return value
        return AiterJunk()
    return value


#: What an awaitable of `awaitable()` may fail with, besides an exception it was made to
#: raise: not awaitable, or `__await__` returning junk (TypeError); a future of another
#: loop (ValueError from ensure_future, RuntimeError from the Task); a bad yield, PEP 479's
#: StopIteration conversion, an already awaited coroutine, a loop that cannot be found
#: (RuntimeError); a cancelled future (CancelledError).
AWAITING = (TypeError, ValueError, RuntimeError, asyncio.CancelledError)

#: Per entry point (`call`), the exact exception types it may raise besides the injected
#: exceptions themselves. Exact: a subclass (RustPanic, PanicException, InvalidStateError)
#: is a finding unless listed.
ALLOWED = {
    0: (TypeError, ValueError),  # into_future_now: checked synchronously
    1: AWAITING,  # await_py
    2: AWAITING,  # await_py_after (into_future from the runtime's thread)
    3: AWAITING,  # await_py_from_thread (a plain thread, no scope)
    4: AWAITING,  # await_many
    # consume: not an async iterable / __aiter__ junk (TypeError, synchronously or from the
    # runtime's thread); an item's error is returned in the list, not raised.
    5: (TypeError, RuntimeError),
    6: (TypeError,),  # into_stream_now
    7: (),  # the coroutine protocol by hand: every error is caught in `call`
    8: (),  # count_stream with aclose() in between: StopAsyncIteration is caught
    9: AWAITING,  # await_py_with_locals
    # raise_after: the error given, as is; a StopIteration becomes RuntimeError (PEP 479).
    10: (RuntimeError, Junk),
    11: (),  # ready
}

#: The entry point the current input calls.
ENTRY = [None]


async def call(fdp, runtime):
    entry = fdp.ConsumeIntInRange(0, 11)
    ENTRY[0] = entry
    if entry == 0:
        m.into_future_now(awaitable(fdp, 0)())
        return None
    if entry == 1:
        return await m.await_py(runtime, awaitable(fdp, 0)())
    if entry == 2:
        factory = awaitable(fdp, 0, off_loop=True)
        return await m.await_py_after(runtime, fdp.ConsumeIntInRange(0, 2) / 1000, factory)
    if entry == 3:
        return await m.await_py_from_thread(runtime, awaitable(fdp, 0, off_loop=True)())
    if entry == 4:
        factory = awaitable(fdp, 0, off_loop=True)
        return await m.await_many(runtime, factory, fdp.ConsumeIntInRange(0, 3))
    if entry == 5:
        capacity = fdp.ConsumeIntInRange(0, 3) or None
        return await m.consume(runtime, iterable(fdp), capacity=capacity, limit=8,
                               from_runtime=fdp.ConsumeBool())
    if entry == 6:
        m.into_stream_now(iterable(fdp))
        return None
    if entry == 7:
        coroutine = m.sleep(runtime, fdp.ConsumeIntInRange(0, 2) / 1000, plain(fdp))
        operations = fdp.ConsumeIntInRange(0, 4)
        for _ in range(operations):
            op = fdp.ConsumeIntInRange(0, 3)
            try:
                if op == 0:
                    coroutine.send(None)
                elif op == 1:
                    coroutine.send(plain(fdp))
                elif op == 2:
                    coroutine.throw(error(fdp) if fdp.ConsumeBool() else plain(fdp))
                else:
                    coroutine.close()
            except (StopIteration, Exception, OddBase, asyncio.CancelledError, GeneratorExit):
                pass
        coroutine.close()
        return None
    if entry == 8:
        stream = m.count_stream(runtime, fdp.ConsumeIntInRange(0, 5), fdp.ConsumeIntInRange(1, 3))
        items = []
        for _ in range(fdp.ConsumeIntInRange(0, 7)):
            if fdp.ConsumeBool():
                await stream.aclose()
            try:
                items.append(await stream.__anext__())
            except StopAsyncIteration:
                pass
        await stream.aclose()
        return items
    if entry == 9:
        return await m.await_py_with_locals(runtime, asyncio.get_running_loop(), awaitable(fdp, 0)())
    if entry == 10:
        return await m.raise_after(runtime, fdp.ConsumeIntInRange(0, 1) / 1000,
                                   error(fdp) if fdp.ConsumeBool() else Junk("x"))
    return await m.ready(runtime, plain(fdp))


def check_raised(outcome: BaseException):
    """Fails (Found) unless the exception `outcome` that the call raised is an injected
    one coming back as is (never a StopIteration: PEP 479 holds for awaits), or of a type
    allowed for the entry point. (A returned value is never checked: an exception object
    may be a plain result.)"""
    if isinstance(outcome, (SystemExit, KeyboardInterrupt)):
        raise Found(f"{type(outcome).__name__} escaped: {outcome!r}")
    if type(outcome).__name__ == "PanicException":
        raise Found(f"pyo3 PanicException: {outcome!r}")
    if any(outcome is made for made in INJECTED) and not isinstance(outcome, StopIteration):
        return
    entry = ENTRY[0]
    allowed = ALLOWED.get(entry, ())
    if type(outcome) not in allowed:
        names = ", ".join(kind.__name__ for kind in allowed) or "nothing"
        raise Found(
            f"entry point {entry} raised {type(outcome).__name__}: {outcome!r} "
            f"(injected: {INJECTED!r}); it may raise {names} besides what the input injected"
        )


EXECUTED = [0]


def one_input(data: bytes):
    EXECUTED[0] += 1
    INJECTED.clear()
    ENTRY[0] = None
    fdp = atheris.FuzzedDataProvider(data)
    loop = LOOPS[fdp.ConsumeIntInRange(0, 1)]()
    runtime = RUNTIMES[fdp.ConsumeIntInRange(0, 2)]
    reported = []
    loop.set_exception_handler(lambda loop, context: reported.append(context))

    async def main():
        outcome = None
        try:
            outcome = await call(fdp, runtime)
        except BaseException as error:  # noqa: BLE001 - the point is to classify it
            outcome = error
            check_raised(error)
        await asyncio.sleep(0)

        async def still_usable():
            await asyncio.sleep(0)
            return "usable"

        if await still_usable() != "usable":
            raise Found("the loop does not run a plain coroutine any more")
        return outcome

    try:
        task = loop.create_task(main())
        try:
            loop.run_until_complete(task)
        except Found:
            raise
        except BaseException as error:  # noqa: BLE001
            check_raised(error)
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    if reported:
        raise Found(f"the loop's exception handler was called: {reported!r}")


def main():
    import warnings

    # A coroutine the fuzzer made and never awaited is the input's doing, not the bridge's.
    warnings.simplefilter("ignore", RuntimeWarning)
    atheris.instrument_all()  # coverage of this grammar and of asyncio guides the fuzzer
    atheris.Setup(sys.argv, one_input)
    import atexit

    atexit.register(lambda: print(f"fuzz_bridge: {EXECUTED[0]} inputs executed", file=sys.stderr))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
