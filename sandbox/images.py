"""Images: the offline or registry base, the runner, and content-addressed builds.

Every image we build is tagged by a hash of its recipe and inputs, so an unchanged
image is never rebuilt. Builds run with the network off; packages come from a host
wheelhouse filled by `pip download` (the host reaches the package index, containers never do).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import structlog

from .errors import SandboxError

log = structlog.get_logger(__name__)

Progress = Callable[[str], None]
PY_VERSION = "3.11"
LABEL_KIND = "skillyard.kind"


def _noop(_: str) -> None:
    pass


def recipes_dir() -> Path:
    """Where the image recipes live: `images/` at the project root, or SKILLYARD_IMAGES_DIR."""
    env = os.environ.get("SKILLYARD_IMAGES_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent / "images"
    if here.is_dir():
        return here
    raise SandboxError("image recipes not found: set SKILLYARD_IMAGES_DIR to the project's images/ folder")


def digest(*parts: bytes | str, length: int = 12) -> str:
    """A short sha256 over length-prefixed parts (no two part lists collide)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:length]


def hash_tree(root: Path) -> str:
    """Content hash of a folder: relative paths, modes and bytes, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + oct(path.stat().st_mode & 0o111).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


# -- wheelhouse ---------------------------------------------------------------------------
def _platform_tags() -> list[str]:
    arch = platform.machine() or "x86_64"
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch.lower(), arch)
    tags = [f"manylinux_2_{v}_{arch}" for v in (36, 35, 34, 31, 28, 27, 24, 17, 12, 5)]
    tags += [f"manylinux2014_{arch}", f"manylinux1_{arch}"] if arch == "x86_64" else [f"manylinux2014_{arch}"]
    return tags


def ensure_wheels(requirements: Iterable[str], wheelhouse: Path, progress: Progress = _noop) -> Path:
    """Download wheels for `requirements` (CPython 3.11, Linux) into a folder named by their hash.

    A folder that is complete (has its `.complete` marker) is reused without touching the network.
    Returns the folder, which also holds `requirements.txt`.
    """
    reqs = sorted({r.strip() for r in requirements if r.strip() and not r.strip().startswith("#")})
    target = wheelhouse / digest("\n".join(reqs), platform.machine(), PY_VERSION)
    if (target / ".complete").exists():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=wheelhouse if wheelhouse.exists() else None))
    wheelhouse.mkdir(parents=True, exist_ok=True)
    try:
        (tmp / "requirements.txt").write_text("\n".join(reqs) + "\n")
        if reqs:
            progress(f"downloading wheels: {', '.join(reqs)}")
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "-q",
                "--only-binary=:all:",
                "--python-version",
                PY_VERSION,
                "--implementation",
                "cp",
                "--abi",
                "cp311",
                "--abi",
                "abi3",
                "--abi",
                "none",
                "-d",
                str(tmp),
                "-r",
                str(tmp / "requirements.txt"),
            ]
            for tag in _platform_tags():
                cmd += ["--platform", tag]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                err = "\n".join(
                    line for line in proc.stderr.splitlines() if not line.startswith("WARNING: Location")
                )
                raise SandboxError(
                    f"pip could not download wheels for {reqs}: {err.strip()[-800:]}\n"
                    "Check the requirement names and that this machine reaches the package index; "
                    "packages must ship CPython 3.11 Linux wheels (or be pure Python)."
                )
        (tmp / ".complete").write_text("ok\n")
        if target.exists():
            shutil.rmtree(tmp)  # another process finished first; theirs is as good as ours
        else:
            tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# -- building -----------------------------------------------------------------------------
def image_exists(client: docker.DockerClient, ref: str) -> bool:
    """Whether the engine has the image `ref`."""
    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_image(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    *,
    buildargs: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    progress: Progress = _noop,
    dockerfile: str = "Dockerfile",
) -> str:
    """Build `context` into `tag` with the network off; stream steps to `progress`."""
    log.info("image_build", tag=tag)
    last_lines: list[str] = []
    try:
        for chunk in client.api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs or {},
            labels={"skillyard.managed": "1", **(labels or {})},
            network_mode="none",
            rm=True,
            forcerm=True,  # remove intermediate containers even when a step fails
            decode=True,
            pull=False,
        ):
            if "error" in chunk:
                raise SandboxError(
                    f"building {tag} failed: {chunk['error'].strip()}\n" + "".join(last_lines[-15:])
                )
            line = chunk.get("stream") or ""
            if line.strip():
                last_lines.append(line)
                if line.startswith("Step "):
                    progress(line.strip())
    except docker.errors.APIError as exc:
        raise SandboxError(f"building {tag} failed: {exc}") from exc
    return tag


@dataclass
class ImageSet:
    """The base and runner image tags."""

    base: str
    runner: str


class Images:
    """Finds or builds the base and runner images, tagged by the hash of their inputs."""

    def __init__(
        self,
        client: docker.DockerClient,
        wheelhouse: Path,
        *,
        base_mode: str = "auto",
        progress: Progress = _noop,
    ) -> None:
        self.client = client
        self.wheelhouse = wheelhouse
        self.base_mode = base_mode
        self.progress = progress
        self.recipes = recipes_dir()

    # base ---------------------------------------------------------------------------------
    def base_tag(self, mode: str) -> str:
        """The base image's tag for `mode` (offline or registry), from its recipe's hash."""
        recipe = self.recipes / "base" / ("debootstrap.sh" if mode == "offline" else "registry.Dockerfile")
        return f"skillyard/base:{mode}-{digest(recipe.read_bytes(), mode)}"

    def find_base(self) -> str | None:
        """The base image's tag if it exists."""
        modes = [self.base_mode] if self.base_mode != "auto" else ["registry", "offline"]
        for mode in modes:
            tag = self.base_tag(mode)
            if image_exists(self.client, tag):
                return tag
        return None

    def ensure_base(self) -> str:
        """The base image, pulled or built if missing."""
        found = self.find_base()
        if found:
            return found
        if self.base_mode in ("auto", "registry") and self._try_registry_base():
            return self.base_tag("registry")
        if self.base_mode == "registry":
            raise SandboxError(
                "could not pull python:3.11-slim; "
                "set SKILLYARD_BASE=offline to build the base with debootstrap"
            )
        return self._build_offline_base()

    def _try_registry_base(self) -> bool:
        try:
            self.progress("base: trying to pull python:3.11-slim")
            self.client.images.pull("python", tag="3.11-slim")
        except (docker.errors.APIError, docker.errors.DockerException) as exc:
            log.info("registry_unreachable", error=str(exc)[:200], fallback="debootstrap")
            self.progress("base: no registry reachable; building the offline base with debootstrap")
            return False
        ctx = self.recipes / "base"
        build_image(
            self.client,
            ctx,
            self.base_tag("registry"),
            dockerfile="registry.Dockerfile",
            labels={LABEL_KIND: "base"},
            progress=self.progress,
        )
        return True

    def _build_offline_base(self) -> str:
        tag = self.base_tag("offline")
        script = self.recipes / "base" / "debootstrap.sh"
        self.progress("base: debootstrap bookworm + python3 (about 1.5 min, once)")
        proc = subprocess.run(["bash", str(script), tag], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SandboxError(f"building the offline base failed:\n{proc.stderr.strip()[-1500:]}")
        return tag

    # runner -------------------------------------------------------------------------------
    def runner_requirements(self) -> list[str]:
        """The runner image's Python requirements."""
        return (self.recipes / "runner" / "requirements.txt").read_text().splitlines()

    def runner_tag(self, base: str) -> str:
        """The runner image's tag on `base`, from its inputs' hash."""
        base_id = self.client.images.get(base).id
        recipe = self.recipes / "runner"
        return f"skillyard/runner:{digest(base_id, hash_tree(recipe))}"

    def ensure_runner(self, base: str | None = None) -> str:
        """The runner image, built if missing."""
        base = base or self.ensure_base()
        tag = self.runner_tag(base)
        if image_exists(self.client, tag):
            return tag
        wheels = ensure_wheels(self.runner_requirements(), self.wheelhouse, self.progress)
        with tempfile.TemporaryDirectory(prefix="skillyard-runner-") as tmp:
            ctx = Path(tmp)
            shutil.copy(self.recipes / "runner" / "Dockerfile", ctx / "Dockerfile")
            shutil.copytree(wheels, ctx / "wheels")
            self.progress(f"runner: building {tag}")
            build_image(
                self.client,
                ctx,
                tag,
                buildargs={"BASE": base},
                labels={LABEL_KIND: "runner"},
                progress=self.progress,
            )
        return tag

    def ensure(self) -> ImageSet:
        """The base and runner images, built if missing."""
        base = self.ensure_base()
        return ImageSet(base=base, runner=self.ensure_runner(base))

    def current_runner(self) -> str | None:
        """The runner tag for the current recipes, if it is built (no building)."""
        base = self.find_base()
        if not base:
            return None
        tag = self.runner_tag(base)
        return tag if image_exists(self.client, tag) else None
