"""The images a yard runs skills in: the base and runner images (sandbox.images) and one
image per skill package (runtime.build), on a Docker engine.

:class:`SkillImages` is what a Yard needs of them; :class:`DockerImages` is the real one.
A yard whose sandbox is not Docker's (tests on sandbox.testing.ScriptedBackend) takes
another implementation, runtime.testing.PrebuiltImages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from sandbox.images import PYTHON_FAMILY, Images, ImageSet

from .build import build_session_image, build_skill_image, deps_image_tag
from .config import Settings
from .errors import SkillError
from .package import SkillPackage

if TYPE_CHECKING:
    from sandbox.docker_backend import DockerBackend


def session_family(pkgs: list[SkillPackage]) -> str:
    """The one image family that serves every skill of a session: python serves only python
    skills; every other family is the runner plus packages, so it serves python skills too,
    but two other families (node and documents) cannot share one image."""
    others = sorted({pkg.config.family for pkg in pkgs} - {PYTHON_FAMILY})
    if len(others) > 1:
        raise SkillError(
            f"these skills need different image families ({', '.join(others)}): start one session per family"
        )
    return others[0] if others else PYTHON_FAMILY


class SkillImages(Protocol):
    """Where a yard gets its images. `runner` may be set to an image already built."""

    runner: str

    def ensure(self) -> ImageSet:
        """The base and runner images, built if missing."""
        ...

    def find_base(self) -> str | None:
        """The base image's tag if it exists (nothing is built)."""
        ...

    def current_runner(self) -> str | None:
        """The runner image's tag if it exists (nothing is built)."""
        ...

    def build(self, pkg: SkillPackage) -> tuple[str, bool]:
        """The package's image (tag, whether it was built now): built if missing."""
        ...

    def image_for(self, pkg: SkillPackage, *, fresh: bool = False) -> str:
        """The package's image tag, cached per content hash; `fresh` looks (and builds) again."""
        ...

    def judge_image(self, pkg: SkillPackage) -> str:
        """The image the gate's judge runs the tests in: the runner plus the package's
        requirements, without its code (built by `build`)."""
        ...

    def check_family(self, family: str) -> None:
        """SandboxError unless `family` names an image family there is a recipe for."""
        ...

    def families(self) -> list[str]:
        """The image families there are recipes for."""
        ...

    def session_image(self, pkgs: list[SkillPackage]) -> str:
        """The image of a session holding these skills (see runtime.build.build_session_image)."""
        ...

    def family_image(self, family: str) -> str:
        """The family's image, built (with progress) the first time it is needed."""
        ...

    def has_family(self, family: str) -> bool:
        """Whether the family's image is built already (nothing is built)."""
        ...


class DockerImages:
    """Skill images on the Docker engine behind `backend`. Tags are content hashes, so an
    unchanged image is never rebuilt; `image_for` also caches the tag per content hash, so
    a call costs no image look-up (an image removed behind our back surfaces as
    ImageMissing at the run, and the caller asks again with `fresh`)."""

    def __init__(self, backend: DockerBackend, settings: Settings, progress: Callable[[str], None]) -> None:
        self.backend = backend
        self.settings = settings
        self.progress = progress
        self._runner: str | None = settings.runner_image or None
        self._tags: dict[str, str] = {}  # content hash -> skill image tag
        self._lock = threading.Lock()

    @cached_property
    def images(self) -> Images:
        """The base and runner images' builder."""
        return Images(
            self.backend.client,
            self.settings.wheel_dir.resolve(),
            base_mode=self.settings.base,
            progress=self.progress,
        )

    @property
    def runner(self) -> str:
        """The runner image skill images are built on (built on first use if missing)."""
        with self._lock:
            if self._runner is None:
                self._runner = self.images.ensure().runner
            return self._runner

    @runner.setter
    def runner(self, tag: str) -> None:
        self._runner = tag

    def ensure(self) -> ImageSet:
        return self.images.ensure()

    def find_base(self) -> str | None:
        return self.images.find_base()

    def current_runner(self) -> str | None:
        return self.images.current_runner()

    def family_image(self, family: str) -> str:
        """The family's image (the runner for python), built the first time a skill needs it."""
        return self.images.ensure_family(family, self.runner)

    def check_family(self, family: str) -> None:
        self.images.check_family(family)

    def families(self) -> list[str]:
        return self.images.families()

    def has_family(self, family: str) -> bool:
        return family == PYTHON_FAMILY or self.images.find_family(family) is not None

    def build(self, pkg: SkillPackage) -> tuple[str, bool]:
        return build_skill_image(
            self.backend.client,
            pkg,
            self.family_image(pkg.config.family),
            self.settings.wheel_dir.resolve(),
            self.progress,
            constraints=self.images.runner_requirements(),
        )

    def judge_image(self, pkg: SkillPackage) -> str:
        return deps_image_tag(self.backend.client, pkg, self.family_image(pkg.config.family))

    def session_image(self, pkgs: list[SkillPackage]) -> str:
        return build_session_image(
            self.backend.client,
            pkgs,
            self.family_image(session_family(pkgs)),
            self.settings.wheel_dir.resolve(),
            self.progress,
            constraints=self.images.runner_requirements(),
        )

    def image_for(self, pkg: SkillPackage, *, fresh: bool = False) -> str:
        if fresh or pkg.content_hash not in self._tags:
            tag, _ = self.build(pkg)
            self._tags[pkg.content_hash] = tag
        return self._tags[pkg.content_hash]
