"""pytest plugin loaded first by the gate: an independent record of what ran.

For every test it records the outcome computed from the raw call information (the
exception, if any, that the test phase raised), not from the report object that other
hooks could rewrite. The host cross-checks these records against the JUnit XML; any
disagreement blocks the skill. The records file is opened before any test code loads.
"""
import json
import os

_path = os.environ.get("SKILLYARD_GATE_RECORDS")
_fd = os.open(_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600) if _path else None


def _emit(record):
    if _fd is not None:
        os.write(_fd, (json.dumps(record) + "\n").encode())


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
