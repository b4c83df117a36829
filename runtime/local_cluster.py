"""A local multi-node Ray cluster on one machine, for trying skillyard on a cluster:
`skillyard cluster up --nodes N`, `status`, `kill NODE`, `down`.

Each node is one `ray start --block` process (the head first, then N-1 workers joining
it), on 127.0.0.1, each offering one ``skillyard`` resource and one CPU, in a process
group of its own, logging to ``$SKILLYARD_HOME/cluster/node-I.log``. What was started is
recorded in ``$SKILLYARD_HOME/cluster/cluster.json``; every stop or kill goes to those
process groups by id -- never by process name (``ray stop`` would end every Ray process
on the machine, other people's too).

The head is started with quick failure detection (a node that stops answering is
declared dead in about 1.5 s instead of Ray's 30 s default), so a killed node's calls move
to another node quickly. A real cluster is started by its operator (`ray start`, KubeRay);
see docs/SCALING.md.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from sandbox import SandboxError

from .config import Settings

log = structlog.get_logger(__name__)
Progress = Callable[[str], None]

HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 3,
}
OBJECT_STORE_BYTES = 150 * 1024 * 1024  # per node: small on purpose (images built on nodes, not moved)
START_TIMEOUT_S = 120.0


@dataclass
class NodeProcess:
    """One node: its index (0 is the head), the `ray start --block` process, its log."""

    index: int
    pid: int
    log: str

    @property
    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _state(self.pid) not in ("Z", "X")


@dataclass
class LocalCluster:
    """What `cluster up` started, as recorded in its state file."""

    address: str
    name: str
    nodes: list[NodeProcess] = field(default_factory=list)

    @property
    def head(self) -> NodeProcess | None:
        return next((n for n in self.nodes if n.index == 0), None)


def state_dir(settings: Settings) -> Path:
    """Where a local cluster's state file and node logs live."""
    return settings.home.resolve() / "cluster"


def load(settings: Settings) -> LocalCluster | None:
    """The local cluster recorded under settings.home, if any."""
    path = state_dir(settings) / "cluster.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return LocalCluster(data["address"], data["name"], [NodeProcess(**n) for n in data["nodes"]])


def _save(settings: Settings, cluster: LocalCluster) -> None:
    folder = state_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "cluster.json.tmp"
    tmp.write_text(json.dumps(asdict(cluster), indent=2))
    tmp.replace(folder / "cluster.json")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ray() -> str:
    found = Path(sys.executable).with_name("ray")
    if not found.exists():
        raise SandboxError("a local cluster needs Ray in this environment: pip install 'skillyard[cluster]'")
    return str(found)


def _start_node(settings: Settings, index: int, address: str) -> NodeProcess:
    folder = state_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"node-{index}.log"
    args = [
        _ray(),
        "start",
        "--block",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        f"--resources={json.dumps({'skillyard': 1})}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        "--disable-usage-stats",
    ]
    if index == 0:
        port = int(address.rpartition(":")[2])
        args += [
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--system-config={json.dumps(HEALTH_CHECKS)}",
        ]
    else:
        args += [f"--address={address}"]
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(  # its own process group: stopped and killed as one, by id
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return NodeProcess(index=index, pid=proc.pid, log=str(log_path))


def _wait(what: str, ready: Callable[[], bool], timeout: float, progress: Progress, logs: list[str]) -> None:
    deadline = time.monotonic() + timeout
    shown = time.monotonic()
    while not ready():
        if time.monotonic() > deadline:
            raise SandboxError(f"{what} did not come up in {timeout:.0f} s; see {', '.join(logs)}")
        if time.monotonic() - shown > 10:
            progress(f"cluster: still waiting for {what}")
            shown = time.monotonic()
        time.sleep(0.5)


def up(settings: Settings, nodes: int, progress: Progress) -> LocalCluster:
    """Start the nodes of the local cluster that are not running (all of them the first
    time; after a head restart, the workers too: they cannot rejoin a new head)."""
    from sandbox.ray_backend import reachable

    if nodes < 1:
        raise ValueError("a cluster needs at least one node")
    current = load(settings)
    if current is not None and current.head is not None and current.head.alive:
        cluster = current
    else:
        if current is not None:
            _kill(current.nodes)  # workers of a dead head cannot rejoin a new one
        address = current.address if current is not None else f"127.0.0.1:{_free_port()}"
        cluster = LocalCluster(address=address, name=settings.cluster_name)
        progress(f"cluster: starting the head at {address}")
        head = _start_node(settings, 0, address)
        cluster.nodes = [head]
        _save(settings, cluster)
        _wait("the head", lambda: reachable(address), START_TIMEOUT_S, progress, [head.log])
    running = {n.index for n in cluster.nodes if n.alive}
    cluster.nodes = [n for n in cluster.nodes if n.index in running]
    for index in range(1, nodes):
        if index not in running:
            progress(f"cluster: starting node {index}")
            cluster.nodes.append(_start_node(settings, index, cluster.address))
    cluster.nodes.sort(key=lambda n: n.index)
    _save(settings, cluster)
    _wait(
        f"{nodes} nodes",
        lambda: len(live_nodes(cluster.address)) >= nodes,
        START_TIMEOUT_S,
        progress,
        [n.log for n in cluster.nodes],
    )
    return cluster


def live_nodes(address: str) -> list[dict[str, Any]]:
    """The cluster's live nodes offering the skillyard resource (joins the cluster once)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, logging_level="warning")
    return [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("skillyard", 0) >= 1]


def _kill(nodes: list[NodeProcess]) -> None:
    for node in nodes:
        try:
            os.killpg(node.pid, signal.SIGKILL)  # the node's whole process group, by its id
        except (ProcessLookupError, PermissionError):
            pass


def kill(settings: Settings, index: int) -> NodeProcess:
    """Kill node `index` at once (SIGKILL to its process group): a node failure, for trying
    what calls in flight do. Its containers stay until an agent collects them."""
    cluster = load(settings)
    found = next((n for n in cluster.nodes if n.index == index), None) if cluster else None
    if found is None or not found.alive:
        raise SandboxError(f"no running node {index}; `skillyard cluster status` lists them")
    _kill([found])
    return found


def down(settings: Settings, progress: Progress) -> int:
    """Stop the agents (their warm containers removed), then every node; returns how many
    nodes were stopped."""
    cluster = load(settings)
    if cluster is None:
        return 0
    from sandbox.ray_backend import reachable

    if cluster.head is not None and cluster.head.alive and reachable(cluster.address):
        progress("cluster: stopping the node agents (their warm containers go with them)")
        try:
            from .cluster import cluster_backend

            backend = cluster_backend(settings.model_copy(update={"cluster": cluster.address}))
            backend.cluster.stop_agents()
            backend.cluster.close()
        except Exception as exc:  # noqa: BLE001 - stopping anyway; the label sweep below removes the rest
            log.warning("cluster_agents_not_stopped", error=str(exc)[:200])
    running = [n for n in cluster.nodes if n.alive]
    progress(f"cluster: stopping {len(running)} node(s)")
    _kill(cluster.nodes)
    left = remove_leftovers(cluster.name)
    if left:
        progress(f"cluster: removed {left} container(s) the nodes left")
    (state_dir(settings) / "cluster.json").unlink(missing_ok=True)
    return len(running)


def remove_leftovers(name: str) -> int:
    """Remove the containers of cluster `name` on this machine's engine (by label, so only
    that cluster's); returns how many."""
    from sandbox.docker_backend import DockerBackend
    from sandbox.node_agent import LABEL_CLUSTER

    backend = DockerBackend()
    try:
        doomed = backend.labelled({LABEL_CLUSTER: name})
    except SandboxError:
        return 0
    for container in doomed:
        backend.remove_quietly(container["Id"])
    return len(doomed)
