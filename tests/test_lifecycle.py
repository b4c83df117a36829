"""Register, call, version, roll back and export skills: real Docker, real LanceDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime.errors import RegistryError
from runtime.package import load_package, unpack_files
from tests.conftest import ROOT, WHEELHOUSE, write_skill

SCRIPT = textwrap.dedent("""
    import time

    def run(params):
        mode = params.get("mode", "ok")
        if mode == "raise":
            raise ValueError("mode raise was asked for")
        if mode == "sleep":
            time.sleep(30)
        if mode == "hog":
            block = [bytearray(10 * 1024 * 1024) for _ in range(params.get("blocks", 100))]
            return {"n": len(block)}
        if mode == "badtype":
            return {"value": "not a number"}
        if mode == "notjson":
            return {"value": {1, 2}}
        return {"value": params["x"] * 2}
""")
TESTS = textwrap.dedent("""
    import pytest
    from scripts.main import run

    def test_double():
        assert run({"x": 4}) == {"value": 8}

    def test_raise():
        with pytest.raises(ValueError):
            run({"mode": "raise"})

    def test_other_modes():
        assert run({"mode": "badtype"}) == {"value": "not a number"}
        assert run({"mode": "notjson"})["value"] == {1, 2}
        assert run({"mode": "hog", "blocks": 2}) == {"n": 2}
""")
SIDECAR = textwrap.dedent("""
    entrypoint: scripts/main.py:run
    input_schema:
      type: object
      properties:
        x: {type: integer}
        mode: {type: string}
        blocks: {type: integer}
    output_schema:
      type: object
      properties:
        value: {type: integer}
        n: {type: integer}
    limits:
      timeout: 3
      memory: 128m
    examples:
      - input: {x: 21}
""")


@pytest.fixture
def doubler(yard, tmp_path):
    d = write_skill(tmp_path / "v1", "doubler", script=SCRIPT, tests={"test_main.py": TESTS}, sidecar=SIDECAR)
    outcome = yard.add(d)
    assert outcome.status == "registered", outcome.reasons
    return d


def test_call_returns_output_and_counts(yard, doubler):
    result = yard.run("doubler", {"x": 21})
    assert result.ok, result.error
    assert result.output == {"value": 42}
    rec = yard.registry.get("doubler")
    assert rec.calls == 1 and rec.failures == 0 and rec.last_used is not None


def test_long_lived_cold_yard_accounts_off_the_call_path(yard, doubler, settings, backend, runner_image):
    """A strict-isolation server (cold calls, no pool) is long-lived: counters and ledger rows
    are journaled, merged by the writer thread and land by flush()."""
    from runtime.views import TenantYards
    from runtime.yard import Yard
    from sandbox.sandbox import Sandbox

    yards = TenantYards(settings.model_copy(update={"pool_size": 0}))  # what the servers make
    assert yards.shared.long_lived and not yards.shared.use_pool
    yards.close()
    strict = Yard(settings, sandbox=Sandbox(backend), pool=False, long_lived=True)
    strict.runner = runner_image
    try:
        results = [strict.run("doubler", {"x": i}) for i in range(3)]
        assert [r.output for r in results] == [{"value": 0}, {"value": 2}, {"value": 4}]
        assert strict.accounting_thread_running
        strict.flush()
        rec = strict.registry.get("doubler")
        assert (rec.calls, rec.failures) == (3, 0)
        assert [(u["skill"], u["outcome"]) for u in strict.ledger.uses("doubler")] == [("doubler", "ok")] * 3
    finally:
        strict.close()
    assert not yard.long_lived  # the one-shot CLI's yard writes inline (the test above reads at once)


def test_call_rebuilds_an_image_removed_behind_its_back(yard, doubler, docker_client):
    """The tag is cached per content hash; `docker image prune` may remove the image since."""
    assert yard.run("doubler", {"x": 1}).ok
    tag = yard.image_for(yard.package("doubler", 1))
    docker_client.images.remove(tag, force=True)
    result = yard.run("doubler", {"x": 21})
    assert result.ok and result.output == {"value": 42}, result.error
    assert docker_client.images.get(tag).tags  # built again, under the same content-hash tag


@pytest.mark.parametrize(
    "params,kind,counted",
    [
        ({"x": "21"}, "invalid_input", False),  # schema: x must be an integer
        ({"mode": "raise"}, "exception", True),  # the entrypoint raised
        ({"mode": "sleep", "x": 1}, "timeout", True),  # killed at the 3 s limit
        ({"mode": "hog"}, "oom", True),  # 1 GB into a 128m limit
        ({"mode": "badtype"}, "bad_output", True),  # output schema violated
        ({"mode": "notjson"}, "bad_output", True),  # not JSON at all
    ],
)
def test_call_errors_are_structured(yard, doubler, params, kind, counted):
    result = yard.run("doubler", params)
    assert not result.ok
    assert result.error.kind == kind, result.error
    assert result.error.message
    rec = yard.registry.get("doubler")
    assert rec.calls == (1 if counted else 0)
    assert rec.failures == (1 if counted else 0)
    mem = yard.memory_text("doubler")
    if kind == "invalid_input":
        assert mem == ""
    else:
        assert f"[{kind}]" in mem and "input: {" in mem  # what failed, on what kind of input


def test_exception_carries_type_and_traceback(yard, doubler):
    result = yard.run("doubler", {"mode": "raise"})
    assert result.error.type == "ValueError"
    assert "mode raise was asked for" in result.error.message
    assert "scripts/main.py" in result.error.traceback


def test_memory_entries_are_deduplicated(yard, doubler):
    for _ in range(3):
        yard.run("doubler", {"mode": "raise"})
    mem = yard.memory_text("doubler")
    assert mem.count("[exception]") == 1 and "(x3)" in mem


def test_unknown_skill_and_blocked_skill(yard, tmp_path):
    assert yard.run("nope", {}).error.kind == "not_found"
    bad = write_skill(
        tmp_path,
        "badone",
        script=SCRIPT,
        tests={"test_main.py": "def test_x():\n    assert False\n"},
        sidecar=SIDECAR,
    )
    assert yard.add(bad).status == "blocked"
    assert yard.run("badone", {"x": 1}).error.kind == "not_registered"


def test_unchanged_package_is_not_regated(yard, doubler, docker_client):
    again = yard.add(doubler)
    assert again.status == "unchanged" and again.version == 1 and not again.built
    assert len(yard.versions("doubler")) == 1


def test_versions_rollback_and_export_restore_exactly(yard, doubler, tmp_path):
    v1_files = load_package(doubler).files
    v2 = tmp_path / "v2" / "doubler"
    import shutil

    shutil.copytree(doubler, v2)
    (v2 / "scripts" / "main.py").write_text(SCRIPT.replace('params["x"] * 2', 'params["x"] * 2 + 0'))
    out2 = yard.add(v2)
    assert out2.status == "registered" and out2.version == 2
    assert yard.registry.get("doubler").version == 2
    rec = yard.rollback("doubler", 1)
    assert rec.version == 1 and rec.current
    assert yard.registry.get("doubler").version == 1
    files, _ = unpack_files(yard.registry.package("doubler", 1))
    assert files == v1_files
    assert yard.run("doubler", {"x": 5}).output == {"value": 10}
    target = yard.export("doubler", tmp_path / "exported")
    assert load_package(target).files == v1_files
    assert load_package(target).content_hash == load_package(doubler).content_hash
    with pytest.raises(Exception, match="not empty"):
        yard.export("doubler", tmp_path / "exported")


def test_rollback_to_blocked_version_is_refused(yard, doubler, tmp_path):
    import shutil

    v2 = tmp_path / "v2" / "doubler"
    shutil.copytree(doubler, v2)
    (v2 / "tests" / "test_main.py").write_text("def test_x():\n    assert False\n")
    assert yard.add(v2).status == "blocked"
    with pytest.raises(RegistryError, match="it is blocked"):
        yard.rollback("doubler", 2)
    assert yard.registry.get("doubler").version == 1


def _cli(*args, home: Path, check=False, input_text=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLYARD_")}
    env.update({"SKILLYARD_HOME": str(home), "SKILLYARD_WHEELHOUSE": str(WHEELHOUSE)})
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        input=input_text,
        check=check,
    )


def test_two_processes_registering_at_once_lose_nothing(tmp_path):
    home = tmp_path / "home"
    srcs = []
    for i in range(4):
        srcs.append(
            write_skill(
                tmp_path / f"s{i}", f"conc-{i}", script=SCRIPT, tests={"test_main.py": TESTS}, sidecar=SIDECAR
            )
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLYARD_")}
    env.update({"SKILLYARD_HOME": str(home), "SKILLYARD_WHEELHOUSE": str(WHEELHOUSE)})
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "runtime", "add", "--json", str(s)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in srcs
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr
    listed = json.loads(_cli("list", "--json", home=home, check=True).stdout)
    assert sorted(r["name"] for r in listed) == [f"conc-{i}" for i in range(4)]
    assert all(r["status"] == "registered" and r["version"] == 1 for r in listed)


def test_cli_run_and_errors(tmp_path):
    home = tmp_path / "home"
    src = write_skill(tmp_path, "doubler", script=SCRIPT, tests={"test_main.py": TESTS}, sidecar=SIDECAR)
    added = _cli("add", "--json", str(src), home=home)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)[0]["status"] == "registered"
    ok = _cli("run", "doubler", "--input", '{"x": 2}', home=home)
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"value": 4}
    env_json = _cli("run", "doubler", "--json", "--input", '{"mode": "raise"}', home=home)
    assert env_json.returncode == 1
    assert json.loads(env_json.stdout)["error"]["kind"] == "exception"
    bad_json = _cli("run", "doubler", "--input", '{"x": ', home=home)
    assert bad_json.returncode != 0 and "not valid JSON" in bad_json.stderr
    deep = _cli("run", "doubler", "--input", "[" * 5000 + "]" * 5000, home=home)
    assert deep.returncode != 0 and "nested deeper" in deep.stderr
    missing = _cli("run", "nope", home=home)
    assert missing.returncode == 1 and "no skill nope" in missing.stderr
    shown = json.loads(_cli("show", "doubler", "--json", home=home, check=True).stdout)
    assert shown["calls"] == 2 and shown["failures"] == 1 and "[exception]" in shown["memory"]
    versions = json.loads(_cli("versions", "doubler", "--json", home=home, check=True).stdout)
    assert [v["version"] for v in versions] == [1]
    searched = json.loads(_cli("search", "double a number", "--json", home=home, check=True).stdout)
    assert searched and searched[0]["name"] == "doubler"
    rejected = _cli("add", "--json", str(tmp_path / "nothing-here"), home=home)
    assert rejected.returncode != 0


MARKUP_SCRIPT = textwrap.dedent("""
    def run(params):
        if params.get("mode") == "raise":
            raise ValueError("bad [/bold] input [values0-2.5]")
        return {"value": 1}
""")
MARKUP_TESTS = textwrap.dedent("""
    import pytest
    from scripts.main import run

    def test_ok():
        assert run({}) == {"value": 1}

    def test_raise():
        with pytest.raises(ValueError):
            run({"mode": "raise"})

    @pytest.mark.parametrize("n", [1, 2])
    def test_fails_for(n):
        assert n == 1
""")


def test_cli_prints_skill_text_literally(tmp_path):
    """Skill-written text is never read as rich markup: `[values0-2.5]` stays, `[/bold]` cannot crash."""
    home = tmp_path / "home"
    src = write_skill(
        tmp_path,
        "brackets",
        script=MARKUP_SCRIPT,
        tests={"test_main.py": MARKUP_TESTS},
        sidecar="entrypoint: scripts/main.py:run\n",
        description="Echoes [values0-2.5] and [bold]x",
    )
    blocked = _cli("add", str(src), home=home)
    assert blocked.returncode == 2, blocked.stderr
    assert "test_fails_for[2]" in blocked.stdout  # the failing case's id, as pytest named it
    # Make the same skill pass, then call it so it raises a message full of closing tags.
    (src / "tests" / "test_main.py").write_text(MARKUP_TESTS.replace("assert n == 1", "assert n in (1, 2)"))
    assert _cli("add", str(src), home=home).returncode == 0
    raised = _cli("run", "brackets", "--input", '{"mode": "raise"}', home=home)
    assert raised.returncode == 1
    assert "MarkupError" not in raised.stderr  # the CLI itself did not crash on the message
    assert "bad [/bold] input [values0-2.5]" in raised.stderr
    shown = _cli("show", "brackets", home=home)
    assert shown.returncode == 0, shown.stderr
    assert "Echoes [values0-2.5] and [bold]x" in shown.stdout
    assert "bad [/bold] input [values0-2.5]" in shown.stdout  # the .memory.md entry


def test_cli_json_errors_are_json(tmp_path):
    """With --json, a failing command still answers on stdout with one JSON object."""
    home = tmp_path / "home"
    for args in (
        ["show", "nope", "--json"],
        ["versions", "nope", "--json"],
        ["run", "nope", "--json", "--input", "{bad"],
        ["rollback", "nope", "9", "--json"],
    ):
        p = _cli(*args, home=home)
        assert p.returncode == 1, (args, p.stderr)
        data = json.loads(p.stdout)
        assert data["ok"] is False and data["error"]["message"], (args, data)
        assert "error:" in p.stderr  # the human line stays on stderr
