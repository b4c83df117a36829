"""Runs one skill call inside the skill's container (stdlib only).

usage: python3 -c "$(cat call_runner.py)" ENTRY_FILE FUNCTION OUT_FILE   (input JSON on stdin)
Writes {"ok": true, "output": ...} or {"ok": false, "error": {...}} to OUT_FILE.
The host validates the output; this file only carries it out of the container.

It reads all of stdin before it touches the skill (RunSpec.prestart): a warm container starts
this process ahead of the call, so interpreter start-up and these imports are off the call's
path. Passed with -c rather than as a file, so nothing of it lives in the wiped writable dirs.
"""
import os
import sys

_WHITESPACE = " \t\n\r"


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
            raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)

        scan = _json.make_scanner(Context)
        encode = _json.make_encoder({}, default, _json.encode_basestring_ascii, None, ":", ",", False, False, False)

        def loads(text):
            idx = len(text) - len(text.lstrip(_WHITESPACE))
            try:
                value, end = scan(text, idx)
            except StopIteration as exc:
                raise ValueError("Expecting value: char %d" % exc.value) from None
            if text[end:].strip(_WHITESPACE):
                raise ValueError("Extra data: char %d" % end)
            return value

        def dumps(value):
            return "".join(encode(value, 0))

        if loads(' {"a": [1, 2.5, "\\u00e9", null]} ') != {"a": [1, 2.5, "\u00e9", None]} or dumps([{"k": 1.5}]) != '[{"k":1.5}]':
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


def main():
    entry_file, func_name, out_file = sys.argv[1], sys.argv[2], sys.argv[3]
    if sys.path and sys.path[0] == "":  # -c puts the working dir first; the skill's own dir it is
        sys.path.pop(0)
    sys.path.insert(0, "/skill")
    module_name = entry_file[:-3].replace("/", ".")
    loads, dumps = json_codec()
    raw = sys.stdin.buffer.read()  # blocks until the call arrives (see above)
    try:
        params = loads(raw.decode("utf-8"))
    except ValueError as exc:
        result = {"ok": False, "error": {"type": "InvalidInput", "message": str(exc)}}
    else:
        try:
            __import__(module_name)  # not importlib.import_module: importing importlib costs ~1 ms
            module = sys.modules[module_name]
            func = getattr(module, func_name)
            output = func(params)
            result = {"ok": True, "output": output}
        except BaseException as exc:  # noqa: BLE001 - any failure becomes a structured error
            result = {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)[:2000],
                                             "traceback": trimmed_traceback(exc)}}
    try:
        data = dumps(result)
    except (TypeError, ValueError, RecursionError) as exc:
        data = dumps({"ok": False, "error": {"type": "OutputNotJSON",
                                                  "message": "the entrypoint returned a value that is not JSON: %s" % exc}})
    os.makedirs(os.path.dirname(out_file), mode=0o700, exist_ok=True)
    fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    sys.stdout.flush()
    os._exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
