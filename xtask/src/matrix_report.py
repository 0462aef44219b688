"""Written by `cargo xtask matrix`: one line per test (outcome, framework, runtime, node id,
the first line of the error) to the file given as --matrix-results, flushed as it goes so a
crash keeps what ran before it. Collection errors are lines too: a module that fails to
import on an old Python is a failure, not fewer tests.

The framework is what a parameter names (the asyncio loop of `loop_kind` or `diff_loop`,
or "trio" as well for `run_anywhere` and anyio's `backend`), else "trio" for the tests of
the trio modules and the trio tests elsewhere (their node ids say "trio"), else "-". The
runtime is the `runtime` parameter, or "-" for a test without one."""

import pytest

_out = None
_labels = {}
_reports = {}


def pytest_addoption(parser):
    parser.addoption("--matrix-results", default=None)


def pytest_configure(config):
    global _out
    path = config.getoption("--matrix-results")
    if path:
        _out = open(path, "w", encoding="utf-8")


def pytest_unconfigure(config):
    if _out is not None:
        _out.close()


def _write(outcome, label, nodeid, message=""):
    if _out is not None:
        framework, runtime = label
        clean = " ".join(str(message).split())[:300]
        _out.write(f"{outcome}\t{framework}\t{runtime}\t{nodeid}\t{clean}\n")
        _out.flush()


def _message(report):
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.strip().splitlines()[0] if text.strip() else ""


def pytest_collectreport(report):
    if report.failed:
        _write("error", ("-", "-"), report.nodeid, _message(report))


#: The parameters that name the framework a test runs on: "asyncio", "uvloop" (and
#: "rloop", where installed) or "trio".
_FRAMEWORK_PARAMS = ("loop_kind", "diff_loop", "run_anywhere", "backend")


def _label(item):
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec else {}
    named = [params[name] for name in _FRAMEWORK_PARAMS if name in params]
    if named:
        framework = named[0]
    elif "trio" in item.nodeid:
        framework = "trio"
    else:
        framework = "-"
    return str(framework), str(params.get("runtime", "-"))


def pytest_itemcollected(item):
    _labels[item.nodeid] = _label(item)


def pytest_runtest_logreport(report):
    _reports.setdefault(report.nodeid, []).append(report)


def pytest_runtest_logfinish(nodeid, location):
    reports = _reports.pop(nodeid, [])
    label = _labels.get(nodeid, ("-", "-"))
    for report in reports:
        if report.failed:
            outcome = "failed" if report.when == "call" else "error"
            return _write(outcome, label, nodeid, f"{report.when}: {_message(report)}")
    for report in reports:
        if report.skipped:
            if hasattr(report, "wasxfail"):
                return _write("xfailed", label, nodeid, report.wasxfail)
            return _write("skipped", label, nodeid, _message(report))
    calls = [r for r in reports if r.when == "call"]
    _write("xpassed" if calls and hasattr(calls[0], "wasxfail") else "passed", label, nodeid)
