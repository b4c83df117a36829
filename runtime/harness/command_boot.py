"""Runs a skill's Python command the way `python SCRIPT ARGS...` would, for the gate (stdlib only).

usage: python3 [FLAGS] -c "$(install_sources + this file)" ARGS...   (its settings in BOOT_FILE)

Production runs a Python command as it is declared (`python /skill/scripts/x.py ARGS`). The
gate's verdict pass does exactly that too. Only two gate-only runs use this bootstrap, and
neither decides a verdict on its own:

- a *mutant pass* (the mutation check): the mutated module's source arrives in BOOT_FILE and
  replaces the file for this process, whether the module is the script itself or a module
  it imports (by its package name, as the call runner's `install_sources` does, or by any
  other name that resolves to the same file under /skill);
- a *traced replay* (coverage, information only): the lines of the package's files the
  command ran are written to the settings' `trace_out`.

BOOT_FILE is written by the sandbox outside the working dir and removed before the skill's
code runs. Then the script runs as `__main__` with sys.argv and sys.path[0] as `python
SCRIPT` sets them (or the module, as `python -m MODULE` does).
"""

# ruff: noqa: F821 - install_sources and SKILL_ROOT come from the call runner's text this file is joined to
import json
import os
import sys

BOOT_FILE = "/tmp/.sy-boot.json"


def path_sources(sources):
    """Replace the package files in `sources` whatever name a module is imported by."""
    import importlib.machinery

    by_file = {SKILL_ROOT + "/" + rel: text for rel, text in sources.items()}

    class Loader(importlib.machinery.SourceFileLoader):
        def get_data(self, path):
            if path in by_file:
                return by_file[path].encode("utf-8")
            return super().get_data(path)

        def path_stats(self, path):
            raise OSError("no bytecode for a replaced source")  # never a stale .pyc

    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None and spec.origin in by_file:
                spec.loader = Loader(name, spec.origin)
            return spec

    sys.meta_path.insert(0, Finder)  # before the path finder that would load the file itself


def tracer_for(lines):
    prefix = SKILL_ROOT + "/"

    def local(frame, event, arg):
        if event == "line":
            lines.setdefault(frame.f_code.co_filename, set()).add(frame.f_lineno)
        return local

    def tracer(frame, event, arg):
        if frame.f_code.co_filename.startswith(prefix):
            lines.setdefault(frame.f_code.co_filename, set()).add(frame.f_lineno)
            return local
        return None

    return tracer


def boot():
    with open(BOOT_FILE, encoding="utf-8") as handle:
        settings = json.load(handle)
    os.unlink(BOOT_FILE)
    sources = settings.get("sources") or {}
    if sources:
        install_sources(sources)
        path_sources(sources)
    lines = {}
    trace_out = settings.get("trace_out")
    target = settings["target"]
    args = sys.argv[1:]
    if trace_out:
        sys.settrace(tracer_for(lines))
    try:
        if settings.get("mode") == "module":
            import runpy

            sys.argv = [target, *args]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            import types

            rel = target[len(SKILL_ROOT) + 1 :] if target.startswith(SKILL_ROOT + "/") else None
            if rel is not None and rel in sources:
                text = sources[rel]
            else:
                with open(target, encoding="utf-8") as handle:
                    text = handle.read()
            sys.argv = [target, *args]
            sys.path[0] = os.path.dirname(target)
            main = types.ModuleType("__main__")
            main.__file__ = target
            main.__builtins__ = __builtins__
            sys.modules["__main__"] = main
            exec(compile(text, target, "exec"), main.__dict__)
    finally:
        if trace_out:
            sys.settrace(None)
            prefix = SKILL_ROOT + "/"
            report = {
                path[len(prefix) :]: sorted(found) for path, found in lines.items() if path.startswith(prefix)
            }
            with open(trace_out, "w", encoding="utf-8") as handle:
                json.dump(report, handle)


boot()
