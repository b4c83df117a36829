"""Shared fixtures: a real Docker engine, the real runner image, real LanceDB in tmp dirs.

The session fixture checks that the suite leaves no skillyard container behind, and
removes every skill image the tests built.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import docker
import pytest

from runtime.config import Settings
from sandbox import Limits, Sandbox
from sandbox.docker_backend import LABEL_MANAGED, DockerBackend
from sandbox.images import Images

ROOT = Path(__file__).resolve().parent.parent
SKILLS = ROOT / "skills"
# Shared across test runs: wheels are downloaded once, like a user's wheelhouse.
WHEELHOUSE = ROOT / ".skillyard" / "wheelhouse"


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    client = docker.from_env(timeout=120)
    client.ping()  # no skip: CI installs and starts the engine (make test does)
    return client


@pytest.fixture(scope="session")
def backend(docker_client) -> DockerBackend:
    # SKILLYARD_RUNTIME=runsc (make test-gvisor) runs every sandbox of the suite under gVisor.
    import os

    return DockerBackend(docker_client, runtime=os.environ.get("SKILLYARD_RUNTIME") or None)


@pytest.fixture(scope="session")
def runner_image(docker_client) -> str:
    return Images(docker_client, WHEELHOUSE).ensure().runner


@pytest.fixture(scope="session")
def sandbox(backend, runner_image) -> Sandbox:
    return Sandbox(backend, image=runner_image, limits=Limits())


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers(docker_client):
    before_images = {img.id for img in docker_client.images.list(filters={"label": "skillyard.kind=skill"})}
    yield
    import os
    import time

    from sandbox.docker_backend import pid_alive

    def ours(c) -> bool:
        # Made by this session, or by a process that is gone (e.g. a CLI subprocess of a test):
        # containers of other live processes (a concurrent run) are theirs to clean.
        pid = int((c.get("Labels") or {}).get("skillyard.pid", "0") or 0)
        return pid == os.getpid() or not pid_alive(pid)

    deadline = time.monotonic() + 10  # background removals (pool discards) may still be in flight
    while True:
        left = [
            c
            for c in docker_client.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=1"})
            if ours(c)
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # Remove skill images this session built (images the session found stay).
    for img in docker_client.images.list(filters={"label": "skillyard.kind=skill"}):
        if img.id not in before_images:
            try:
                docker_client.images.remove(img.id, force=True)
            except docker.errors.APIError:
                pass
    assert not left, f"the test session left containers behind: {[c['Names'] for c in left]}"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", wheelhouse=WHEELHOUSE)


@pytest.fixture
def yard(settings, backend, runner_image):
    from runtime.yard import Yard

    y = Yard(settings, sandbox=Sandbox(backend), pool=False)  # cold calls; tests/test_pool.py covers the pool
    y.runner = runner_image  # cached_property: set the already-built runner
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
