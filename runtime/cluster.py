"""A yard on a Ray cluster: the backend its calls run on, the skill images as each node
makes them, and the gate sent whole to one node.

How a yard uses it (runtime/yard.py; settings.cluster names the head):

- calls: `Yard.sandbox` is a Sandbox over :func:`cluster_backend` -- a RayBackend on the
  process's one connection to the cluster. A call's spec names its image *logically*
  (:func:`skill_image_name`); each node makes its own image for that name on first use,
  from the package and the shared wheelhouse (:class:`SkillImage`), because image tags
  are not portable between engines (they hash the runner's image id, and each node's
  runner is its own build). Moving images between nodes (`docker save`/`load` through
  the object store) is measured in bench/cluster.py and kept for what a node cannot
  build cheaply; see docs/SCALING.md.
- gates: :func:`gate_on_node` sends the whole gate -- image builds, the judge with its
  live channel, the callee's private warm pool -- to one node, as one piece of node work
  (:class:`GateWork`, a local Yard on that node). The report comes back; only the
  server records it. The node that built the images is noted, so calls prefer it.

Nodes never open the store and never see the LLM key: node work carries settings with
absolute shared paths (home, wheelhouse) and no secrets (:func:`node_settings`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from sandbox.images import PYTHON_FAMILY, Images, ImageSet
from sandbox.node_agent import AgentConfig, ImageSource, NodeAgent
from sandbox.ray_backend import RayBackend, cluster

from .config import Settings
from .package import SkillPackage
from .skill_images import DockerImages

if TYPE_CHECKING:
    from .gate import GateReport
    from .yard import Yard

log = structlog.get_logger(__name__)

RUNNER = "skillyard:runner"  # the logical name of a node's runner image
BUILD_TIMEOUT_S = 900.0  # a node with no base image builds one offline (debootstrap: minutes)


def agent_config(settings: Settings) -> AgentConfig:
    """How the cluster's node agents run, from the settings of the first server to reach them."""
    return AgentConfig(
        cluster=settings.cluster_name,
        pool_size=settings.pool_size,
        pool_max_calls=settings.pool_max_calls,
        pool_idle_s=settings.pool_idle_s,
        runtime=settings.runtime,
    )


def cluster_backend(settings: Settings, *, pooled: bool = True) -> RayBackend:
    """A RayBackend on this process's connection to the cluster at settings.cluster."""
    try:
        import ray  # noqa: F401 - only to say clearly what is missing
    except ImportError as exc:
        from sandbox import SandboxError

        raise SandboxError(
            "running on a cluster needs Ray: pip install 'skillyard[cluster]' (or unset SKILLYARD_CLUSTER)"
        ) from exc
    return RayBackend(cluster(settings.cluster, agent_config(settings)), pooled=pooled)


def node_settings(settings: Settings) -> Settings:
    """The settings node work carries: shared paths made absolute (a node's process has its
    own working directory), no cluster (work on a node runs there), and no secrets."""
    return settings.model_copy(
        update={
            "home": settings.home.resolve(),
            "wheelhouse": settings.wheel_dir.resolve(),
            "store_uri": None,
            "cluster": None,
            "openai_api_key": None,
        }
    )


def skill_image_name(pkg: SkillPackage) -> str:
    """The logical name of a package's image on the cluster (each node has its own tag)."""
    return f"skill:{pkg.name}@{pkg.content_hash[:24]}"


# -- what runs on a node -----------------------------------------------------------------------
@dataclass(frozen=True)
class RunnerImage:
    """Makes the base and runner images exist on a node (built there if missing)."""

    settings: Settings

    def __call__(self, agent: NodeAgent) -> str:
        if self.settings.runner_image:
            return self.settings.runner_image
        return self.images(agent).ensure().runner

    def images(self, agent: NodeAgent) -> Images:
        return Images(
            agent.backend.client,
            self.settings.wheel_dir,
            base_mode=self.settings.base,
            progress=lambda message: log.info("node_progress", node=agent.node_id[:12], msg=message),
        )


def node_images(agent: NodeAgent, settings: Settings) -> DockerImages:
    """The skill images on a node's engine, on that node's runner."""
    images = DockerImages(
        agent.backend,
        settings,
        lambda message: log.info("node_progress", node=agent.node_id[:12], msg=message),
    )
    images.runner = agent.image(RUNNER, RunnerImage(settings))
    return images


def registry_ref(registry: str, pkg: SkillPackage) -> str:
    """A package's image in the registry: named by what makes it, never by a node's image ids
    (the package's content, the skill layer's layout, the runner's recipe)."""
    from sandbox.images import digest, hash_tree, recipes_dir

    from .build import IMAGE_LAYOUT

    version = digest(pkg.content_hash, IMAGE_LAYOUT, hash_tree(recipes_dir() / "runner"), length=24)
    return f"{registry.rstrip('/')}/skill-{pkg.name}:{version}"


@dataclass(frozen=True)
class SkillImage:
    """Makes a package's image exist on a node: pulled from the registry when one is set
    and another node pushed it there; otherwise built on the node by content hash, from
    the package and the shared wheelhouse (nothing is built twice), and pushed."""

    settings: Settings
    pkg: SkillPackage

    def __call__(self, agent: NodeAgent) -> str:
        import docker.errors

        registry = self.settings.image_registry
        client = agent.backend.client
        if registry:
            remote = registry_ref(registry, self.pkg)
            repo, _, version = remote.rpartition(":")
            try:
                client.images.pull(repo, tag=version)
                log.info("node_image_pulled", node=agent.node_id[:12], image=remote)
                return remote
            except docker.errors.NotFound:
                pass  # no node has pushed it yet: build it here, then push it
            except docker.errors.APIError as exc:
                log.warning("node_registry_unreachable", registry=registry, error=str(exc)[:200])
                registry = None
        tag, _ = node_images(agent, self.settings).build(self.pkg)
        if registry:
            client.api.tag(tag, repo, version)
            for line in client.api.push(repo, tag=version, stream=True, decode=True):
                if "error" in line:  # the image still runs here; the next node builds its own
                    log.warning("node_image_push_failed", image=remote, error=str(line["error"])[:200])
                    break
            else:
                log.info("node_image_pushed", node=agent.node_id[:12], image=remote)
        return tag


@dataclass(frozen=True)
class GateWork:
    """A whole gate on one node: a local yard there builds the images and runs the gate
    (judge, live channel, the callee's private warm pool) on the node's engine."""

    settings: Settings
    pkg: SkillPackage
    frozen_tests: frozenset[str] | None

    def __call__(self, agent: NodeAgent) -> tuple[GateReport, bool]:
        from sandbox import Sandbox

        from .yard import Yard

        yard = Yard(
            self.settings,
            sandbox=Sandbox(agent.backend),
            images=node_images(agent, self.settings),
            pool=False,
            collect_orphans=False,  # the agent collects its node's leftovers by label
            progress=lambda message: log.info("node_progress", node=agent.node_id[:12], msg=message),
        )
        try:
            report, built = yard.gate(self.pkg, frozen_tests=self.frozen_tests)
        finally:
            yard.close()
        if report.image:  # the image the gate built is this node's image for the package
            agent.remember(skill_image_name(self.pkg), report.image)
        return report, built


@dataclass(frozen=True)
class _Each:
    """Node work that makes a logical image exist (every node runs it: a warm-up)."""

    name: str
    source: ImageSource

    def __call__(self, agent: NodeAgent) -> str:
        return agent.image(self.name, self.source)


def gate_on_node(
    yard: Yard, pkg: SkillPackage, frozen_tests: frozenset[str] | None
) -> tuple[GateReport, bool]:
    """Run `pkg`'s gate on one node of the yard's cluster (see the module docstring)."""
    backend = yard.sandbox.backend
    assert isinstance(backend, RayBackend)
    settings = node_settings(yard.settings)
    yard.progress(f"{pkg.name}: gating on a cluster node")
    (report, built), node = backend.on_node(
        GateWork(settings, pkg, frozen_tests),
        timeout=BUILD_TIMEOUT_S + 2 * yard.settings.gate_timeout,
        what=f"gate of {pkg.name}",
    )
    name = skill_image_name(pkg)
    backend.provide(name, SkillImage(settings, pkg))
    backend.cluster.hint(name, node)
    log.info("cluster_gate", skill=pkg.name, node=node[:12], passed=report.passed)
    return report, built


class ClusterImages:
    """The SkillImages of a yard on a cluster: logical names, made on each node on first use
    (see the module docstring). `runner` is one node's runner tag (informational: every
    node uses its own)."""

    def __init__(self, backend: RayBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = node_settings(settings)
        self._runner: str | None = None
        self._lock = threading.Lock()

    @property
    def runner(self) -> str:
        """Make sure every node has its base and runner images; one node's runner tag."""
        with self._lock:
            if self._runner is None:
                self._runner = self.ensure().runner
            return self._runner

    @runner.setter
    def runner(self, tag: str) -> None:
        self._runner = tag

    def ensure(self) -> ImageSet:
        done = self.backend.cluster.each(
            "execute", _Each(RUNNER, RunnerImage(self.settings)), timeout=BUILD_TIMEOUT_S
        )
        failed = {node: value for node, value in done.items() if isinstance(value, BaseException)}
        if failed or not done:
            from sandbox import SandboxError

            detail = "; ".join(f"node {n[:8]}: {str(e)[:200]}" for n, e in failed.items()) or "no node"
            raise SandboxError(f"the cluster's nodes could not make their runner images ({detail})")
        runner = str(next(iter(done.values())))
        return ImageSet(base="", runner=runner)

    def find_base(self) -> str | None:
        return None  # each node has its own; `skillyard cluster status` shows them

    def current_runner(self) -> str | None:
        return self._runner

    def build(self, pkg: SkillPackage) -> tuple[str, bool]:
        """Make the package's image on one node (others make theirs on first use)."""
        name = self.image_for(pkg)
        (tag, node) = self.backend.on_node(
            _Each(name, SkillImage(self.settings, pkg)),
            timeout=BUILD_TIMEOUT_S,
            what=f"image of {pkg.name}",
        )
        self.backend.cluster.hint(name, node)
        return name, True

    def image_for(self, pkg: SkillPackage, *, fresh: bool = False) -> str:
        name = skill_image_name(pkg)
        self.backend.provide(name, SkillImage(self.settings, pkg))
        return name

    def judge_image(self, pkg: SkillPackage) -> str:
        # Never the skill's image: the judge must not hold the code it judges. On a cluster the
        # whole gate runs on a node (GateWork), whose local yard picks the deps image there.
        from sandbox import SandboxError

        raise SandboxError("on a cluster the gate runs on a node (Yard.gate -> gate_on_node)")

    # Image families and sessions: the nodes make python skills' images only, so far.
    def families(self) -> list[str]:
        return [PYTHON_FAMILY]

    def check_family(self, family: str) -> None:
        if family != PYTHON_FAMILY:
            from sandbox import SandboxError

            raise SandboxError(
                f"image family {family!r} is not available on a cluster yet (only python): "
                "add this skill to a local home, or run it without --cluster"
            )

    def has_family(self, family: str) -> bool:
        return family == PYTHON_FAMILY

    def family_image(self, family: str) -> str:
        self.check_family(family)
        return self.runner

    def session_image(self, pkgs: list[SkillPackage]) -> str:
        from sandbox import SandboxError

        raise SandboxError("sessions are not available on a cluster yet: start them on a local server")
