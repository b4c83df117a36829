"""The Ray backend: runs and node work on a Ray cluster's node agents, behind `Backend`.

Ray is an optional extra (``skillyard[cluster]``) and is imported only here, and only
when a cluster is used.

Pieces:

- :class:`RayCluster` -- one per process and address: the connection, the node agents
  (:class:`~sandbox.node_agent.NodeAgent` as detached, named Ray actors, one per node that
  offers the ``skillyard`` resource, made by whichever server reaches the node first and
  shared by every server), placement, and **the one retry policy** for lost nodes.
- :class:`RayBackend` -- the `Backend` a Sandbox uses: a view on a RayCluster with the
  image sources of its logical images, and whether runs use the nodes' warm pools.

Invariants:

- Placement: a run goes to a node that holds warm containers of its kind (its pool key)
  while this process has fewer runs in flight there than the pool size; otherwise to the
  node with the fewest runs in flight from this process (ties: a node that holds them,
  then at random).
- Lost nodes (``_on_a_node``): when an agent dies (its node was killed, its process
  crashed) or does not answer within the work's own deadline plus DISPATCH_MARGIN_S, the
  same work goes to another live node, at most MAX_ATTEMPTS nodes in all. That is safe
  because every run is side-effect free: a fresh process with no network whose only
  output is its result, which the caller accounts for once, after it returned. A node
  that answers is never asked twice. A survivor then removes what the lost node left.
- A lost head: a monitor thread probes the head's GCS port every PROBE_EVERY_S. While it
  is unreachable, work fails at once with ClusterUnavailable (the address, since when,
  what to do), the connection is closed (Ray would otherwise end this process after
  ``gcs_rpc_server_reconnect_timeout_s``), and it is opened again when the port answers.
- A run with a live channel never crosses the cluster: the whole conversation is sent to
  one node as node work (``RayBackend.on_node``), as the gate does.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from .backend import Backend, RunSpec
from .errors import ClusterUnavailable, SandboxError, SkillyardError
from .node_agent import AgentConfig, ImageSource, NodeAgent
from .pool import pool_key
from .protocol import START_GRACE_S
from .result import RunResult

log = structlog.get_logger(__name__)

RESOURCE = "skillyard"  # a node offers it (1) to say: run a skillyard agent here
NAMESPACE = "skillyard"
AGENT_CONCURRENCY = 64  # runs one agent serves at once (threads of the actor)
MAX_ATTEMPTS = 3
DISPATCH_MARGIN_S = 15.0  # beyond a run's own deadline, before its node is presumed lost
PROBE_EVERY_S = 1.0
NODES_TTL_S = 2.0  # how stale the list of live nodes may be
# A node whose work did not come back gets none for this long: Ray may list it as alive
# until its health checks fail, and an agent placed there now would never start.
SUSPECT_S = 30.0
# Ray ends a driver that cannot reach the GCS for this long (default 60 s); a server must
# outlive a head restart, so it closes the connection itself (see the module docstring).
RECONNECT_TIMEOUT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"
T = TypeVar("T")


class NodeLost(Exception):
    """Work did not come back from its node (the agent died or stopped answering)."""


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SandboxError(f"cluster address {address!r} is not HOST:PORT (the head's GCS address)")
    return host, int(port)


def reachable(address: str, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at HOST:PORT (the head's GCS)."""
    host, port = _split(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _actor_class() -> Any:
    """NodeAgent as a Ray actor that cleans up after dead nodes when it starts."""
    import ray

    class RayNodeAgent(NodeAgent):
        def __init__(self, config: AgentConfig) -> None:
            super().__init__(ray.get_runtime_context().get_node_id(), config)
            # What a killed node, or an earlier agent of this one, left on the engine.
            alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
            self.collect(alive, datetime.now(UTC))

    return ray.remote(RayNodeAgent)


class RayCluster:
    """The connection to one Ray cluster and its node agents (see the module docstring).
    `address` is the head's GCS address (HOST:PORT); None uses the connection this
    process already has (tests that called ray.init themselves)."""

    def __init__(self, address: str | None, config: AgentConfig) -> None:
        self.address = address
        self.config = config
        self.gcs: str | None = None  # the GCS address in use (for the probe)
        self._agents: dict[str, Any] = {}  # node id -> actor handle
        self._nodes_read = 0.0
        self._inflight: defaultdict[str, int] = defaultdict(int)
        self._warm: defaultdict[str, set[str]] = defaultdict(set)  # pool key -> nodes that ran it
        self._holders: defaultdict[str, set[str]] = defaultdict(set)  # image -> nodes that have it
        self._suspect: dict[str, float] = {}  # node -> when its work was lost
        self._lock = threading.RLock()
        self._down_since: float | None = None
        self._closed = False
        self._actor: Any = None
        self._monitor: threading.Thread | None = None
        self._owns_connection = False
        self.lost_work = 0  # work that did not come back from its node and went to another

    # -- connection ----------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster (once); ClusterUnavailable when its head does not answer."""
        import ray

        with self._lock:
            if self.gcs is not None and ray.is_initialized():
                return
            if not ray.is_initialized():
                if not self.address:
                    raise ClusterUnavailable(
                        "no cluster address: set SKILLYARD_CLUSTER=HOST:PORT or pass --cluster "
                        "(`skillyard cluster up` starts a local one and prints it)"
                    )
                if not reachable(self.address):
                    raise ClusterUnavailable(
                        f"the Ray cluster at {self.address} does not answer: start it "
                        "(`skillyard cluster up`, or `ray start --head`) or fix the address"
                    )
                os.environ.setdefault(RECONNECT_TIMEOUT_ENV, str(10 * 365 * 86400))
                ray.init(
                    address=self.address,
                    namespace=NAMESPACE,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
                self._owns_connection = True
            self.gcs = ray.get_runtime_context().gcs_address
            if self.address and _split(self.address)[1] != _split(self.gcs)[1]:
                raise ClusterUnavailable(
                    f"this process is already connected to the Ray cluster at {self.gcs}, not {self.address}"
                )
            if self._actor is None:
                self._actor = _actor_class()
            self._down_since = None
            if self._monitor is None:
                self._monitor = threading.Thread(
                    target=self._watch_head, daemon=True, name="skillyard-ray-head"
                )
                self._monitor.start()
            log.info("cluster_connected", address=self.gcs)

    def _watch_head(self) -> None:
        """Probe the head; close the connection while it is away, reopen it when it is back."""
        import ray

        while not self._closed:
            time.sleep(PROBE_EVERY_S)
            gcs = self.gcs
            if gcs is None or self._closed:
                continue
            up = reachable(gcs)
            if not up and self._down_since is None:
                self._head_lost(gcs)
                with self._lock:
                    if ray.is_initialized():
                        ray.shutdown()  # before Ray ends this process; reopened below
            elif up and self._down_since is not None:
                try:
                    self._reopen(gcs)
                except Exception as exc:  # noqa: BLE001 - the head is half up: probe again next round
                    log.info("cluster_reconnect_failed", address=gcs, error=str(exc)[:200])

    def _head_lost(self, gcs: str) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.time()
            self._agents.clear()
            self._warm.clear()
            self._holders.clear()
        log.warning("cluster_head_lost", address=gcs, hint="work fails until the head is back")

    def _reopen(self, gcs: str) -> None:
        import ray

        with self._lock:
            if ray.is_initialized():
                ray.shutdown()
            ray.init(address=gcs, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.WARNING)
            self._owns_connection = True
            self.gcs = ray.get_runtime_context().gcs_address
            self._actor = _actor_class()
            self._nodes_read = 0.0
            self._down_since = None
        log.info("cluster_reconnected", address=self.gcs)

    def _check_up(self) -> None:
        if self._down_since is not None:
            since = datetime.fromtimestamp(self._down_since, UTC).strftime("%H:%M:%S UTC")
            raise ClusterUnavailable(
                f"the Ray cluster's head at {self.gcs} has not answered since {since}; work resumes by "
                "itself once it is back (`skillyard cluster status` shows it; `skillyard cluster up` "
                "restarts a local one)"
            )
        self.connect()

    # -- agents --------------------------------------------------------------------------------
    def agents(self, *, refresh: bool = False) -> dict[str, Any]:
        """node id -> agent handle, for every live node offering the skillyard resource
        (read at most every NODES_TTL_S; agents are made on first sight of a node)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._check_up()
        with self._lock:
            if not refresh and time.monotonic() - self._nodes_read < NODES_TTL_S:
                return dict(self._agents)
            if self.gcs is not None and not reachable(self.gcs):  # GCS calls would block, not fail
                self._head_lost(self.gcs)
                self._check_up()
            now = time.monotonic()
            self._suspect = {n: t for n, t in self._suspect.items() if now - t < SUSPECT_S}
            live = {
                n["NodeID"]
                for n in ray.nodes()
                if n["Alive"] and n["Resources"].get(RESOURCE, 0) >= 1 and n["NodeID"] not in self._suspect
            }
            for node in set(self._agents) - live:
                del self._agents[node]
            for node in live - set(self._agents):
                self._agents[node] = self._actor.options(
                    name=f"agent:{self.config.cluster}:{node}",
                    namespace=NAMESPACE,
                    get_if_exists=True,
                    lifetime="detached",  # shared by every server; it dies with its node
                    num_cpus=0,
                    resources={RESOURCE: 1},
                    max_concurrency=AGENT_CONCURRENCY,
                    max_restarts=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
                ).remote(self.config)
            self._nodes_read = time.monotonic()
            return dict(self._agents)

    def _pick(self, key: str, image: str, tried: set[str]) -> tuple[str, Any]:
        agents = {n: a for n, a in self.agents().items() if n not in tried}
        if not agents:
            agents = {n: a for n, a in self.agents(refresh=True).items() if n not in tried}
        if not agents:
            raise ClusterUnavailable(
                f"no node of the Ray cluster at {self.gcs} offers the '{RESOURCE}' resource"
                + (" (the others failed this work)" if tried else "")
                + f": add one with `ray start --address {self.gcs} --resources '{{\"{RESOURCE}\": 1}}'` "
                "or `skillyard cluster up`"
            )
        with self._lock:
            warm = self._warm.get(key, set())
            free = [n for n in agents if n in warm and self._inflight[n] < max(1, self.config.pool_size)]
            choices = free or list(agents)
            least = min(self._inflight[n] for n in choices)
            best = [n for n in choices if self._inflight[n] == least]
            held = [n for n in best if n in warm or n in self._holders.get(image, ())]
            node = random.choice(held or best)
            self._inflight[node] += 1
        return node, agents[node]

    def _lost(self, node: str) -> None:
        """Forget a node whose work did not come back; a survivor removes what it left."""
        import ray

        with self._lock:
            self._agents.pop(node, None)
            self._suspect[node] = time.monotonic()
            for nodes in [*self._warm.values(), *self._holders.values()]:
                nodes.discard(node)
            self._nodes_read = 0.0
        try:
            survivors = self.agents(refresh=True)
            if survivors:
                alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
                next(iter(survivors.values())).collect.remote(alive, datetime.now(UTC))
        except Exception as exc:  # noqa: BLE001 - tidying; the node's own next agent collects too
            log.info("cluster_collect_failed", error=str(exc)[:200])

    # -- the one retry policy ------------------------------------------------------------------
    def on_a_node(
        self, submit: Callable[[Any], Any], *, key: str, image: str = "", timeout: float, what: str
    ) -> tuple[Any, str]:
        """`submit(agent)` (an actor call) on a node chosen for `key` and `image`: its value and
        the node. A node lost on the way is forgotten and the work goes to another one (see
        the module docstring)."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        tried: set[str] = set()
        failures: list[str] = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            node, agent = self._pick(key, image, tried)
            tried.add(node)
            try:
                ref = submit(agent)
                deadline = time.monotonic() + timeout + DISPATCH_MARGIN_S
                while True:
                    try:
                        value = ray.get(ref, timeout=PROBE_EVERY_S)
                        break
                    except GetTimeoutError:
                        self._check_up()  # the head is gone: say so now, not at the deadline
                        if time.monotonic() > deadline:
                            raise NodeLost(f"no answer in {timeout + DISPATCH_MARGIN_S:.0f} s") from None
            except RayActorError as exc:
                failures.append(f"node {node[:8]}: {str(exc).splitlines()[0][:160]}")
            except NodeLost as exc:
                failures.append(f"node {node[:8]}: {exc}")
            except RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, SkillyardError):  # the agent's own clear error (image missing, ...)
                    raise cause from None
                raise
            except Exception:  # filtered: only a connection closed under us (the head left) is mapped
                self._check_up()
                raise
            else:
                with self._lock:
                    if key:
                        self._warm[key].add(node)
                    if image:
                        self._holders[image].add(node)
                return value, node
            finally:
                with self._lock:
                    self._inflight[node] -= 1
            with self._lock:
                self.lost_work += 1
            log.warning("cluster_node_lost", node=node[:12], what=what, attempt=attempt, error=failures[-1])
            self._check_up()
            self._lost(node)
        raise SandboxError(
            f"{what}: {len(failures)} nodes failed in turn ({'; '.join(failures)}); "
            "check `skillyard cluster status` and the nodes' logs"
        )

    def hint(self, image: str, node: str) -> None:
        """Note that `node` holds `image` (work there made it): runs of it prefer that node."""
        with self._lock:
            self._holders[image].add(node)

    def each(self, method: str, *args: Any, timeout: float = 120.0) -> dict[str, Any]:
        """`agent.<method>(*args)` on every live node at once: node id -> value, or the
        error for a node that failed (status, clean-up, image warm-up)."""
        import ray

        calls = {node: getattr(agent, method).remote(*args) for node, agent in self.agents().items()}
        out: dict[str, Any] = {}
        for node, ref in calls.items():
            try:
                out[node] = ray.get(ref, timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - one node's failure is that node's answer
                out[node] = exc
        return out

    def stop_agents(self) -> int:
        """Close every agent (its warm containers removed) and end it; returns how many.
        For `skillyard cluster down` and tests: agents are otherwise shared and long-lived."""
        import ray

        closed = self.each("close")
        with self._lock:
            agents, self._agents = dict(self._agents), {}
            self._warm.clear()
            self._holders.clear()
            self._nodes_read = 0.0
        for agent in agents.values():
            try:
                ray.kill(agent, no_restart=True)
            except Exception as exc:  # noqa: BLE001 - already dead with its node
                log.info("agent_kill_failed", error=str(exc)[:200])
        return len(closed)

    def close(self) -> None:
        """Stop the head monitor and, if this object opened it, the connection."""
        import ray

        self._closed = True
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()


_CLUSTERS: dict[tuple[str | None, AgentConfig], RayCluster] = {}
_CLUSTERS_LOCK = threading.Lock()


def cluster(address: str | None, config: AgentConfig) -> RayCluster:
    """The process's RayCluster for `address` (Ray keeps one connection per process)."""
    with _CLUSTERS_LOCK:
        found = _CLUSTERS.get((address, config))
        if found is None or found._closed:
            found = _CLUSTERS[(address, config)] = RayCluster(address, config)
        return found


class RayBackend(Backend):
    """Runs specs on the cluster's node agents (see the module docstring).

    A spec's `image` may be a *logical* name registered with `provide`: each node makes its
    own image for it on first use (a skill image is built there from its package). `pooled`
    runs calls in the nodes' warm pools (else a fresh one-shot container per run)."""

    name = "ray"

    def __init__(self, cluster: RayCluster, *, pooled: bool = True) -> None:
        self.cluster = cluster
        self.pooled = pooled
        self._sources: dict[str, Any] = {}  # logical image -> its ImageSource in the object store
        self._lock = threading.Lock()

    def provide(self, image: str, source: ImageSource) -> None:
        """Register how a node makes logical image `image` (kept once in the object store)."""
        import ray

        with self._lock:
            if image not in self._sources:
                self.cluster.connect()
                self._sources[image] = ray.put(source)

    def run(self, spec: RunSpec) -> RunResult:
        if spec.channel is not None:
            raise SandboxError(
                "a run with a live channel cannot cross the cluster: send the whole conversation "
                "to one node with RayBackend.on_node (the gate does)"
            )
        spec.validate()
        source = self._sources.get(spec.image)
        result, _ = self.cluster.on_a_node(
            lambda agent: agent.run.remote(spec, source, self.pooled),
            key=pool_key(spec),
            image=spec.image,
            timeout=spec.limits.timeout + START_GRACE_S,
            what=f"run of {spec.argv[0]!r} in {spec.image}",
        )
        return result

    def on_node(self, work: Callable[..., T], *args: Any, timeout: float, what: str) -> tuple[T, str]:
        """`work(agent, *args)` on one node, as a whole: its value and the node. Retried on
        another node if that one is lost, so node work must be side-effect free too."""
        return self.cluster.on_a_node(
            lambda agent: agent.execute.remote(work, *args), key="", timeout=timeout, what=what
        )

    # -- housekeeping ----------------------------------------------------------------------------
    def gc(self, *, everything: bool = False) -> list[str]:
        """Every agent removes what dead nodes and earlier agents left (`everything`: also
        its own idle warm containers, by closing its pool)."""
        import ray

        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]} if self.cluster.gcs else set()
        removed: list[str] = []
        for value in self.cluster.each("collect", alive, datetime.now(UTC)).values():
            if isinstance(value, list):
                removed += value
        if everything:
            self.cluster.stop_agents()
        return removed

    def info(self) -> dict[str, object]:
        nodes = self.cluster.each("status")
        engines = sorted({str(v.get("engine")) for v in nodes.values() if isinstance(v, dict)})
        return {
            "engine": ", ".join(engines) or "-",
            "api": "-",
            "storage": "-",
            "cgroup": "-",
            "runtimes": [self.cluster.config.runtime] if self.cluster.config.runtime else [],
            "cluster": self.cluster.gcs,
            "nodes": {n: (v if isinstance(v, dict) else f"error: {v}") for n, v in nodes.items()},
        }

    def managed_containers(self) -> list[dict[str, object]]:
        seen: dict[str, dict[str, object]] = {}
        for value in self.cluster.each("containers").values():
            if isinstance(value, list):
                seen.update({c["Id"]: c for c in value})
        return list(seen.values())

    def orphans(self) -> list[dict[str, object]]:
        import ray

        from .node_agent import LABEL_NODE

        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        return [c for c in self.managed_containers() if (c.get("Labels") or {}).get(LABEL_NODE) not in alive]
