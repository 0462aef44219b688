# The Python half of pyo3-aio's synchronous entry points, shared by every pyo3-aio
# extension in the process (it lives in sys.modules as "pyo3_aio._blocking"):
#
# - background loops: asyncio loops on daemon threads of their own, started on first need,
#   that run Python work started from Rust where no other loop can (a blocking call made on
#   a loop's own thread, into_future with no loop running in the process). Loop k serves
#   blocking calls made on loop k - 1's thread, so nesting never waits on itself;
# - RustTask: a concurrent.futures.Future for a Rust future running in the background.
import asyncio
import atexit
import concurrent.futures
import os
import threading

_loops = []  # (loop, thread) by depth
_lock = threading.Lock()
_atexit_registered = False


def _start(depth):
    event_loop = asyncio.new_event_loop()
    started = threading.Event()

    def run():
        asyncio.set_event_loop(event_loop)
        event_loop.call_soon(started.set)
        try:
            event_loop.run_forever()
        finally:
            asyncio.set_event_loop(None)

    name = "pyo3-aio-background-loop" + (f"-{depth}" if depth else "")
    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    started.wait()
    return event_loop, thread


def loop_for(depth):
    """The background loop of `depth`, started if it is not running."""
    global _atexit_registered
    with _lock:
        while len(_loops) <= depth:
            _loops.append(None)
        entry = _loops[depth]
        if entry is None or not entry[1].is_alive() or entry[0].is_closed():
            entry = _loops[depth] = _start(depth)
            if not _atexit_registered:
                atexit.register(shutdown, 1.0)
                _atexit_registered = True
        return entry[0]


def depth_of(event_loop):
    """Which background loop `event_loop` is, or -1."""
    with _lock:
        for depth, entry in enumerate(_loops):
            if entry is not None and entry[0] is event_loop:
                return depth
    return -1


def is_background(event_loop):
    return depth_of(event_loop) >= 0


async def _cancel_all(timeout):
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    await asyncio.get_running_loop().shutdown_asyncgens()


def shutdown(timeout=1.0):
    """Stops every background loop: cancels its tasks, waits up to `timeout` seconds for
    them, stops and closes the loop. Returns True when every loop thread ended. A later
    blocking call or into_future that needs a background loop starts a fresh one."""
    with _lock:
        entries = [entry for entry in _loops if entry is not None]
        _loops.clear()
    stopped = True
    for event_loop, thread in reversed(entries):
        if thread.is_alive() and not event_loop.is_closed():
            try:
                cleanup = asyncio.run_coroutine_threadsafe(_cancel_all(timeout), event_loop)
                cleanup.result(timeout + 1.0)
            except BaseException:
                pass
            try:
                event_loop.call_soon_threadsafe(event_loop.stop)
            except RuntimeError:
                pass
            thread.join(timeout + 1.0)
        if thread.is_alive():
            stopped = False
        elif not event_loop.is_closed():
            event_loop.close()
    return stopped


def _forget_after_fork():
    # The loop threads do not exist in a forked child: start fresh ones there on need.
    global _lock
    _lock = threading.Lock()
    _loops.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


class RustTask(concurrent.futures.Future):
    """A Rust future running in the background, started by a pyo3-aio extension.

    It is a concurrent.futures.Future: result(timeout), exception(timeout), done(),
    cancel(), add_done_callback() and asyncio.wrap_future() work as for any other, and
    `await task` works on any asyncio loop. cancel() drops the Rust future (it returns once
    the future is dropped) and returns False when the result is already there."""

    def __init__(self, control, name):
        super().__init__()
        self._control = control
        self._name = name

    def cancel(self):
        if self.done():
            return self.cancelled()
        self._control.abort()
        return super().cancel()

    def __await__(self):
        return asyncio.wrap_future(self).__await__()

    def __repr__(self):
        return f"<RustTask {self._name} {super().__repr__()[1:-1]}>"


def deliver(task, ok, value):
    """Runs on a background loop: hands the Rust side's outcome to `task`."""
    if task.done():
        return
    try:
        if ok:
            task.set_result(value)
        else:
            task.set_exception(value)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled meanwhile
