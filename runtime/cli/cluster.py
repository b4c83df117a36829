"""`skillyard cluster`: a local multi-node Ray cluster on this machine, for trying
skillyard on a cluster (runtime/local_cluster.py; docs/SCALING.md for a real one)."""

from __future__ import annotations

import click

from ..config import get_settings
from .errors import Command, Group
from .output import emit_json, err, out


def _progress(message: str) -> None:
    err.print(message, highlight=False)


@click.group("cluster", cls=Group)
def cluster_group() -> None:
    """A local multi-node Ray cluster on this machine (needs `pip install 'skillyard[cluster]'`)."""


@cluster_group.command("up", cls=Command)
@click.option(
    "--nodes", type=click.IntRange(1, 8), default=3, show_default=True, help="Nodes, the head included."
)
@click.option("--json", "as_json", is_flag=True, help="The address and nodes as JSON.")
def up_command(nodes: int, as_json: bool) -> None:
    """Start the cluster's nodes that are not running, and their node agents."""
    from .. import local_cluster
    from ..cluster import ClusterImages, cluster_backend

    settings = get_settings()
    cluster = local_cluster.up(settings, nodes, _progress)
    _progress("cluster: node agents and runner images (built on a node that lacks them)")
    cluster_settings = settings.model_copy(update={"cluster": cluster.address, "cluster_name": cluster.name})
    ClusterImages(cluster_backend(cluster_settings), cluster_settings).ensure()
    if as_json:
        emit_json(
            {"address": cluster.address, "name": cluster.name, "nodes": [n.index for n in cluster.nodes]}
        )
        return
    out.print(f"cluster up: {len(cluster.nodes)} node(s) at {cluster.address}", highlight=False)
    out.print(
        f"serve from it:  skillyard serve --cluster {cluster.address}\n"
        f"or:             export SKILLYARD_CLUSTER={cluster.address}\n"
        "kill a node:    skillyard cluster kill 1      stop it all: skillyard cluster down",
        highlight=False,
    )


@cluster_group.command("status", cls=Command)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def status_command(as_json: bool) -> None:
    """The local cluster's nodes and, when the head answers, each node agent."""
    from sandbox.ray_backend import reachable

    from .. import local_cluster

    settings = get_settings()
    cluster = local_cluster.load(settings)
    if cluster is None:
        raise click.ClickException("no local cluster here: start one with `skillyard cluster up`")
    head_up = reachable(cluster.address)
    agents: dict[str, object] = {}
    if head_up:
        from ..cluster import cluster_backend

        backend = cluster_backend(
            settings.model_copy(update={"cluster": cluster.address, "cluster_name": cluster.name})
        )
        agents = backend.cluster.each("status", timeout=30)
    data = {
        "address": cluster.address,
        "name": cluster.name,
        "head": "up" if head_up else "down",
        "nodes": [{"index": n.index, "pid": n.pid, "running": n.alive, "log": n.log} for n in cluster.nodes],
        "agents": {k: (v if isinstance(v, dict) else f"error: {v}") for k, v in agents.items()},
    }
    if as_json:
        emit_json(data)
        return
    out.print(f"cluster {cluster.name} at {cluster.address}: head {data['head']}", highlight=False)
    for n in data["nodes"]:
        out.print(
            f"  node {n['index']}: pid {n['pid']} {'running' if n['running'] else 'stopped'}  ({n['log']})"
        )
    for node, agent in data["agents"].items():
        if isinstance(agent, dict):
            pool = agent.get("pool") or {}
            warm = pool.get("live", 0)
            out.print(f"  agent on {node[:12]}: pid {agent['pid']}, {agent['runs']} runs, {warm} warm")
        else:
            out.print(f"  agent on {node[:12]}: {agent}")


@cluster_group.command("kill", cls=Command)
@click.argument("node", type=int)
def kill_command(node: int) -> None:
    """Kill node NODE at once (SIGKILL), as a machine failure would: calls move to other nodes."""
    from .. import local_cluster

    killed = local_cluster.kill(get_settings(), node)
    out.print(f"node {killed.index} killed (pid {killed.pid}); `skillyard cluster up` starts it again")


@cluster_group.command("down", cls=Command)
def down_command() -> None:
    """Stop the node agents (removing their warm containers) and every node."""
    from .. import local_cluster

    stopped = local_cluster.down(get_settings(), _progress)
    out.print(f"cluster down: {stopped} node(s) stopped" if stopped else "no local cluster was running")
