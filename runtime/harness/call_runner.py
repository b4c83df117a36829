"""Runs one call of a skill's Python code inside the skill's container (stdlib only).

usage: python3 -c "$(cat datacodec.py call_runner.py)" OUT_FILE   (the request on stdin)

The request is one wire-encoded object (see datacodec.py), the same for every caller:

    {"module": "scripts.convert", "function": "run", "args": [...], "kwargs": {...}}

A production call of a skill's entrypoint sends exactly this, with `args` = [params];
the test gate's judge sends the same envelope when a test calls any function of the
skill. So a call from a test and a call from an agent are the same request to the same
program in the same image, environment and limits: the skill cannot tell them apart by
anything the runner does. Two gate-only requests exist, and neither ever decides a
verdict: `"describe": true` lists a module's attributes (what the judge's proxy module
needs to resolve `from scripts.x import y`), and `"replay": [...]` with `"trace": true`
re-runs recorded calls with a line tracer to measure coverage (information only).
Mutants (the gate's mutation check) arrive as `"sources": {"scripts/x.py": text}`.

Writes {"ok": true, "value": ...} or {"ok": false, "error": {...}} to OUT_FILE.
The host validates everything; this program only carries values out of the container.

It reads all of stdin before it touches the skill (RunSpec.prestart): a warm container starts
this process ahead of the call, so interpreter start-up and these imports are off the call's
path. Passed with -c rather than as a file, so nothing of it lives in the wiped writable dirs.
The package root is appended to sys.path (never prepended), so no package file can shadow
a module of the standard library or of the runner.
"""

# ruff: noqa: F821 - encode, decode, Uncarriable (datacodec.py) and serve, fork_server_fd
# (sandbox/forkserver.py) come from the files this one is concatenated after (harness.call_runner_source).
import os
import sys

_WHITESPACE = " \t\n\r"
SKILL_ROOT = "/skill"


def json_codec():
    """(loads, dumps) from CPython's JSON accelerator, without importing json.

    Why: json imports re and enum, 13 of the ~32 ms this process takes to start in the
    runner image (measured 2026-12-02), and a warm call made right after another waits
    for all of the start. loads/dumps behave as json.loads/json.dumps(allow_nan=False)
    on str input; anything unexpected (no _json, another signature) -> the json module.
    """
    try:
        import _json

        class Context:  # the attributes _json.make_scanner reads off a json.JSONDecoder
            strict = True
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            parse_constant = float  # NaN, Infinity, -Infinity, as json.loads
            memo = {}

        def default(o):
            raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

        scan = _json.make_scanner(Context)
        encode = _json.make_encoder(
            {}, default, _json.encode_basestring_ascii, None, ":", ",", False, False, False
        )

        def loads(text):
            idx = len(text) - len(text.lstrip(_WHITESPACE))
            try:
                value, end = scan(text, idx)
            except StopIteration as exc:
                raise ValueError(f"Expecting value: char {exc.value}") from None
            if text[end:].strip(_WHITESPACE):
                raise ValueError(f"Extra data: char {end}")
            return value

        def dumps(value):
            return "".join(encode(value, 0))

        if (
            loads(' {"a": [1, 2.5, "\\u00e9", null]} ') != {"a": [1, 2.5, "\u00e9", None]}
            or dumps([{"k": 1.5}]) != '[{"k":1.5}]'
        ):
            raise ValueError("_json behaves unlike json")
        return loads, dumps
    except Exception:  # noqa: BLE001 - any doubt: the real thing
        import json

        return json.loads, lambda value: json.dumps(value, allow_nan=False)


def trimmed_traceback(exc, limit=8):
    import traceback  # only on failure: it costs ~9 ms of start-up

    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-limit)
    text = "".join(frames)
    return text[-4000:]


_BUILTIN_EXCEPTIONS = None


def describe_exception(exc):
    """What the other side needs to raise an equivalent exception: plain data only."""
    kind = type(exc)
    try:
        args = encode(tuple(exc.args))
    except Exception:  # noqa: BLE001 - args of any type: the message still says it all
        args = None
    try:
        message = str(exc)[:2000]
    except Exception:  # noqa: BLE001 - a hostile __str__
        message = f"<unprintable {kind.__name__}>"
    return dict(exception_class(kind), message=message, args=args, traceback=trimmed_traceback(exc))


def exception_class(kind):
    """An exception class as data: its names and the builtin exceptions it derives from."""
    global _BUILTIN_EXCEPTIONS
    if _BUILTIN_EXCEPTIONS is None:
        import builtins

        _BUILTIN_EXCEPTIONS = {
            name
            for name, value in vars(builtins).items()
            if isinstance(value, type) and issubclass(value, BaseException)
        }
    bases = [
        c.__name__ for c in kind.__mro__ if c.__module__ == "builtins" and c.__name__ in _BUILTIN_EXCEPTIONS
    ]
    return {
        "type": kind.__name__,
        "qualname": str(getattr(kind, "__qualname__", kind.__name__)),
        "module": str(getattr(kind, "__module__", "")),
        "bases": bases,
    }


def describe_module(module):
    """Each public attribute of a module: its kind, and its value when it is plain data."""
    attrs = {}
    for name, value in list(vars(module).items()):
        if name.startswith("__") and name != "__all__":
            continue
        if isinstance(value, type):
            if issubclass(value, BaseException):
                attrs[name] = dict(exception_class(value), kind="exception")
            else:
                attrs[name] = {"kind": "class", "module": getattr(value, "__module__", "")}
        elif type(value).__name__ == "module":
            attrs[name] = {"kind": "module", "name": getattr(value, "__name__", "")}
        elif callable(value):
            attrs[name] = {"kind": "function", "module": getattr(value, "__module__", "") or ""}
        else:
            try:
                attrs[name] = {"kind": "value", "value": encode(value)}
            except Exception:  # noqa: BLE001 - not plain data: say what it is
                attrs[name] = {"kind": "object", "type": type(value).__name__}
    return {"attrs": attrs}


def install_sources(sources):
    """Load the given modules from these texts instead of their files (the gate's mutants)."""
    import importlib.machinery

    by_name = {}
    for rel, text in sources.items():
        parts = rel[:-3].split("/")
        package = parts[-1] == "__init__"
        if package:
            parts = parts[:-1]
        by_name[".".join(parts)] = (SKILL_ROOT + "/" + rel, text, package)

    class Loader:
        def __init__(self, path, text):
            self.path, self.text = path, text

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            exec(compile(self.text, self.path, "exec"), module.__dict__)

    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name not in by_name:
                return None
            file, text, package = by_name[name]
            spec = importlib.machinery.ModuleSpec(name, Loader(file, text), origin=file, is_package=package)
            spec.has_location = True
            if package:
                spec.submodule_search_locations = [os.path.dirname(file)]
            return spec

    sys.meta_path.insert(0, Finder)


def call(request):
    module_name = request["module"]
    __import__(module_name)  # not importlib.import_module: importing importlib costs ~1 ms
    module = sys.modules[module_name]
    if request.get("describe"):
        return describe_module(module)
    func = getattr(module, request["function"])
    args = decode(request.get("args") or [])
    kwargs = decode(request.get("kwargs") or {})
    if type(args) is not list or type(kwargs) is not dict:
        raise TypeError("args must be a list and kwargs an object")
    return func(*args, **kwargs)


def replay(request):
    """Run recorded calls one after another under a line tracer; report the lines each one ran."""
    prefix = SKILL_ROOT + "/"
    current = {}

    def local(frame, event, arg):
        if event == "line":
            current.setdefault(frame.f_code.co_filename, set()).add(frame.f_lineno)
        return local

    def tracer(frame, event, arg):
        # Functions, lambdas and comprehensions only (CO_OPTIMIZED): a module or class body runs on import
        # whatever the tests do. Traced, the module body recorded each `def` line as it ran, and a `def`
        # line is also where the function's own code begins: every function counted as covered there, and
        # mutants were placed on the default arguments of functions no test calls, which no test can kill.
        if frame.f_code.co_filename.startswith(prefix) and frame.f_code.co_flags & 0x1:
            current.setdefault(frame.f_code.co_filename, set()).add(frame.f_lineno)
            return local
        return None

    per_call = []
    outcomes = []
    sys.settrace(tracer)
    try:
        for item in request.get("replay") or []:
            current.clear()
            try:
                call(item)
                outcomes.append(True)
            except BaseException:  # noqa: BLE001 - a failing call still covered lines
                outcomes.append(False)
            per_call.append(
                {
                    path[len(prefix) :]: sorted(found)
                    for path, found in current.items()
                    if path.startswith(prefix)
                }
            )
    finally:
        sys.settrace(None)
    return {"per_call": per_call, "outcomes": outcomes}


# Imported once by the fork server so that calls find them loaded. Always these few (the runner
# and most skills use them); then what SKILLYARD_PREIMPORT names: the standard-library modules the
# skill's code imports, and the runner image's own packages when the host says the image has no
# others (see runtime.calls.callee_env). No code of the skill's, or of a package it brought, runs
# in the fork server.
PREIMPORT = (
    "json",
    "re",
    "math",
    "collections",
    "itertools",
    "functools",
    "typing",
    "dataclasses",
    "enum",
    "traceback",
    "importlib.machinery",
)


def preimport():
    extra = [n for n in os.environ.get("SKILLYARD_PREIMPORT", "").split(",") if n]
    for name in PREIMPORT + tuple(extra):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - not in this Python: the call imports what it needs itself
            pass


def main():
    if sys.path and sys.path[0] == "":  # -c puts the working dir first: nothing of it belongs on the path
        sys.path.pop(0)
    sys.path.append(SKILL_ROOT)
    codec = json_codec()
    if fork_server_fd() is not None:
        preimport()
        import gc

        gc.freeze()  # the preimported modules stay out of every call's garbage collections
        serve(lambda: run_call(codec), warm=lambda: warm_up(codec))  # a fresh child per call; never returns
    run_call(codec)


WARM_UP_MODULE = "_skillyard_warm_up"


def warm_up(codec):
    """Run in a call's process forked ahead of its call (sandbox/forkserver.py), before the call
    arrives: the import system and the codec are exercised once, so the pages of the fork
    server they touch are copied (copy-on-write) then rather than on the call's path (a trivial
    call's import took 1.1 ms in a fresh child, 0.3-0.5 ms after this; measured 2026-12-06).
    Runs nothing of the skill's: an empty module of our own is imported through a finder of our
    own and forgotten, and a name is looked up on sys.path without importing anything found.
    Leaves no module, finder or path entry behind."""
    import importlib.machinery

    class Loader:
        @staticmethod
        def create_module(spec):
            return None

        @staticmethod
        def exec_module(module):
            return None

    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            return importlib.machinery.ModuleSpec(name, Loader) if name == WARM_UP_MODULE else None

    sys.meta_path.insert(0, Finder)
    try:
        __import__(WARM_UP_MODULE)
    finally:
        sys.meta_path.remove(Finder)
        sys.modules.pop(WARM_UP_MODULE, None)
    # Every sys.path entry's finder made and its listing cached; find_spec executes nothing.
    importlib.machinery.PathFinder.find_spec(WARM_UP_MODULE)
    loads, dumps = codec
    dumps(loads('{"module": "m", "function": "f", "args": [[1, 2.5, "x", null, true, {}]]}'))


def run_call(codec):
    out_file = sys.argv[-1]
    loads, dumps = codec
    raw = sys.stdin.buffer.read()  # blocks until the call arrives (see above)
    try:
        request = loads(raw.decode("utf-8"))
        if type(request) is not dict or type(request.get("module")) is not str:
            raise ValueError("the request names no module")
    except ValueError as exc:
        result = {"ok": False, "error": {"type": "InvalidInput", "message": str(exc)}}
    else:
        try:
            if request.get("sources"):
                install_sources(request["sources"])
            if request.get("replay") is not None:
                value = replay(request)
            else:
                value = call(request)
            result = {
                "ok": True,
                "value": value
                if request.get("describe") or request.get("replay") is not None
                else encode(value),
            }
        except Uncarriable as exc:
            result = {
                "ok": False,
                "error": {"type": "OutputNotCarried", "message": f"the function returned {exc}"},
            }
        except BaseException as exc:  # noqa: BLE001 - any failure becomes a structured error
            result = {"ok": False, "error": describe_exception(exc)}
    try:
        data = dumps(result)
    except (TypeError, ValueError, RecursionError) as exc:
        data = dumps(
            {
                "ok": False,
                "error": {
                    "type": "OutputNotCarried",
                    "message": f"the function returned a value that cannot be carried: {exc}",
                },
            }
        )
    os.makedirs(os.path.dirname(out_file), mode=0o700, exist_ok=True)
    fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    sys.stdout.flush()
    os._exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
