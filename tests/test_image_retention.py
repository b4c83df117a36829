"""Image retention on a real Docker engine: the images of current and recently used versions
stay (within a disk budget), the others go, another home's images are never touched, and
a removed image is rebuilt from its package when a call needs it.

The engine is shared: every image this module makes belongs to skills whose names carry a
random marker, and the module removes them all at the end.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from click.testing import CliRunner

from runtime.config import Settings
from runtime.image_retention import retain
from runtime.package import package_from_files
from runtime.serving import Service
from runtime.testing import register
from runtime.yard import Yard
from sandbox import Sandbox
from sandbox.images import image_exists
from tests.conftest import WHEELHOUSE
from tests.helpers import make_factory

MARK = uuid.uuid4().hex[:8]


def files(name: str, value: int) -> dict[str, bytes]:
    return {
        "SKILL.md": f"---\nname: {name}\ndescription: Retention probe {MARK}.\n---\n# {name}\n".encode(),
        "skillyard.yaml": b"entrypoint: scripts/main.py:run\n",
        "scripts/main.py": f"def run(params):\n    return {{'v': {value}}}\n".encode(),
    }


def add(yard: Yard, name: str, value: int) -> str:
    """Build the version's image and register it (no gate: retention is what is tested); its tag."""
    content = files(name, value)
    tag, _ = yard.images.build(package_from_files(name, content))
    register(yard, content)
    return tag


@pytest.fixture
def made(docker_client):
    """Tags this test made; all removed at the end, whatever happened."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        try:
            docker_client.api.remove_image(tag)
        except Exception:  # noqa: BLE001 - gone already, or the session's sweep takes it
            pass


def test_retention_keeps_current_and_recent_versions_and_only_this_homes_images(
    yard, settings, docker_client, backend, runner_image, tmp_path, made, monkeypatch
):
    name, gone = f"keep-{MARK}", f"gone-{MARK}"
    v1, v2, v3 = (add(yard, name, i) for i in (1, 2, 3))
    deleted = add(yard, gone, 0)
    made += [v1, v2, v3, deleted]
    assert len({v1, v2, v3, deleted}) == 4 and yard.registry.get(name).version == 3
    yard.registry.record_call(name, 2, True)  # v2 was used just now; v1 never
    yard.delete(gone)  # a deleted skill's image is still this home's to remove
    other = Yard(
        Settings(home=tmp_path / "other", wheelhouse=WHEELHOUSE), sandbox=Sandbox(backend), pool=False
    )
    other.runner = runner_image
    foreign = add(other, f"other-{MARK}", 9)  # another home's version, never used, not current there
    other.registry.set_status(f"other-{MARK}", "retired")
    made.append(foreign)

    dry = retain(docker_client, settings, keep_recent=timedelta(hours=1), grace=timedelta(0), dry_run=True)
    assert {e.tag for e in dry.removed} == {v1, deleted}, dry.to_dict()
    kept = {e.tag: e.reason for e in dry.kept}
    assert kept[v3] == "current version" and kept[v2] == "used recently"
    assert foreign not in kept and all(image_exists(docker_client, t) for t in (v1, v2, v3, deleted))

    # the CLI says the same (a dry run again: nothing goes)
    monkeypatch.setenv("SKILLYARD_HOME", str(settings.home))
    monkeypatch.setenv("SKILLYARD_WHEELHOUSE", str(settings.wheel_dir))
    from runtime.cli import cli
    from runtime.config import get_settings

    get_settings.cache_clear()
    try:
        shown = CliRunner().invoke(
            cli, ["gc", "--images", "--dry-run", "--grace", "0s", "--keep-recent", "1h", "--json"]
        )
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0, shown.output
    assert {e["tag"] for e in json.loads(shown.stdout)["images"]["removed"]} == {v1, deleted}

    report = retain(docker_client, settings, keep_recent=timedelta(hours=1), grace=timedelta(0))
    assert {e.tag for e in report.removed} == {v1, deleted} and report.freed_bytes > 0
    assert not image_exists(docker_client, v1) and not image_exists(docker_client, deleted)
    assert (
        image_exists(docker_client, v2)
        and image_exists(docker_client, v3)
        and image_exists(docker_client, foreign)
    )

    # a budget: the recently used version goes once it does not fit; the current one never does
    tight = retain(docker_client, settings, budget=0, keep_recent=timedelta(hours=1), grace=timedelta(0))
    assert [e.tag for e in tight.removed] == [v2] and tight.removed[0].reason.endswith("over the budget")
    assert [e.tag for e in tight.kept if e.skill == name] == [v3] and tight.over_budget
    assert image_exists(docker_client, v3) and not image_exists(docker_client, v2)

    # a removed version's image is rebuilt from its package (by content hash) when a call needs it
    result = yard.run(name, {}, version=2)
    assert result.ok and result.output == {"v": 2}, result.error
    assert image_exists(docker_client, v2)
    other.close()


def test_a_server_runs_retention_with_its_settings(tmp_path, docker_client, backend, runner_image, made):
    settings = Settings(
        home=tmp_path / "home",
        wheelhouse=WHEELHOUSE,
        image_budget="0",
        image_grace="0s",
        image_gc_interval_s=0.5,
    )
    setup = make_factory(backend, runner_image)(settings)
    name = f"served-{MARK}"
    old, current = add(setup, name, 1), add(setup, name, 2)
    made += [old, current]
    setup.registry.record_call(name, 1, True)  # used: only the budget of 0 bytes removes it
    setup.close()
    service = Service(settings, yard_factory=make_factory(backend, runner_image))
    try:
        deadline = time.monotonic() + 60
        while image_exists(docker_client, old):
            assert time.monotonic() < deadline, "the server's retention pass never removed the image"
            time.sleep(0.25)
        assert image_exists(docker_client, current)
    finally:
        service.close()
