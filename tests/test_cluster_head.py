"""A head restart under a server: work fails at once with a clear error while the head is
away, and resumes by itself when it is back -- on a local cluster started the way
`skillyard cluster up` starts one (runtime/local_cluster.py: `ray start` processes, each
in its own process group, stopped by id).

Its own module: a process holds one Ray connection, and test_cluster.py's ends with its
module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from runtime import local_cluster
from runtime.cluster import cluster_backend
from runtime.config import Settings
from sandbox import ClusterUnavailable, Limits, RunSpec
from tests.conftest import WHEELHOUSE


def skillyard(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """The CLI in its own process, as a user in another terminal would run it."""
    env = {
        **os.environ,
        "SKILLYARD_HOME": str(settings.home),
        "SKILLYARD_WHEELHOUSE": str(settings.wheel_dir),
        "SKILLYARD_CLUSTER_NAME": settings.cluster_name,
        "SKILLYARD_RUNNER_IMAGE": settings.runner_image or "",
    }
    env.pop("SKILLYARD_CLUSTER", None)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("skillyard")), "cluster", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture
def one_node(tmp_path, docker_client, runner_image):
    settings = Settings(
        home=tmp_path / "home",
        wheelhouse=WHEELHOUSE,
        runner_image=runner_image,
        cluster_name=f"head-{uuid.uuid4().hex[:8]}",
    )
    address = json.loads(skillyard(settings, "up", "--nodes", "1", "--json").stdout)["address"]
    settings = settings.model_copy(update={"cluster": address})
    try:
        yield settings
    finally:
        cluster_backend(settings).cluster.close()
        skillyard(settings, "down")
        assert not docker_client.api.containers(
            all=True, filters={"label": f"skillyard.cluster={settings.cluster_name}"}
        )


def test_a_head_restart_is_a_clear_error_then_work_resumes(one_node, runner_image):
    backend = cluster_backend(one_node, pooled=False)
    spec = RunSpec(image=runner_image, argv=["python3", "-c", "print(6 * 7)"], limits=Limits(timeout=20))
    assert backend.run(spec).stdout == b"42\n"

    skillyard(one_node, "kill", "0")
    started = time.monotonic()
    with pytest.raises(ClusterUnavailable) as caught:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a run already under way may still finish
            backend.run(spec)
    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert one_node.cluster.rpartition(":")[2] in message and "skillyard cluster up" in message

    skillyard(one_node, "up", "--nodes", "1")
    deadline = time.monotonic() + 90
    while True:
        try:
            result = backend.run(spec)
            break
        except ClusterUnavailable:
            assert time.monotonic() < deadline, "the server never reconnected to the restarted head"
            time.sleep(1)
    assert result.stdout == b"42\n"


def test_no_address_and_a_dead_address_say_what_to_do(tmp_path):
    from sandbox.node_agent import AgentConfig
    from sandbox.ray_backend import RayCluster

    with pytest.raises(ClusterUnavailable, match="SKILLYARD_CLUSTER"):
        RayCluster(None, AgentConfig()).connect()
    port = local_cluster._free_port()
    with pytest.raises(ClusterUnavailable, match=f"127.0.0.1:{port} does not answer.*skillyard cluster up"):
        RayCluster(f"127.0.0.1:{port}", AgentConfig()).connect()
