"""Build a skill into an image layered on the runner image.

The tag is a hash of the runner image and the package's content: an unchanged skill on
an unchanged runner is never rebuilt. Requirements come from the host wheelhouse and
the build runs with the network off.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import docker
import docker.errors
import structlog

from sandbox.images import Progress, build_image, digest, ensure_wheels, image_exists

from .package import SkillPackage

log = structlog.get_logger(__name__)

DOCKERFILE = """\
ARG RUNNER
FROM ${RUNNER}
USER 0:0
COPY skill /skill
%(wheels)s
USER 65534:65534
WORKDIR /tmp
"""
WHEELS_STEP = """\
COPY wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-index --no-cache-dir --disable-pip-version-check -q \\
      --find-links /tmp/wheels -r /tmp/wheels/requirements.txt && rm -rf /tmp/wheels
"""


def skill_image_tag(client: docker.DockerClient, pkg: SkillPackage, runner: str) -> str:
    runner_id = client.images.get(runner).id
    return f"skillyard/skill-{pkg.name}:{digest(runner_id, pkg.content_hash, length=16)}"


def _skill_tar(pkg: SkillPackage) -> bytes:
    """The package under skill/, root-owned, world-readable, with explicit directory entries."""
    import io
    import tarfile

    buf = io.BytesIO()
    dirs = {"skill"}
    for rel in pkg.files:
        parts = ("skill/" + rel).split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for rel in sorted(pkg.files):
            info = tarfile.TarInfo("skill/" + rel)
            info.size = len(pkg.files[rel])
            info.mode = 0o755 if rel in pkg.executable else 0o644
            tar.addfile(info, io.BytesIO(pkg.files[rel]))
    return buf.getvalue()


def _commit_image(client: docker.DockerClient, pkg: SkillPackage, runner: str, tag: str, labels: dict[str, str]) -> None:
    """Runner + one layer holding /skill, without the classic builder: create a container (never
    started), copy the files in, commit it. About 3x faster than a one-COPY build here."""
    api = client.api
    repo, _, version = tag.rpartition(":")
    import os
    import socket

    # Labelled like any sandbox container so `gc` collects it if we crash mid-build.
    container = api.create_container(runner, command=["true"], user="0:0", network_disabled=True,
                                     labels={"skillyard.managed": "1", "skillyard.owner": "build",
                                             "skillyard.pid": str(os.getpid()), "skillyard.host": socket.gethostname()})
    try:
        api.put_archive(container["Id"], "/", _skill_tar(pkg))
        changes = ["USER 65534:65534", "WORKDIR /tmp", 'CMD ["python3"]']
        # Commit copies the container's labels into the image: overwrite the build-only ones.
        changes += [f"LABEL {k}={v}" for k, v in {**labels, "skillyard.owner": "image", "skillyard.pid": "0",
                                                  "skillyard.host": "-"}.items()]
        api.commit(container["Id"], repository=repo, tag=version, changes=changes)
    finally:
        try:
            api.remove_container(container["Id"], force=True)
        except docker.errors.APIError:
            pass


def build_skill_image(
    client: docker.DockerClient,
    pkg: SkillPackage,
    runner: str,
    wheelhouse: Path,
    progress: Progress = lambda _: None,
) -> tuple[str, bool]:
    """Return (tag, built): built is False when the image already existed."""
    tag = skill_image_tag(client, pkg, runner)
    if image_exists(client, tag):
        return tag, False
    labels = {"skillyard.managed": "1", "skillyard.kind": "skill", "skillyard.skill": pkg.name,
              "skillyard.content_hash": pkg.content_hash}
    if not pkg.config.requirements:
        progress(f"{pkg.name}: committing image")
        _commit_image(client, pkg, runner, tag, labels)
        log.info("skill_image_built", skill=pkg.name, tag=tag, method="commit")
        return tag, True
    with tempfile.TemporaryDirectory(prefix=f"skillyard-build-{pkg.name}-") as tmp:
        ctx = Path(tmp)
        for rel, data in pkg.files.items():
            target = ctx / "skill" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(0o755 if rel in pkg.executable else 0o644)
        for d in (ctx / "skill").rglob("*"):
            if d.is_dir():
                d.chmod(0o755)
        wheels = ""
        if pkg.config.requirements:
            folder = ensure_wheels(pkg.config.requirements, wheelhouse, progress)
            shutil.copytree(folder, ctx / "wheels")
            wheels = WHEELS_STEP
        (ctx / "Dockerfile").write_text(DOCKERFILE % {"wheels": wheels})
        build_image(
            client, ctx, tag, buildargs={"RUNNER": runner},
            labels={"skillyard.kind": "skill", "skillyard.skill": pkg.name, "skillyard.content_hash": pkg.content_hash},
            progress=progress,
        )
    log.info("skill_image_built", skill=pkg.name, tag=tag)
    return tag, True
