"""Plants the bugs of docs/RELIABILITY.md's "Planted bugs" in bridge/src, one at a time:
rebuilds the test module with it (maturin, into target/venv), runs test_mutants.py and then
the pytest files that concern it (`-x`), reruns the first failing test 5 times, and puts
bridge/src back (`git checkout -- bridge/src`: run it on a clean tree). One JSON line per
bug goes to stdout and target/mutants.jsonl, the full pytest output to
target/mutant-logs/.

Bug (a) was planted three times (a1-a3) while each loop-bound waker had its own `queued`
flag; it is planted once now, in the one `LoopWaker` that owns that protocol (and the
loop-thread task's own rearm before its poll). Bug (d) is planted in the Rust pump that
replaced the Python one.

Bug (f), `closed` read before enqueueing, is not here: that hand-off is core's
`LoopQueue` now, and loom-tests/tests/planted_bug.rs keeps it planted for the loom models.

    target/venv/bin/python pytests/plant_bugs.py b c e      # some
    target/venv/bin/python pytests/plant_bugs.py            # all (about an hour on 2 cores)
"""
import json, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
LOG = f"{ROOT}/target/mutants.jsonl"

MUTANTS = {
 "b": ("bridge/src/event_loop/registry.rs",
       "        self.shared.clear_fd();\n        self.shared.drain(py)\n",
       "        let drained = self.shared.drain(py);\n        self.shared.clear_fd();\n        drained\n",
       ["test_loop_closed.py", "test_homes.py", "test_local_future.py", "test_into_future.py", "test_stress_loops_in_threads.py"]),
 "c": ("bridge/src/stream/channel.rs",
       "    drop(items);\n    if let Some(waker) = producer {\n        waker.wake();\n    }\n",
       "    drop(items);\n    drop(producer);\n",
       ["test_stream_into_py.py", "test_differential.py"]),
 "e": ("bridge/src/stream/send.rs",
       "        if channel.closed {\n            // Closed while this poll ran",
       "        if std::hint::black_box(false) && channel.closed {\n            // Closed while this poll ran",
       ["test_stream_into_py.py", "test_differential.py"]),
 "g": ("bridge/src/into_future/asyncio.rs",
       "    if already_cancelled {\n",
       "    if std::hint::black_box(false) && already_cancelled {\n",
       ["test_into_future.py", "test_cancellation.py", "test_bad_input.py"]),
 "h": ("bridge/src/coroutine/on_runtime.rs",
       "    running.finish();\n    if let Some(result) = outcome {\n        // Err means the consumer cancelled meanwhile: the result is dropped here.\n        let _ = producer.complete(result);\n    }\n",
       "    if let Some(result) = outcome {\n        // Err means the consumer cancelled meanwhile: the result is dropped here.\n        let _ = producer.complete(result);\n    }\n    running.finish();\n",
       ["test_differential.py", "test_cancellation.py", "test_completion_path.py"]),
 "j1": ("bridge/src/coroutine/on_runtime.rs",
       "        self.gone.store(true, Ordering::SeqCst);\n        if let Some(waker) = lock(&self.on_gone).take() {\n            waker.wake();\n        }\n",
       "        self.gone.store(true, Ordering::SeqCst);\n        drop(lock(&self.on_gone).take());\n",
       ["test_cancellation.py", "test_differential.py", "test_stress_cancellation.py"]),
 "j2": ("bridge/src/coroutine/on_runtime.rs",
       "        if !self.gone.load(Ordering::SeqCst) {\n            return true;\n        }",
       "        if std::hint::black_box(true) || !self.gone.load(Ordering::SeqCst) {\n            return true;\n        }",
       ["test_cancellation.py", "test_differential.py", "test_stress_cancellation.py"]),
 "i": ("bridge/src/coroutine/on_runtime.rs",
       "        if producer.poll_cancelled(cx).is_ready() || !interpreter_alive() {",
       "        if producer.poll_cancelled(cx).is_ready() {",
       ["test_faults_shutdown.py", "test_loop_closed.py"]),
 "k1": ("bridge/src/event_loop/inline_drain.rs",
       "        if mine {\n            self.pending.set(true);\n        }\n",
       "",
       ["test_homes.py", "test_local_future.py", "test_into_future.py"]),
 "k2": ("bridge/src/stream/from_python.rs",
       "        if room && let Some(future) = self.shared.take_space() {",
       "        if room && std::hint::black_box(false) && let Some(future) = self.shared.take_space() {",
       ["test_into_stream.py"]),
 "a": ("bridge/src/event_loop/waker.rs",
       "        self.rearm();\n        self.target.run(py, &self);\n",
       "        self.target.run(py, &self);\n",
       ["test_local_future.py", "test_homes.py", "test_differential.py", "test_cancellation.py"]),
 "d": ("bridge/src/stream/pump_step.rs",
       "        (room == 0 || closed, closed)\n",
       "        (closed, closed)\n",
       ["test_into_stream.py", "test_stress_memory.py"]),
 "k3": ("bridge/src/waiter/mod.rs",
       "            Python::attach(|py| {\n                source.stop(py);\n            });\n        }\n    }\n}\n",
       "            drop(source);\n        }\n    }\n}\n",
       ["test_cancellation.py", "test_differential.py", "test_loop_closed.py", "test_stress_memory.py"]),
}

# "i" also removes the guard in the stream pump; "a" also the loop-thread task's own rearm
# before its poll.
EXTRA = {"a": [("bridge/src/coroutine/on_loop_thread.rs",
                "        task.rearm();\n        let this = task.target();",
                "        let this = task.target();")],
         "i": [("bridge/src/stream/send.rs",
                "if channel.closed || channel.finished || !crate::coroutine::interpreter_alive() {",
                "if channel.closed || channel.finished {")]}


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, **kw)


def apply(path, old, new):
    text = open(f"{ROOT}/{path}").read()
    assert text.count(old) == 1, (path, old[:60], text.count(old))
    open(f"{ROOT}/{path}", "w").write(text.replace(old, new))


def pytest(files, extra=(), log=None):
    start = time.monotonic()
    r = sh([PY, "-m", "pytest", "-q", "-x", "-p", "no:randomly", *extra, *[f"pytests/{f}" for f in files]])
    elapsed = time.monotonic() - start
    if log:
        os.makedirs(f"{ROOT}/target/mutant-logs", exist_ok=True)
        with open(f"{ROOT}/target/mutant-logs/{log}.log", "w") as out:
            out.write(r.stdout + "\n--- stderr ---\n" + r.stderr)
    failed = [l for l in r.stdout.splitlines() if l.startswith(("FAILED", "ERROR"))]
    return {"rc": r.returncode, "seconds": round(elapsed, 1), "failed": failed[:3],
            "tail": r.stdout.strip().splitlines()[-1:] }


def build():
    env = dict(os.environ, VIRTUAL_ENV=os.path.dirname(os.path.dirname(PY)), CARGO_TARGET_DIR=f"{ROOT}/target")
    r = subprocess.run([os.path.join(os.path.dirname(PY), "maturin"), "develop", "--release"], cwd=f"{ROOT}/pytests",
                       env=env, text=True, capture_output=True)
    return r.returncode, r.stderr[-3000:]


def run(name):
    path, old, new, files = MUTANTS[name]
    record = {"mutant": name}
    try:
        apply(path, old, new)
        for p, o, n in EXTRA.get(name, []):
            apply(p, o, n)
        t = time.monotonic()
        rc, err = build()
        record["build_seconds"] = round(time.monotonic() - t, 1)
        if rc != 0:
            record["build_error"] = err
            return record
        record["new"] = pytest(["test_mutants.py"], log=f"{name}-new")
        record["old"] = pytest(files, log=f"{name}-old")
        # Caught by the existing files: is the first failure repeatable?
        if record["old"]["rc"] != 0 and record["old"]["failed"]:
            # "FAILED <node id, which may hold spaces> - <message>"
            node = record["old"]["failed"][0].split(" ", 1)[1].split(" - ", 1)[0]
            repeats = []
            for _ in range(5):
                again = pytest([], ["-o", "timeout=30", node])
                repeats.append((again["rc"], again["seconds"]))
            record["old_repeats_rc"] = repeats
    finally:
        sh(["git", "checkout", "--", "bridge/src"])
        with open(LOG, "a") as out:
            out.write(json.dumps(record) + "\n")
    return record


if __name__ == "__main__":
    for name in sys.argv[1:] or list(MUTANTS):
        print(json.dumps(run(name)), flush=True)
