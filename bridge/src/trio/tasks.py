"""The trio tasks pyo3-aio starts: the drain of a run's wake queue, and the task that runs
an awaitable for a Rust future (`into_future`).

Both are system tasks: they belong to the run, not to the nursery of whoever caused them,
so a cancel scope around the awaiting code does not reach them; pyo3-aio cancels them
itself (the drain when the run ends, an awaitable's task when its Rust future is dropped).
"""

import trio


async def drain(fd, run):
    """Runtime threads that complete a Rust future push onto a lock-free queue and, once
    per burst, write one byte to an eventfd (a pipe off Linux), without the GIL. This waits
    until the descriptor is readable and drains the whole queue: each item reschedules the
    trio task that waits for it."""
    wait_readable = trio.lowlevel.wait_readable
    try:
        while True:
            await wait_readable(fd)
            run()
    finally:
        # The run is ending (system tasks are cancelled after the main task): nothing
        # will drain again, so the conversions still pending are released.
        run.close()


async def run_awaitable(awaitable, done):
    """Awaits `awaitable` inside a cancel scope the Rust side cancels when it drops its
    future, and hands the result or the exception (the same object) to `done`."""
    with trio.CancelScope() as scope:
        done.started(scope)
        try:
            result = await awaitable
        except BaseException as error:
            # A system task must not raise: the exception goes to the Rust side, which
            # raises it where the future is awaited (a Cancelled of this scope is seen by
            # no one: the Rust future is gone).
            done.fail(error)
            return
        done.succeed(result)


def run(coroutine):
    """`trio.run` of a coroutine object made already (trio.run takes an async function),
    with Python's SIGINT handler installed for the run if none is (an embedding program
    may start without it), so that Ctrl-C raises KeyboardInterrupt out of the run."""
    import signal
    import threading

    restore = False
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
        if previous is None or previous == signal.SIG_DFL:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            restore = True
    try:
        return trio.run(lambda: coroutine)
    finally:
        if restore:
            signal.signal(signal.SIGINT, previous)


class _Space:
    """The awaitable `into_stream`'s pump waits on while the buffer is full, under trio:
    `done` / `set_result` as an asyncio future has them (the Rust consumer sets it)."""

    __slots__ = ("_event",)

    def __init__(self):
        self._event = trio.Event()

    def done(self):
        return self._event.is_set()

    def set_result(self, _value):
        self._event.set()

    def __await__(self):
        return self._event.wait().__await__()


class _PumpTask:
    """The pump's system task, cancelled through its own cancel scope (made before the task
    runs, so a cancel that comes first still counts); `done` and `add_done_callback` as an
    asyncio task has them, for a cancelled Rust future's waiter that waits for it."""

    __slots__ = ("_scope", "_done", "_callbacks")

    def __init__(self):
        self._scope = trio.CancelScope()
        self._done = False
        self._callbacks = []

    async def run(self, coroutine):
        try:
            with self._scope:
                await coroutine
        finally:
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback(self)

    def cancel(self, msg=None):
        self._scope.cancel()
        return True

    def done(self):
        return self._done

    def add_done_callback(self, callback):
        self._callbacks.append(callback)

    def get_loop(self):
        return STREAM_HOST


class StreamHost:
    """What `into_stream` asks of an event loop (`create_future`, `create_task`,
    `call_exception_handler`), for a trio run."""

    def create_future(self):
        return _Space()

    def create_task(self, coroutine):
        import contextvars

        task = _PumpTask()
        trio.lowlevel.spawn_system_task(
            task.run,
            coroutine,
            name="pyo3_aio.into_stream",
            context=contextvars.copy_context(),
        )
        return task

    def call_exception_handler(self, context):
        import sys

        print(f"pyo3-aio: {context.get('message')}: {context.get('exception')!r}", file=sys.stderr)


STREAM_HOST = StreamHost()
