"""pytest plugin loaded first by the gate: an independent record of what ran.

For every test it records the outcome computed from the raw call information (the
exception, if any, that the test phase raised), not from the report object that other
hooks could rewrite. The host cross-checks these records against the JUnit XML; any
disagreement blocks the skill.

The records go down a pipe to the gate runner (a separate, non-dumpable process), which
keeps them in its own memory and writes them out only after every other process is dead.
A file here could be reopened and rewritten by the tests (an atexit hook did exactly
that); a line sent down the pipe cannot be taken back, and a failure, once sent, sticks.
The fd and os.write are bound in a closure before any test code loads, so rebinding
module attributes does not silence the record.
"""
import json
import os


def _make_emit():
    fd = int(os.environ.pop("SKILLYARD_GATE_RECORDS_FD", "-1"))
    write, dumps = os.write, json.dumps

    def emit(record):
        if fd >= 0:
            write(fd, (dumps(record) + "\n").encode())

    return emit


_emit = _make_emit()


def pytest_collection_finish(session):
    _emit({"kind": "collected", "count": len(session.items), "ids": [i.nodeid for i in session.items][:5000]})


def _raw_outcome(call):
    if call.excinfo is None:
        return "passed"
    name = call.excinfo.typename
    if name in ("Skipped", "SkipTest"):
        return "skipped"
    if name == "XFailed":
        return "xfailed"
    return "failed"


try:
    import pytest

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(item, call):
        _emit({"kind": "phase", "id": item.nodeid, "when": call.when, "raw": _raw_outcome(call)})
        return (yield)
except (ImportError, TypeError):  # pragma: no cover - very old pytest
    pass


def pytest_sessionfinish(session, exitstatus):
    _emit({"kind": "finish", "exitstatus": int(exitstatus), "testsfailed": session.testsfailed,
           "testscollected": session.testscollected})
