"""The judge's side of a pass: the skill's modules as proxies, and pytest's reports (stdlib + pytest).

In the judge container the package's Python code does not exist. Importing one of its
modules (`from scripts.convert import run`) gives a proxy module; calling a function of it
sends `{"op": "call", module, function, args, kwargs}` to the runner, which the host
answers by running the skill's code in the callee container, in a fresh process, exactly
as a production call. What comes back is plain data (datacodec.py): a value, or an
exception as type, message and args, raised here as an exception class that derives from
the same builtin exceptions, so `pytest.raises(ValueError)` and `pytest.raises(mod.Error)`
work. No object of the skill's ever exists in this process.

Module attributes that are plain data (constants) come from one `describe` request per
module and pass. Classes are callable like functions (their instances cannot cross, so
calling one fails with a clear error unless it returns plain data); other objects raise
a clear error when used.

The reporter sends each test's outcome to the runner, which keeps them; nothing here
decides a verdict. This module is imported by the zygote before any test code runs.
"""

import builtins
import json
import os
import sys
import threading
import time
import types

import datacodec
import pytest

SHORT = 2500


class CalleeError(Exception):
    """Raised in a test for an exception the skill raised, or a call that failed in the callee.

    Every exception that comes back from the skill derives from this class and from the
    builtin exceptions the skill's exception derived from."""

    callee_message = ""
    callee_traceback = ""
    callee_kind = "exception"

    def __str__(self):
        return self.callee_message or Exception.__str__(self)


class CalleeFailed(CalleeError):
    """The call ended without an answer: timeout, out of memory, a crash, an uncarriable result."""


class Link:
    """The pass child's message stream to the runner; one request at a time."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()
        self.lock = threading.Lock()

    def _write(self, data):
        view = memoryview(str(len(data)).encode() + b"\n" + data)
        while view:
            view = view[os.write(self.fd, view) :]

    def send(self, obj):
        with self.lock:
            self._write(json.dumps(obj).encode())

    def request(self, obj):
        with self.lock:
            self._write(json.dumps(obj).encode())
            return self._receive()

    def receive(self):
        with self.lock:
            return self._receive()

    def _receive(self):
        while True:
            newline = self.buf.find(b"\n")
            if newline >= 0 and len(self.buf) >= newline + 1 + int(self.buf[:newline]):
                end = newline + 1 + int(self.buf[:newline])
                data = bytes(self.buf[newline + 1 : end])
                del self.buf[:end]
                return json.loads(data)
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise CalleeFailed("the judge's link to the runner closed")
            self.buf += chunk


# pytest's plugins no pass needs (the zygote does not import them either): caches and reports
# we never read, and plugins whose end-of-session work (garbage collections) costs ~100 ms a pass.
DISABLED_PLUGINS = (
    "cacheprovider",
    "pastebin",
    "junitxml",
    "pytester",
    "unraisableexception",
    "threadexception",
    "faulthandler",
    "stepwise",
    "doctest",
    "legacypath",
    "setuponly",
    "setupplan",
    "debugging",
)

LINK = None
CURRENT = None  # the test running now: calls are tagged with it (coverage per test)
SELECT = None  # the tests this pass runs, in order (None: all)
TIMES = {}
_EXCEPTION_CLASSES = {}


def exception_class(info):
    """The local class standing for a skill's exception class (one per module and qualname)."""
    key = (str(info.get("module", "")), str(info.get("qualname", info.get("type", "Error"))))
    if key in _EXCEPTION_CLASSES:
        return _EXCEPTION_CLASSES[key]
    base = None
    for name in info.get("bases") or []:
        candidate = getattr(builtins, str(name), None)
        if isinstance(candidate, type) and issubclass(candidate, BaseException):
            base = candidate
            break
    if base is None or not issubclass(base, Exception) and base is not SystemExit:
        base = None  # KeyboardInterrupt, GeneratorExit, BaseException: a plain callee error
    elif issubclass(base, (StopIteration, StopAsyncIteration)):
        # An iterator's "I am done" must not cross as one: raised inside a test's map(), filter() or
        # zip(), it would end the iteration silently (all() of nothing is True). A RuntimeError, as
        # PEP 479 makes of a StopIteration escaping a generator.
        base = RuntimeError
    name = key[1].rsplit(".", 1)[-1] or "Error"
    namespace = {"__module__": key[0] or "skill", "__qualname__": key[1]}
    cls = None
    if base is not None:
        try:
            cls = type(name, (CalleeError, base), namespace)
        except TypeError:  # a layout conflict: keep the callee error
            cls = None
    if cls is None:
        cls = type(name, (CalleeError,), namespace)
    _EXCEPTION_CLASSES[key] = cls
    return cls


def raise_for(error):
    """Turn an error answer into an exception raised in the test."""
    kind = error.get("kind", "exception")
    message = str(error.get("message", ""))
    if kind != "exception":
        exc = CalleeFailed(f"{kind}: {message}")
        exc.callee_kind = kind
        exc.callee_message = f"the call failed in the skill's sandbox ({kind}): {message}"
        raise exc
    cls = exception_class(error)
    args = None
    if error.get("args") is not None:
        try:
            args = datacodec.decode(error["args"])
        except (ValueError, TypeError, RecursionError):
            args = None
    try:
        exc = cls(*args) if isinstance(args, tuple) else cls(message)
    except Exception:  # noqa: BLE001 - a builtin base that wants other arguments
        exc = cls(message)
    exc.callee_message = message
    exc.callee_traceback = str(error.get("traceback") or "")[-4000:]
    raise exc


def _answer(reply):
    for stream, text in ((sys.stdout, reply.get("stdout")), (sys.stderr, reply.get("stderr"))):
        if text:
            stream.write(text)  # what the skill printed, where the test can capture it
    if reply.get("ok"):
        return reply
    raise_for(reply.get("error") or {})


class RemoteFunction:
    """A callable of the skill's module, called in the callee."""

    def __init__(self, module, name):
        self.__module_name = module
        self.__name__ = name
        self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        try:
            wire_args = datacodec.encode(list(args))
            wire_kwargs = datacodec.encode(dict(kwargs))
        except datacodec.Uncarriable as exc:
            raise TypeError(
                f"an argument for {self.__module_name}.{self.__name__} cannot be sent to the skill: {exc}"
            ) from None
        reply = _answer(
            LINK.request(
                {
                    "op": "call",
                    "module": self.__module_name,
                    "function": self.__name__,
                    "args": wire_args,
                    "kwargs": wire_kwargs,
                    "test": CURRENT,
                }
            )
        )
        return datacodec.decode(reply.get("value"))

    def __repr__(self):
        return f"<function {self.__module_name}.{self.__name__} of the skill, called in its sandbox>"


class Unavailable:
    """An attribute of the skill's module that is neither plain data nor callable."""

    def __init__(self, module, name, type_name):
        self._what = (
            f"{module}.{name} is a {type_name} object of the skill: only plain data and functions cross the "
            "sandbox boundary"
        )

    def __getattr__(self, name):
        raise TypeError(self._what)

    def __call__(self, *args, **kwargs):
        raise TypeError(self._what)

    def __repr__(self):
        return f"<unavailable: {self._what}>"


class ProxyModule(types.ModuleType):
    """A module of the skill: attributes resolved through one describe request."""

    def _describe(self):
        cache = self.__dict__.get("_sy_described")
        if cache is None:
            reply = _answer(LINK.request({"op": "describe", "module": self.__name__}))
            cache = reply.get("describe", {}).get("attrs", {})
            object.__setattr__(self, "_sy_described", cache)
        return cache

    def __getattr__(self, name):
        if name.startswith("__") and name not in ("__all__",):
            raise AttributeError(name)
        attrs = self._describe()
        if name == "__all__":
            value = (
                self._resolve(name, attrs[name])
                if name in attrs
                else [n for n in attrs if not n.startswith("_")]
            )
            # `from module import *` in a test must not rebind the test's builtins (a skill exporting its
            # own abs() made `assert abs(got - want) < 1e-6` pass for wrong answers).
            clash = (
                sorted(n for n in value if isinstance(n, str) and hasattr(builtins, n))
                if isinstance(value, (list, tuple))
                else []
            )
            if clash:
                raise ImportError(
                    "from {} import * would replace the test's builtins {} with the skill's: import "
                    "the names the test needs explicitly".format(self.__name__, ", ".join(clash))
                )
        elif name not in attrs:
            submodule = self.__name__ + "." + name
            if submodule in _MODULES:
                __import__(submodule)
                return sys.modules[submodule]
            raise AttributeError(
                f"module {self.__name__!r} (the skill's, in its sandbox) has no attribute {name!r}"
            )
        else:
            value = self._resolve(name, attrs[name])
        object.__setattr__(self, name, value)  # one object per name: `getattr(m, "run") is run` holds
        return value

    def _resolve(self, name, info):
        kind = info.get("kind")
        if kind == "value":
            return datacodec.decode(info.get("value"))
        if kind == "exception":
            return exception_class(info)
        if kind in ("function", "class"):
            return RemoteFunction(self.__name__, name)
        if kind == "module":
            target = str(info.get("name", ""))
            if target in _MODULES:
                __import__(target)
                return sys.modules[target]
            try:
                __import__(target)  # a module of the standard library or an installed package
                return sys.modules[target]
            except Exception:  # noqa: BLE001 - not importable here
                return Unavailable(self.__name__, name, "module")
        return Unavailable(self.__name__, name, str(info.get("type", "unknown")))

    def __setattr__(self, name, value):
        if name.startswith("__") or isinstance(value, types.ModuleType):  # the import system binds submodules
            return object.__setattr__(self, name, value)
        raise TypeError(
            f"{self.__name__}.{name} cannot be changed from a test: the skill's module lives in its own "
            "process "
            "(pass the value as an argument instead)"
        )

    def __dir__(self):
        return sorted(set(self._describe()) | {"__name__", "__doc__"})


_MODULES = set()
_PACKAGES = set()


class ProxyFinder:
    """Finds the skill's modules (and only those) as proxies; everything else imports normally."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name not in _MODULES:
            return None
        from importlib.machinery import ModuleSpec

        spec = ModuleSpec(name, ProxyLoader(), origin="skill:" + name, is_package=name in _PACKAGES)
        if name in _PACKAGES:
            spec.submodule_search_locations = []
        return spec


class ProxyLoader:
    @staticmethod
    def create_module(spec):
        module = ProxyModule(spec.name)
        return module

    @staticmethod
    def exec_module(module):
        pass


class Reporter:
    """Sends every report pytest makes to the runner (which keeps and judges them)."""

    def pytest_collectreport(self, report):
        if report.failed:
            LINK.send(
                {"op": "collect_error", "nodeid": report.nodeid, "detail": str(report.longrepr)[-SHORT:]}
            )

    def pytest_sessionstart(self, session):
        TIMES["session"] = time.monotonic()

    def pytest_sessionfinish(self, session):
        TIMES["finishing"] = time.monotonic()

    def pytest_runtestloop(self, session):
        TIMES["loop"] = time.monotonic()

    def pytest_collection_finish(self, session):
        TIMES["collected"] = time.monotonic()
        LINK.send({"op": "collected", "count": len(session.items)})

    def pytest_collection_modifyitems(self, session, config, items):
        # A mutation pass runs only the tests that ran the mutated line, cheapest first.
        if SELECT is None:
            return
        rank = {nodeid: i for i, nodeid in enumerate(SELECT)}
        keep = sorted((item for item in items if item.nodeid in rank), key=lambda item: rank[item.nodeid])
        dropped = [item for item in items if item.nodeid not in rank]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        global CURRENT
        CURRENT = item.nodeid
        yield
        CURRENT = None

    def pytest_runtest_logreport(self, report):
        message = ""
        detail = ""
        callee = False
        if report.failed or report.skipped:
            longrepr = report.longrepr
            detail = str(longrepr)[-SHORT:]
            if report.skipped and isinstance(longrepr, tuple) and len(longrepr) == 3:
                message = str(longrepr[2])
            else:
                crash = getattr(longrepr, "reprcrash", None)
                message = str(getattr(crash, "message", "") or detail.strip().splitlines()[-1:] or [""])[:500]
            callee = bool(getattr(report, "sy_callee", False))
        LINK.send(
            {
                "op": "report",
                "nodeid": report.nodeid,
                "when": report.when,
                "outcome": report.outcome,
                "message": message,
                "detail": detail,
                "callee": callee,
            }
        )

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        # Mark failures caused by an exception of the callee (not by the test's own checks).
        outcome = yield
        if call.excinfo is not None and isinstance(call.excinfo.value, CalleeError):
            outcome.get_result().sy_callee = True


def run_pass(fd, manifest):
    """In the pass child: read the pass's command, set up the proxies, run pytest once.
    Returns the exit code."""
    global LINK, SELECT
    TIMES["start"] = time.monotonic()
    LINK = Link(fd)
    command = LINK.receive()
    if isinstance(command.get("select"), list):
        SELECT = [str(n) for n in command["select"]]
    _MODULES.update(manifest.get("modules", []))
    _PACKAGES.update(manifest.get("packages", []))
    sys.meta_path.insert(0, ProxyFinder)
    os.chdir(manifest.get("root", "/tmp/skill"))
    args = [
        "-c",
        os.path.join(os.path.dirname(os.path.abspath(datacodec.__file__)), "pytest.ini"),
        "--rootdir",
        manifest.get("root", "/tmp/skill"),
        *(arg for name in DISABLED_PLUGINS for arg in ("-p", "no:" + name)),
        "--import-mode=append",
        "--capture=sys",
    ]
    if command.get("quiet"):
        args += ["-p", "no:terminal"]  # mutation passes: nobody reads their console output
    else:
        args += ["-q", "--tb=short", "--color=no", "-o", "console_output_style=classic"]
    if command.get("maxfail"):
        args += ["--maxfail", str(int(command["maxfail"]))]
    args.append(manifest.get("tests", "tests"))
    try:
        code = int(pytest.main(args, plugins=[Reporter()]))
    except BaseException as exc:  # noqa: BLE001 - reported as an unfinished pass
        sys.stderr.write(f"the pass ended with {exc!r}\n")
        return 3
    TIMES["end"] = time.monotonic()
    LINK.send(
        {
            "op": "finish",
            "exitstatus": code,
            "timing": {k: round(v - TIMES["start"], 4) for k, v in TIMES.items()},
        }
    )
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
    return 0
