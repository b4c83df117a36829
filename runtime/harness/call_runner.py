"""Runs one skill call inside the skill's container (stdlib only).

usage: python3 -c "$(cat call_runner.py)" ENTRY_FILE FUNCTION OUT_FILE   (input JSON on stdin)
Writes {"ok": true, "output": ...} or {"ok": false, "error": {...}} to OUT_FILE.
The host validates the output; this file only carries it out of the container.

It reads all of stdin before it touches the skill (RunSpec.prestart): a warm container starts
this process ahead of the call, so interpreter start-up and these imports are off the call's
path. Passed with -c rather than as a file, so nothing of it lives in the wiped writable dirs.
"""
import importlib
import json
import os
import sys
import traceback


def trimmed_traceback(exc, limit=8):
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-limit)
    text = "".join(frames)
    return text[-4000:]


def main():
    entry_file, func_name, out_file = sys.argv[1], sys.argv[2], sys.argv[3]
    if sys.path and sys.path[0] == "":  # -c puts the working dir first; the skill's own dir it is
        sys.path.pop(0)
    sys.path.insert(0, "/skill")
    module_name = entry_file[:-3].replace("/", ".")
    raw = sys.stdin.buffer.read()  # blocks until the call arrives (see above)
    try:
        params = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        result = {"ok": False, "error": {"type": "InvalidInput", "message": str(exc)}}
    else:
        try:
            module = importlib.import_module(module_name)
            func = getattr(module, func_name)
            output = func(params)
            result = {"ok": True, "output": output}
        except BaseException as exc:  # noqa: BLE001 - any failure becomes a structured error
            result = {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)[:2000],
                                             "traceback": trimmed_traceback(exc)}}
    try:
        data = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        data = json.dumps({"ok": False, "error": {"type": "OutputNotJSON",
                                                  "message": "the entrypoint returned a value that is not JSON: %s" % exc}})
    os.makedirs(os.path.dirname(out_file), mode=0o700, exist_ok=True)
    fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    sys.stdout.flush()
    os._exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
