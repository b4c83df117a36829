"""The static policy runs on add_many's worker threads: it must be safe to call concurrently."""

import gc
import sys
import threading
import time

from runtime.policy import check_file

SRC = (
    "def test_x():\n    x = " + "(" * 30 + "1" + ")" * 30 + "\n" + "    assert [[[[[[1]]]]]]\n" * 50
).encode()


class _Yields:
    """Garbage whose finaliser gives up the GIL: a collection that runs inside the AST
    constructor hands control to another thread mid-parse, as a busy process does."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        time.sleep(0)


def test_policy_parses_safely_from_many_threads() -> None:
    # Without the policy's guard this fails on CPython 3.11.7 (gh-106905) within a second.
    errors: list[str] = []

    def work() -> None:
        try:
            for _ in range(150):
                gc.disable()  # leave the garbage for the parse's own allocations to collect
                for _ in range(50):
                    _Yields()
                gc.enable()
                check_file("tests/test_x.py", SRC, is_test=True)
        except Exception as exc:  # noqa: BLE001 - the test reports whatever a thread hit
            errors.append(repr(exc))

    threshold = gc.get_threshold()
    interval = sys.getswitchinterval()
    gc.set_threshold(3)
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        gc.enable()
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)
    assert errors == []
