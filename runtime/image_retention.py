"""Image retention: which skill images a home keeps on the engine, and removing the rest.

Every version of every skill gets an image (runtime.build: tagged by a hash of its
content and its base), and nothing else removes them: a long-running server keeps all of
them. Retention keeps, of the home's skill images,

- the images of **current** versions, in every store of the home (the shared one and
  every tenant's), always -- also when they alone are over the budget (the report says so);
- the images of versions **used** within ``keep_recent`` (the registry's last use), the
  most recently used first, while the kept images fit the disk **budget** (bytes the images
  add on top of their bases, the current ones counted first; no budget: all of them);
- images a container uses (the engine refuses to remove them) and images younger than
  ``grace`` (a gate may be building or running on them);

and removes the others, deleted versions' included. A removed image is rebuilt from its
package, by content hash, the next time it is needed: a call's retry on a missing image
(runtime.calling), a gate's build (runtime.build). Dependencies images
(``skillyard.kind=deps``) of removed images go too once no skill image on the engine is
built on them.

Whose images: those labelled ``skillyard.kind=skill`` whose skill and content hash match a
version this home ever registered or blocked (the registry's events keep that history,
deletions included). Other homes' images on a shared engine are never touched;
``engine_wide`` treats every skill image on the engine as this home's (for an engine
that serves only this home).

`skillyard gc --images` runs it once; a server runs it every ``image_gc_interval_s``
(settings SKILLYARD_IMAGE_BUDGET, SKILLYARD_IMAGE_KEEP_RECENT, SKILLYARD_IMAGE_GRACE,
SKILLYARD_IMAGE_GC_INTERVAL_S).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import docker.errors
import structlog

from .config import Settings
from .lancestore import is_local
from .registry import Registry
from .times import as_utc

log = structlog.get_logger(__name__)

Progress = Callable[[str], None]


@dataclass
class ImageEntry:
    """One skill image and what retention decided about it."""

    tag: str
    skill: str
    content_hash: str
    size: int  # bytes it adds on top of its base image
    reason: str  # why it was kept or removed
    last_used: str | None = None


@dataclass
class RetentionReport:
    """What one retention pass kept and removed (or would have, in a dry run)."""

    kept: list[ImageEntry] = field(default_factory=list)
    removed: list[ImageEntry] = field(default_factory=list)
    removed_deps: list[str] = field(default_factory=list)
    budget: int | None = None
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def kept_bytes(self) -> int:
        """Bytes the kept images add on top of their bases."""
        return sum(e.size for e in self.kept)

    @property
    def freed_bytes(self) -> int:
        """Bytes the removed images added on top of their bases."""
        return sum(e.size for e in self.removed)

    @property
    def over_budget(self) -> bool:
        """Whether what must be kept (current, in use, new) is over the budget by itself."""
        return self.budget is not None and self.kept_bytes > self.budget

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data (the CLI's --json)."""
        return {
            "kept": [asdict(e) for e in self.kept],
            "removed": [asdict(e) for e in self.removed],
            "removed_deps": self.removed_deps,
            "kept_bytes": self.kept_bytes,
            "freed_bytes": self.freed_bytes,
            "budget": self.budget,
            "over_budget": self.over_budget,
            "dry_run": self.dry_run,
            "errors": self.errors,
        }


@dataclass
class _Version:
    """What the home's stores say about one content hash of one skill."""

    current: bool = False
    last_used: datetime | None = None


def home_stores(settings: Settings) -> list[str]:
    """Every store of the home: the shared one and each tenant's private one."""
    stores = [settings.store] if not is_local(settings.store) or Path(settings.store).is_dir() else []
    tenants = Path(settings.home) / "tenants"
    if tenants.is_dir():
        stores += [str(p / "store") for p in sorted(tenants.iterdir()) if (p / "store").is_dir()]
    return stores


def home_versions(settings: Settings) -> dict[tuple[str, str], _Version]:
    """(skill, content hash) -> current? last used? for every version the home's stores
    ever held: the live ones from the registry, the deleted ones from its events."""
    versions: dict[tuple[str, str], _Version] = {}
    for uri in home_stores(settings):
        registry = Registry(uri, embedder=None)
        try:
            for event in registry.events():
                detail = event.get("detail") or {}
                hashes = [detail.get("content_hash")] + [
                    v.get("content_hash") for v in detail.get("versions") or [] if isinstance(v, dict)
                ]
                for h in hashes:
                    if isinstance(h, str) and event.get("name"):
                        versions.setdefault((event["name"], h), _Version())
            for rec in registry.all_versions():
                seen = versions.setdefault((rec.name, rec.content_hash), _Version())
                seen.current = seen.current or rec.current
                if rec.last_used is not None and (seen.last_used is None or rec.last_used > seen.last_used):
                    seen.last_used = rec.last_used
        finally:
            registry.close()
    return versions


def retain(
    client: docker.DockerClient,
    settings: Settings,
    *,
    budget: int | None = None,
    keep_recent: timedelta = timedelta(days=7),
    grace: timedelta = timedelta(hours=1),
    engine_wide: bool = False,
    dry_run: bool = False,
    progress: Progress = lambda _: None,
) -> RetentionReport:
    """One retention pass over the home's skill images (see the module docstring)."""
    now = datetime.now(UTC)
    report = RetentionReport(budget=budget, dry_run=dry_run)
    progress("images: reading the home's stores")
    versions = home_versions(settings)
    progress("images: listing the engine's images and containers")
    skill_images = client.api.images(filters={"label": "skillyard.kind=skill"})
    sizes_by_tag: dict[str, int] = {}
    for img in client.api.images(filters={"label": "skillyard.managed=1"}):
        for tag in img.get("RepoTags") or []:
            sizes_by_tag[tag] = int(img.get("Size") or 0)
    in_use = {c.get("ImageID") for c in client.api.containers(all=True)}

    candidates: list[tuple[ImageEntry, datetime, str]] = []  # (entry, last use, image id)
    for img in skill_images:
        labels = img.get("Labels") or {}
        skill, content_hash = labels.get("skillyard.skill", ""), labels.get("skillyard.content_hash", "")
        tags = img.get("RepoTags") or []
        if not tags or not skill or not content_hash:
            continue
        seen = versions.get((skill, content_hash))
        if seen is None and not engine_wide:
            continue  # another home's image: not ours to remove
        seen = seen or _Version()
        base = sizes_by_tag.get(labels.get("skillyard.deps", ""), 0)
        size = max(0, int(img.get("Size") or 0) - base)
        last = seen.last_used.isoformat() if seen.last_used else None
        entry = ImageEntry(tags[0], skill, content_hash, size, "", last)
        if img.get("Id") in in_use:
            entry.reason = "in use by a container"
        elif seen.current:
            entry.reason = "current version"
        elif now - as_utc(datetime.fromtimestamp(int(img.get("Created") or 0), UTC)) < grace:
            entry.reason = f"built less than {grace} ago"
        elif seen.last_used is not None and now - seen.last_used <= keep_recent:
            candidates.append((entry, seen.last_used, img["Id"]))
            continue
        else:
            entry.reason = (
                "not current and not used recently" if seen.last_used else "not current, never used"
            )
            report.removed.append(entry)
            continue
        report.kept.append(entry)

    used = report.kept_bytes
    for entry, _, _ in sorted(candidates, key=lambda c: c[1], reverse=True):
        if budget is None or used + entry.size <= budget:
            entry.reason = "used recently"
            used += entry.size
            report.kept.append(entry)
        else:
            entry.reason = "used recently, but over the budget"
            report.removed.append(entry)

    if dry_run:
        return report
    gone: list[ImageEntry] = []
    for entry in report.removed:
        progress(f"images: removing {entry.tag}")
        try:
            client.api.remove_image(entry.tag)
            gone.append(entry)
        except docker.errors.NotFound:
            gone.append(entry)  # removed by someone else meanwhile: gone all the same
        except docker.errors.APIError as exc:  # in use since we looked: keep it
            entry.reason = f"kept: the engine refused ({str(exc.explanation or exc)[:160]})"
            report.kept.append(entry)
    report.removed = gone
    report.removed_deps = _remove_orphan_deps(
        client, {e.tag for e in gone}, skill_images, grace, now, engine_wide
    )
    log.info(
        "image_retention",
        kept=len(report.kept),
        removed=len(report.removed),
        freed_bytes=report.freed_bytes,
        over_budget=report.over_budget,
    )
    return report


def _remove_orphan_deps(
    client: docker.DockerClient,
    removed: set[str],
    skill_images: list[dict[str, Any]],
    grace: timedelta,
    now: datetime,
    engine_wide: bool,
) -> list[str]:
    """Dependencies images that a removed skill image was built on (any, with engine_wide)
    and that no remaining skill image on the engine is built on."""
    bases_of_removed = {
        (img.get("Labels") or {}).get("skillyard.deps")
        for img in skill_images
        if set(img.get("RepoTags") or []) & removed
    }
    still_used = {
        (img.get("Labels") or {}).get("skillyard.deps")
        for img in client.api.images(filters={"label": "skillyard.kind=skill"})
    }
    out = []
    for img in client.api.images(filters={"label": "skillyard.kind=deps"}):
        for tag in img.get("RepoTags") or []:
            if tag in still_used or not (engine_wide or tag in bases_of_removed):
                continue
            if now - datetime.fromtimestamp(int(img.get("Created") or 0), UTC) < grace:
                continue
            try:
                client.api.remove_image(tag)
                out.append(tag)
            except docker.errors.APIError as exc:  # a container or a build uses it: next time
                log.info("deps_image_kept", tag=tag, error=str(exc)[:160])
    return out


def retain_configured(client: docker.DockerClient, settings: Settings, **options: Any) -> RetentionReport:
    """A retention pass with the settings' budget, keep_recent and grace (`options` win)."""
    from sandbox.limits import parse_size

    from .times import parse_duration

    configured: dict[str, Any] = {
        "budget": parse_size(settings.image_budget) if settings.image_budget else None,
        "keep_recent": parse_duration(settings.image_keep_recent),
        "grace": parse_duration(settings.image_grace),
    }
    return retain(client, settings, **{**configured, **options})


class RetentionLoop:
    """Runs `retention()` every `interval_s` on a daemon thread (the first run after one
    interval), until `stop()`. A failed pass is logged and the loop goes on."""

    def __init__(self, interval_s: float, retention: Callable[[], Any]) -> None:
        self.interval_s = interval_s
        self.retention = retention
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="skillyard-image-retention", daemon=True)

    def start(self) -> RetentionLoop:
        """Start the loop; returns itself."""
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.retention()
            except Exception as exc:  # noqa: BLE001 - upkeep must not take the server down; try again later
                log.warning("image_retention_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    def stop(self) -> None:
        """Stop after the pass in progress, if any."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
