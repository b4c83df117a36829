"""Images: the offline or registry base, the runner, and content-addressed builds.

Every image we build is tagged by a hash of its recipe and inputs, so an unchanged
image is never rebuilt. Builds run with the network off; packages come from a host
wheelhouse filled by `pip download` (the host reaches the package index, containers never do).
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import structlog

from .errors import SandboxError, WheelMissing

log = structlog.get_logger(__name__)

Progress = Callable[[str], None]
PY_VERSION = "3.11"
LABEL_KIND = "skillyard.kind"
PYTHON_FAMILY = "python"  # the runner itself
DEBIAN_SUITE = "bookworm"  # the base image's (images/base/debootstrap.sh)


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
# The wheelhouse (default .skillyard/wheelhouse):
#   pool/          every wheel ever fetched or added (`skillyard wheelhouse add`): the offline source
#   <hash>/        one requirement set: its wheels, requirements.txt and requirements.lock (what a
#                  build installs, `--require-hashes`), and a .complete marker
LOCK_FILE = "requirements.lock"
POOL = "pool"
_MISSING_RE = re.compile(r"No matching distribution found for ([^\s;]+)")
_UNSATISFIED_RE = re.compile(r"Could not find a version that satisfies the requirement ([^\s;]+)")
_WHEEL_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def _platform_tags() -> list[str]:
    arch = platform.machine() or "x86_64"
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch.lower(), arch)
    tags = [f"manylinux_2_{v}_{arch}" for v in (36, 35, 34, 31, 28, 27, 24, 17, 12, 5)]
    tags += [f"manylinux2014_{arch}", f"manylinux1_{arch}"] if arch == "x86_64" else [f"manylinux2014_{arch}"]
    return tags


def _pip_download(
    args: list[str], dest: Path, *, offline_from: Path | None
) -> subprocess.CompletedProcess[str]:
    """`pip download` of CPython 3.11 Linux wheels into `dest`: from the package index, or with
    `offline_from` from that folder only (no network)."""
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
        str(dest),
    ]
    for tag in _platform_tags():
        cmd += ["--platform", tag]
    if offline_from is not None:
        cmd += ["--no-index", "--find-links", str(offline_from)]
    else:
        cmd += ["--timeout", "20", "--retries", "2"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=900)


def _pip_errors(proc: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(
        line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("WARNING: Location")
    ).strip()


def _missing_package(text: str, reqs: list[str]) -> str:
    found = _MISSING_RE.findall(text) or _UNSATISFIED_RE.findall(text)
    return found[-1] if found else (reqs[0] if len(reqs) == 1 else ", ".join(reqs))


def lock_lines(folder: Path) -> list[str]:
    """`name==version --hash=sha256:...` for every wheel in `folder`, sorted: a lock pip installs
    with --require-hashes (every package pinned, every file checked)."""
    lines = []
    for wheel in sorted(folder.glob("*.whl")):
        match = _WHEEL_RE.match(wheel.name)
        if not match:
            continue
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{match['name'].replace('_', '-').lower()}=={match['version']} --hash=sha256:{sha}")
    return lines


def wheel_pool(wheelhouse: Path) -> Path:
    """The folder every fetched or added wheel is kept in: the offline source of every build."""
    pool = wheelhouse / POOL
    pool.mkdir(parents=True, exist_ok=True)
    return pool


def add_to_wheelhouse(requirements: Iterable[str], wheelhouse: Path, progress: Progress = _noop) -> list[str]:
    """Fetch wheels for `requirements` (and what they need) from the package index into the
    pool, for builds that cannot reach it later. Returns the wheel files now there for them."""
    reqs = [r.strip() for r in requirements if r.strip()]
    pool = wheel_pool(wheelhouse)
    with tempfile.TemporaryDirectory(prefix=".add-", dir=wheelhouse) as tmp:
        progress(f"wheelhouse: downloading {', '.join(reqs)}")
        proc = _pip_download(reqs, Path(tmp), offline_from=None)
        if proc.returncode != 0:
            text = _pip_errors(proc)
            package = _missing_package(text, reqs)
            raise WheelMissing(
                package,
                f"pip could not download a wheel for {package}: {text[-600:]}\n"
                "Check the name and version, that this machine reaches the package index, and that the "
                "package ships a CPython 3.11 Linux wheel (or is pure Python).",
            )
        names = sorted(p.name for p in Path(tmp).glob("*.whl"))
        for name in names:
            shutil.copy2(Path(tmp) / name, pool / name)
    return names


def ensure_wheels(
    requirements: Iterable[str],
    wheelhouse: Path,
    progress: Progress = _noop,
    *,
    constraints: Iterable[str] = (),
) -> Path:
    """The wheels for `requirements` (CPython 3.11, Linux) in a folder named by their hash,
    with `requirements.lock`: every package pinned with its sha256, for `pip install
    --require-hashes`.

    Wheels come from the wheelhouse's pool first (no network); what it lacks comes from the
    package index (and is added to the pool) when the index is reachable. `constraints` pin
    packages the image already has (the runner's), so a requirement cannot replace them with
    other versions. A complete folder is reused without touching the network. WheelMissing
    names a package no source has.
    """
    reqs = sorted({r.strip() for r in requirements if r.strip() and not r.strip().startswith("#")})
    pins = sorted({c.strip() for c in constraints if c.strip() and not c.strip().startswith("#")})
    target = wheelhouse / digest("\n".join(reqs), "\n".join(pins), platform.machine(), PY_VERSION, "lock-1")
    if (target / ".complete").exists():
        return target
    wheelhouse.mkdir(parents=True, exist_ok=True)
    pool = wheel_pool(wheelhouse)
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=wheelhouse))
    try:
        (tmp / "requirements.txt").write_text("\n".join(reqs) + "\n")
        (tmp / "constraints.txt").write_text("\n".join(pins) + "\n")
        if reqs:
            args = ["-r", str(tmp / "requirements.txt"), "-c", str(tmp / "constraints.txt")]
            proc = _pip_download(args, tmp, offline_from=pool)
            if proc.returncode != 0:
                offline_error = _pip_errors(proc)
                progress(f"downloading wheels: {', '.join(reqs)}")
                proc = _pip_download(args, tmp, offline_from=None)
                if proc.returncode != 0:
                    text = _pip_errors(proc) or offline_error
                    package = _missing_package(text + "\n" + offline_error, reqs)
                    raise WheelMissing(
                        package,
                        f"no wheel for {package} (requirements: {', '.join(reqs)}): not in the wheelhouse "
                        f"({pool}), and the package index could not supply one: {text[-500:]}\n"
                        f"Where the index is reachable, `skillyard wheelhouse add '{package}'` fetches it; "
                        "or copy a CPython 3.11 Linux wheel into the wheelhouse's pool folder; or fix the "
                        "requirement.",
                    )
                for wheel in tmp.glob("*.whl"):
                    shutil.copy2(wheel, pool / wheel.name)
        (tmp / "constraints.txt").unlink()
        (tmp / LOCK_FILE).write_text("\n".join(lock_lines(tmp)) + "\n")
        (tmp / ".complete").write_text("ok\n")
        if target.exists():
            shutil.rmtree(tmp)  # another process finished first; theirs is as good as ours
        else:
            tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# -- Debian packages for image families ------------------------------------------------------
def _apt_config(root: Path, mirror: str, keyring: Path) -> str:
    return "\n".join(
        [
            f'Dir::State "{root}";',
            f'Dir::State::status "{root}/status";',
            f'Dir::State::Lists "{root}/lists";',
            f'Dir::Cache "{root}";',
            f'Dir::Cache::archives "{root}/archives";',
            f'Dir::Etc "{root}/etc";',
            f'Dir::Etc::SourceList "{root}/etc/sources.list";',
            f'Dir::Etc::SourceParts "{root}/etc/sources.list.d";',
            f'Dir::Etc::Preferences "{root}/etc/preferences";',
            f'Dir::Etc::PreferencesParts "{root}/etc/preferences.d";',
            f'Dir::Etc::Trusted "{keyring}";',
            f'Dir::Etc::TrustedParts "{root}/etc/trusted.gpg.d";',
            'Debug::NoLocking "true";',
            'APT::Install-Recommends "false";',
            'APT::Install-Suggests "false";',
            "",
        ]
    )


def fetch_debs(packages: list[str], dpkg_status: bytes, dest: Path, progress: Progress = _noop) -> list[Path]:
    """Download the Debian packages `packages` need on top of an image whose dpkg status is
    `dpkg_status`, with the host's apt-get in a private state dir (the host's own apt state is
    neither read nor changed), signatures checked against Debian's archive keyring. The image
    build then installs them with its network off. Returns the .deb files (in `dest`)."""
    if shutil.which("apt-get") is None:
        raise SandboxError(
            "building this image family needs apt-get on the host (Debian or Ubuntu) to fetch its Debian "
            "packages; build the family on such a machine (`skillyard images build --family NAME`)"
        )
    mirror = os.environ.get("SKILLYARD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    keyring = Path(
        os.environ.get("SKILLYARD_DEBIAN_KEYRING", "/usr/share/keyrings/debian-archive-keyring.gpg")
    )
    if not keyring.exists():
        raise SandboxError(
            f"Debian's archive keyring {keyring} is missing: install debian-archive-keyring "
            "(or point SKILLYARD_DEBIAN_KEYRING at it), so the packages' signatures can be checked"
        )
    with tempfile.TemporaryDirectory(prefix="skillyard-apt-") as tmp:
        root = Path(tmp)
        for sub in (
            "lists/partial",
            "archives/partial",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
        ):
            (root / sub).mkdir(parents=True)
        (root / "status").write_bytes(dpkg_status)
        (root / "etc" / "sources.list").write_text(f"deb {mirror} {DEBIAN_SUITE} main\n")
        (root / "apt.conf").write_text(_apt_config(root, mirror, keyring))
        env = {**os.environ, "APT_CONFIG": str(root / "apt.conf"), "DEBIAN_FRONTEND": "noninteractive"}
        progress(f"fetching Debian package lists ({mirror} {DEBIAN_SUITE})")
        steps = [
            ["apt-get", "-q", "update"],
            ["apt-get", "-q", "-y", "install", "--download-only", *packages],
        ]
        for step in steps:
            proc = subprocess.run(step, capture_output=True, text=True, env=env, timeout=1800)
            if proc.returncode != 0:
                raise SandboxError(
                    f"fetching Debian packages failed (apt-get {step[2]}): "
                    f"{(proc.stderr or proc.stdout).strip()[-800:]}\n"
                    "Check that this machine reaches the Debian mirror (SKILLYARD_DEBIAN_MIRROR) and that "
                    "the package names exist in Debian " + DEBIAN_SUITE
                )
            if step[2] == "update":
                progress(f"fetching Debian packages: {', '.join(packages)}")
        debs = sorted((root / "archives").glob("*.deb"))
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for deb in debs:
            shutil.move(str(deb), dest / deb.name)
            out.append(dest / deb.name)
    return out


def image_file(client: docker.DockerClient, image: str, path: str) -> bytes:
    """One file's bytes from an image, read from a container that is created, never started."""
    import io
    import tarfile

    labels = {  # like every container we make, so `gc` removes it should we die before we do
        "skillyard.managed": "1",
        "skillyard.owner": "build",
        "skillyard.pid": str(os.getpid()),
        "skillyard.host": socket.gethostname(),
    }
    container = client.api.create_container(image, command=["true"], network_disabled=True, labels=labels)
    try:
        stream, _ = client.api.get_archive(container["Id"], path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            handle = tar.extractfile(member) if member is not None else None
            if handle is None:
                raise SandboxError(f"{path} is not a file in {image}")
            return handle.read()
    finally:
        try:
            client.api.remove_container(container["Id"], force=True)
        except docker.errors.APIError:
            pass


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

    # families -----------------------------------------------------------------------------
    def families(self) -> list[str]:
        """The image families there are recipes for: python (the runner) and images/families/*."""
        folder = self.recipes / "families"
        found = (
            sorted(p.name for p in folder.iterdir() if (p / "packages.txt").is_file())
            if folder.is_dir()
            else []
        )
        return [PYTHON_FAMILY, *found]

    def family_packages(self, family: str) -> list[str]:
        """The Debian packages a family adds to the runner."""
        text = (self.recipes / "families" / family / "packages.txt").read_text()
        return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]

    def check_family(self, family: str) -> None:
        """SandboxError unless there is a recipe for `family`."""
        if family not in self.families():
            raise SandboxError(
                f"no image family {family!r}: the families are {', '.join(self.families())} "
                "(recipes in images/families/)"
            )

    def family_tag(self, family: str, runner: str) -> str:
        """The family image's tag on `runner` (the runner itself for python), from its inputs' hash."""
        if family == PYTHON_FAMILY:
            return runner
        self.check_family(family)
        runner_id = self.client.images.get(runner).id
        recipe = (self.recipes / "families" / "Dockerfile").read_bytes()
        packages = hash_tree(self.recipes / "families" / family)
        return f"skillyard/family-{family}:{digest(runner_id, recipe, packages)}"

    def find_family(self, family: str) -> str | None:
        """The family image's tag if it is built (nothing is built)."""
        self.check_family(family)
        runner = self.current_runner()
        if runner is None:
            return None
        tag = self.family_tag(family, runner)
        return tag if image_exists(self.client, tag) else None

    def ensure_family(self, family: str, runner: str | None = None) -> str:
        """The family image: the runner plus the family's Debian packages, built if missing
        (packages fetched on the host, installed with the build's network off)."""
        self.check_family(family)
        runner = runner or self.ensure_runner()
        tag = self.family_tag(family, runner)
        if family == PYTHON_FAMILY or image_exists(self.client, tag):
            return tag
        packages = self.family_packages(family)
        self.progress(f"family {family}: building {tag} (once; Debian packages: {', '.join(packages)})")
        with tempfile.TemporaryDirectory(prefix=f"skillyard-family-{family}-") as tmp:
            ctx = Path(tmp)
            status = image_file(self.client, runner, "/var/lib/dpkg/status")
            debs = fetch_debs(
                packages, status, ctx / "debs", lambda m: self.progress(f"family {family}: {m}")
            )
            size = sum(d.stat().st_size for d in debs)
            self.progress(
                f"family {family}: installing {len(debs)} Debian packages ({size / 1e6:.0f} MB), network off"
            )
            shutil.copy(self.recipes / "families" / "Dockerfile", ctx / "Dockerfile")
            build_image(
                self.client,
                ctx,
                tag,
                buildargs={"RUNNER": runner},
                labels={LABEL_KIND: "family", "skillyard.family": family},
                progress=lambda m: self.progress(f"family {family}: {m}"),
            )
        log.info("family_image_built", family=family, tag=tag)
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
