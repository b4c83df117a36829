"""The node agent: what one node of a cluster runs for every server that sends it work.

One agent per node (sandbox/ray_backend.py makes it a Ray actor holding the node's
``skillyard`` resource, so a node never has two). It owns the node's share of the engine:

- a :class:`DockerBackend` whose every container carries ``skillyard.cluster``,
  ``skillyard.node`` (the node's id) and ``skillyard.agent`` (this agent's incarnation);
- one :class:`WarmPool` on that backend (the pool key keeps images, limits, tenants and
  owners apart, exactly as in a local process);
- its image cache: a *logical* image name (what a RunSpec names on a cluster) -> the tag
  of that image on this node's engine, made on first use by the name's `ImageSource`.

Invariants:

- A sandbox on a node is made by the same DockerBackend and WarmPool code, with the same
  limits, as a local one: it is exactly as hardened, by construction. The agent changes
  only the image name (to this node's tag) and adds labels.
- The agent decides nothing about a run's outcome: it returns the RunResult the local
  backend returned. Retrying on another node is the caller's (ray_backend.py).
- Containers are told apart by label, never by engine: on one machine several nodes
  share one engine. :meth:`NodeAgent.collect` removes the containers of this cluster whose
  node is no longer alive, or that an earlier agent of this node made, created before
  the moment the caller knew the live nodes -- and nothing else.

This module knows nothing of Ray (the actor wrapper lives in ray_backend.py), so the agent
runs, and is tested, like any other object around a DockerBackend.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import docker.errors
import requests
import structlog

from .backend import RunSpec
from .docker_backend import LABEL_CREATED, DockerBackend
from .errors import ImageMissing
from .pool import WarmPool
from .result import RunResult

log = structlog.get_logger(__name__)

LABEL_CLUSTER = "skillyard.cluster"
LABEL_NODE = "skillyard.node"
LABEL_AGENT = "skillyard.agent"
T = TypeVar("T")


@dataclass(frozen=True)
class AgentConfig:
    """How every agent of one cluster runs (fixed when the agent starts; agents are shared
    by every server of the cluster, so the first server to reach a node sets it)."""

    cluster: str = "skillyard"  # the label value that scopes clean-up to this cluster's containers
    pool_size: int = 2
    pool_max_calls: int = 100
    pool_idle_s: float = 300.0
    runtime: str | None = None  # OCI runtime (runsc where the node has gVisor)


# Makes a logical image exist on the agent's node and returns its tag there. Runs on the
# node, so it must pickle (a dataclass of plain data is best).
ImageSource = Callable[["NodeAgent"], str]


class NodeAgent:
    """One node's engine, warm pool and image cache (see the module docstring)."""

    def __init__(self, node_id: str, config: AgentConfig, client: docker.DockerClient | None = None) -> None:
        self.node_id = node_id
        self.config = config
        self.agent_id = uuid.uuid4().hex[:16]
        self.backend = DockerBackend(
            client,
            runtime=config.runtime,
            labels={LABEL_CLUSTER: config.cluster, LABEL_NODE: node_id, LABEL_AGENT: self.agent_id},
        )
        self.pool: WarmPool | None = None
        if config.pool_size > 0:
            self.pool = WarmPool(
                self.backend,
                size=config.pool_size,
                max_calls=config.pool_max_calls,
                idle_expiry=config.pool_idle_s,
            )
        self._images: dict[str, str] = {}  # logical image name -> tag on this engine
        self._making: dict[str, threading.Lock] = {}  # one maker per name at a time
        self._lock = threading.Lock()
        self.runs = 0

    # -- images ----------------------------------------------------------------------------
    def image(self, name: str, source: ImageSource | None, *, fresh: bool = False) -> str:
        """The tag of logical image `name` on this node, made by `source` on first use (or
        again with `fresh`); without a source the name is taken as a tag of this engine."""
        with self._lock:
            tag = self._images.get(name)
            if tag is not None and not fresh:
                return tag
            making = self._making.setdefault(name, threading.Lock())
        with making:  # concurrent first calls of one skill wait for one build
            with self._lock:
                tag = self._images.get(name)
            if tag is None or fresh:
                tag = source(self) if source is not None else name
                with self._lock:
                    self._images[name] = tag
        return tag

    def remember(self, name: str, tag: str) -> None:
        """Record that logical image `name` is `tag` on this node (work that built it says so)."""
        with self._lock:
            self._images[name] = tag

    def images(self) -> dict[str, str]:
        """The logical images resolved on this node so far, with their tags."""
        with self._lock:
            return dict(self._images)

    def save_image(self, tag: str) -> bytes:
        """`docker save` of `tag`: every layer, as one tar (what `load_image` takes)."""
        return b"".join(self.backend.client.api.get_image(tag, chunk_size=1 << 20))

    def load_image(self, data: bytes) -> None:
        """`docker load` of a tar made by `save_image` (the tags come with it)."""
        for _ in self.backend.client.api.load_image(data):
            pass

    # -- runs and work -----------------------------------------------------------------------
    def run(self, spec: RunSpec, source: ImageSource | None = None, pooled: bool = True) -> RunResult:
        """Run `spec` here: its image name resolved to this node's tag, through the warm pool
        when `pooled` (and the agent keeps one), else in a fresh one-shot container. An image
        removed behind the cache's back is made again once."""
        with self._lock:
            self.runs += 1
        for fresh in (False, True):
            local = dataclasses.replace(spec, image=self.image(spec.image, source, fresh=fresh))
            backend = self.pool if pooled and self.pool is not None else self.backend
            try:
                return backend.run(local)
            except ImageMissing:
                if source is None or fresh:
                    raise
                log.info("node_image_missing", node=self.node_id[:12], image=local.image)
        raise AssertionError("unreachable")

    def execute(self, work: Callable[..., T], *args: Any) -> T:
        """`work(self, *args)` on this node: work that must stay on one node as a whole (a
        gate, whose judge talks to the host over a live channel)."""
        return work(self, *args)

    # -- clean-up ---------------------------------------------------------------------------
    def collect(self, alive: set[str], as_of: datetime) -> list[str]:
        """Remove this cluster's containers left by a node not in `alive` or by an earlier
        agent of this node, made before `as_of` (when `alive` was read: a node that joined
        since is not in it, and its containers are newer). Returns the ids removed."""
        doomed = []
        for container in self.backend.labelled({LABEL_CLUSTER: self.config.cluster}):
            labels = container.get("Labels") or {}
            node, agent = labels.get(LABEL_NODE), labels.get(LABEL_AGENT)
            left = node not in alive or (node == self.node_id and agent != self.agent_id)
            if left and _created(labels) < as_of:
                doomed.append(container["Id"])
        for cid in doomed:
            self.backend.remove_quietly(cid)
        if doomed:
            log.info("node_collected_leftovers", node=self.node_id[:12], count=len(doomed))
        return doomed

    def containers(self) -> list[dict[str, Any]]:
        """This cluster's containers on this node's engine (of every node sharing it)."""
        return self.backend.labelled({LABEL_CLUSTER: self.config.cluster})

    def status(self) -> dict[str, Any]:
        """Who and where this agent is, and what it holds."""
        try:
            engine = self.backend.client.version().get("Version")
        except (docker.errors.DockerException, requests.RequestException) as exc:
            engine = f"unreachable: {str(exc)[:120]}"
        return {
            "node": self.node_id,
            "agent": self.agent_id,
            "pid": os.getpid(),
            "engine": engine,
            "runs": self.runs,
            "pool": self.pool.stats() if self.pool is not None else None,
            "images": len(self._images),
        }

    def close(self) -> None:
        """Stop the warm containers and wait for background removals."""
        if self.pool is not None:
            self.pool.close()
        self.backend.close()


def _created(labels: dict[str, str]) -> datetime:
    """When a container was made, from its label (unreadable: the distant past, so that a
    container of a dead node with a damaged label is still collected)."""
    try:
        return datetime.fromisoformat(labels.get(LABEL_CREATED, ""))
    except ValueError:
        return datetime.fromisoformat("2000-01-01T00:00:00+00:00")
