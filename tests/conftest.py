"""Shared fixtures: a real Docker engine, the real runner image, real LanceDB in tmp dirs.

Only tests that need the engine touch it: they ask for `docker_client` (or a fixture
built on it: backend, runner_image, sandbox, yard), and the first such request pings the
engine and arranges the session's check that no skillyard container is left behind (and
the removal of every skill image the tests built). Tests that need a run's result but not
its isolation use `scripted_yard` (sandbox.testing.ScriptedBackend): no engine at all.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import docker
import pytest

from runtime.config import Settings
from sandbox import Limits, Sandbox
from sandbox.docker_backend import LABEL_MANAGED, DockerBackend, pid_alive
from sandbox.images import Images

ROOT = Path(__file__).resolve().parent.parent
SKILLS = ROOT / "skills"
# Shared across test runs: wheels are downloaded once, like a user's wheelhouse.
WHEELHOUSE = ROOT / ".skillyard" / "wheelhouse"


def _leftovers(client: docker.DockerClient) -> list[str]:
    """Containers of this session, or of a process that is gone (e.g. a CLI subprocess of a
    test), waiting a moment for background removals (pool discards) still in flight.
    Containers of other live processes (a concurrent run) are theirs to clean."""

    def ours(c) -> bool:
        pid = int((c.get("Labels") or {}).get("skillyard.pid", "0") or 0)
        return pid == os.getpid() or not pid_alive(pid)

    deadline = time.monotonic() + 10
    while True:
        left = [
            c for c in client.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=1"}) if ours(c)
        ]
        if not left or time.monotonic() > deadline:
            return [c["Names"] for c in left]
        time.sleep(0.5)


@pytest.fixture(scope="session")
def docker_client(request) -> docker.DockerClient:
    """The engine, for tests that need one; no skip: CI installs and starts it (make test does)."""
    client = docker.from_env(timeout=120)
    client.ping()
    before_images = {img.id for img in client.images.list(filters={"label": "skillyard.kind=skill"})}

    def check_and_clean() -> None:
        left = _leftovers(client)
        # Skill images carry no owner: with runs side by side on one engine, each may keep its
        # images (SKILLYARD_KEEP_TEST_IMAGES=1) rather than remove another run's in use.
        keep = os.environ.get("SKILLYARD_KEEP_TEST_IMAGES") == "1"
        for img in [] if keep else client.images.list(filters={"label": "skillyard.kind=skill"}):
            if img.id not in before_images:  # images the session found stay
                try:
                    client.images.remove(img.id, force=True)
                except docker.errors.APIError:
                    pass
        assert not left, f"the test session left containers behind: {left}"

    request.addfinalizer(check_and_clean)
    return client


@pytest.fixture(scope="session")
def backend(docker_client) -> DockerBackend:
    # SKILLYARD_RUNTIME=runsc (make test-gvisor) runs every sandbox of the suite under gVisor.
    return DockerBackend(docker_client, runtime=os.environ.get("SKILLYARD_RUNTIME") or None)


@pytest.fixture(scope="session")
def runner_image(docker_client) -> str:
    return Images(docker_client, WHEELHOUSE).ensure().runner


@pytest.fixture(scope="session")
def sandbox(backend, runner_image) -> Sandbox:
    return Sandbox(backend, image=runner_image, limits=Limits())


@pytest.fixture
def settings(tmp_path) -> Settings:
    # Six mutants per gate (the default is 10): tests of other things gate many small skills, and the
    # mutation check's own tests (test_gate.py) show what a smaller sample still catches.
    return Settings(home=tmp_path / "home", wheelhouse=WHEELHOUSE, mutants=6)


@pytest.fixture
def yard(settings, backend, runner_image):
    from runtime.yard import Yard

    y = Yard(settings, sandbox=Sandbox(backend), pool=False)  # cold calls; tests/test_pool.py covers the pool
    y.runner = runner_image  # already built: skip the look-up
    yield y
    y.close()


@pytest.fixture
def scripted_backend():
    """A backend with no engine behind it; set its `handler` (or `results`) in the test."""
    from sandbox.testing import ScriptedBackend

    return ScriptedBackend()


@pytest.fixture
def scripted_yard(settings, scripted_backend):
    """A yard whose calls the scripted backend answers: no engine, no images, real LanceDB."""
    from runtime.testing import PrebuiltImages
    from runtime.yard import Yard

    y = Yard(settings, sandbox=Sandbox(scripted_backend), images=PrebuiltImages(), pool=False)
    yield y
    y.close()


@pytest.fixture
def skill_copy(tmp_path):
    """Copy a bundled skill into tmp so a test can change it."""

    def make(name: str) -> Path:
        dest = tmp_path / "src" / name
        shutil.copytree(
            SKILLS / name, dest, ignore=shutil.ignore_patterns("__pycache__", ".coverage", ".memory.md")
        )
        return dest

    return make


def write_skill(
    root: Path,
    name: str,
    *,
    script: str,
    tests: dict[str, str],
    sidecar: str | None = None,
    description: str = "A test skill.",
) -> Path:
    """Write a small skill package for a test."""
    d = root / name
    (d / "scripts").mkdir(parents=True, exist_ok=True)
    (d / "tests").mkdir(parents=True, exist_ok=True)
    (d / "SKILL.md").write_text(f"---\nname: {name}\ndescription: {description}\n---\n# {name}\nUse it.\n")
    (d / "scripts" / "main.py").write_text(script)
    for fname, body in tests.items():
        (d / "tests" / fname).write_text(body)
    (d / "skillyard.yaml").write_text(sidecar if sidecar is not None else "entrypoint: scripts/main.py:run\n")
    return d


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "faults: fault injection (engine restarts, SIGKILLed runtimes, killed containers)"
    )
    config.addinivalue_line("markers", "engine_restart: restarts dockerd; always run last in the session")


def pytest_collection_modifyitems(config, items):
    """Tests that restart the Docker engine run last: they briefly take the engine away."""
    items.sort(key=lambda item: item.get_closest_marker("engine_restart") is not None)  # stable sort
