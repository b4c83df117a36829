"""Skill maintenance: find overlapping skills (merges) and unused ones (retire).

Nothing is ever deleted. Retiring goes through ``Registry.set_status(..., "retired")``:
the versions, packages, gate reports and events stay, a retired skill just stops
being searched and run, and ``set_status(name, "registered")`` brings it back.
Overlaps are proposals in a dry run; applied, each is handed to a `merge` callback
(``skillyard maintain --apply``: runtime/merging.py, where the model writes one version
that passes both skills' tests, and the absorbed skill is retired into the survivor).

Overlap score. For every pair of current registered skills:

- text similarity of "name: description" -- cosine of the embeddings (the
  registry's embedder, else ``load_embedder()``); with no embedder, the Jaccard
  index of the two word sets;
- name similarity -- ``difflib.SequenceMatcher`` ratio of the two names;
- score = max(text, (text + name) / 2): the description decides, and a near-equal
  name can lift a close description over the threshold but never flag two skills
  on its own (``url-parse`` vs ``uri-parse`` may do quite different things).

Pairs with score >= threshold are proposed; the one to keep has more calls (over
all versions), then the newer current version, then the smaller name.

Unused policy (``UnusedPolicy``): a registered skill is retired when it has no
calls at all and its current version is older than ``unused_days``, or when its
last call (any version) is older than ``idle_days``. Instructions-only skills are
never proposed: they are read, not called, and reads are not counted.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import structlog

from .records import INSTRUCTIONS
from .times import as_utc, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from .ledger import Ledger
    from .records import EmbedderLike, SkillRecord
    from .registry import Registry

log = structlog.get_logger(__name__)

DEFAULT_THRESHOLD = 0.85
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class Overlap:
    """Two current skills that look like one: which to keep, which to merge into it, and why."""

    keep: str
    merge: str  # the skill proposed to be folded into `keep`
    score: float
    text_similarity: float
    name_similarity: float
    method: str  # "embedding" or "jaccard"
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return asdict(self)


@dataclass
class UnusedPolicy:
    """When a registered skill counts as unused: never called for `unused_days`, or not for `idle_days`."""

    unused_days: float = 30
    idle_days: float = 90

    def __post_init__(self) -> None:
        if self.unused_days < 0 or self.idle_days < 0:
            raise ValueError("unused_days and idle_days must be >= 0")


@dataclass
class Unused:
    """A skill the policy would retire, and by which rule."""

    name: str
    version: int
    rule: str  # "unused" (never called) or "idle" (not called lately)
    reason: str
    calls: int
    last_used: datetime | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return asdict(self)


@dataclass
class MaintenanceReport:
    """What one maintenance run found and (with apply) did."""

    now: datetime
    applied: bool
    threshold: float
    policy: UnusedPolicy
    method: str
    overlaps: list[Overlap] = field(default_factory=list)
    unused: list[Unused] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it was not retired after all
    merges: list[dict[str, Any]] = field(default_factory=list)  # what each applied merge came to
    compacted: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data (the CLI's --json)."""
        return {
            "now": self.now.isoformat(),
            "applied": self.applied,
            "threshold": self.threshold,
            "policy": asdict(self.policy),
            "method": self.method,
            "overlaps": [o.to_dict() for o in self.overlaps],
            "unused": [u.to_dict() for u in self.unused],
            "retired": self.retired,
            "skipped": self.skipped,
            "merges": self.merges,
            "compacted": self.compacted,
        }


# --------------------------------------------------------------------------- helpers


def _text(rec: SkillRecord) -> str:
    return f"{rec.name.replace('-', ' ')}: {rec.description}"


def _usage(registry: Registry, name: str) -> tuple[int, datetime | None]:
    """Calls over all versions of a skill, and its last call."""
    versions = registry.versions(name)
    last = [as_utc(v.last_used) for v in versions if v.last_used is not None]
    return sum(v.calls for v in versions), max(last, default=None)


def _resolve_embedder(registry: Registry, embedder: Any) -> EmbedderLike | None:
    if embedder != "auto":
        return embedder
    emb = getattr(registry, "embedder", None)
    if emb is None:
        from .embeddings import load_embedder

        emb = load_embedder()
    return emb


def jaccard(a: str, b: str) -> float:
    """Word-set Jaccard similarity of two texts (the fallback without an embedder)."""
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(wa & wb) / len(wa | wb) if wa or wb else 0.0


def name_similarity(a: str, b: str) -> float:
    """How alike two skill names are (difflib's ratio)."""
    return difflib.SequenceMatcher(None, a, b).ratio()


# --------------------------------------------------------------------------- overlaps


def similarity_to(
    name: str, description: str, records: list[SkillRecord], embedder: EmbedderLike | None
) -> list[float]:
    """The overlap score (module docstring) of a skill described by `name` and
    `description` with each of `records`: what learning asks of a candidate skill."""
    if not records:
        return []
    text = f"{name.replace('-', ' ')}: {description}"
    texts = [_text(r) for r in records]
    if embedder is not None:
        vecs = np.asarray(embedder.embed([text, *texts]), dtype=np.float64)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs / np.where(norms == 0, 1.0, norms)
        sims = [float(np.clip(vecs[0] @ vecs[i + 1], -1.0, 1.0)) for i in range(len(records))]
    else:
        sims = [jaccard(text, t) for t in texts]
    return [max(t, (t + name_similarity(name, r.name)) / 2) for t, r in zip(sims, records, strict=True)]


def find_overlaps(
    registry: Registry,
    embedder: EmbedderLike | Literal["auto"] | None = "auto",
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Overlap]:
    """Pairs of current registered skills that look like the same skill, best first.

    `embedder`: "auto" (the registry's, else load_embedder()), an embedder, or None
    for the word-Jaccard fallback. See the module docstring for the score."""
    overlaps, _ = _overlaps(registry, embedder, threshold)
    return overlaps


def _overlaps(registry: Registry, embedder: Any, threshold: float) -> tuple[list[Overlap], str]:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], not {threshold}")
    recs = registry.list("registered")
    emb = _resolve_embedder(registry, embedder)
    method = "embedding" if emb is not None else "jaccard"
    if len(recs) < 2:
        return [], method
    texts = [_text(r) for r in recs]
    n = len(recs)
    if emb is not None:
        vecs = np.asarray(emb.embed(texts), dtype=np.float64)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs / np.where(norms == 0, 1.0, norms)
        sims = np.clip(vecs @ vecs.T, -1.0, 1.0)
    else:
        sims = np.array([[jaccard(texts[i], texts[j]) if i < j else 0.0 for j in range(n)] for i in range(n)])
    floor = 2 * threshold - 1  # below this text similarity no name can lift the score to the threshold
    usage: dict[str, tuple[int, datetime | None]] = {}
    found = []
    for i in range(n):
        for j in range(i + 1, n):
            text = float(sims[i, j])
            if text < floor:
                continue
            a, b = recs[i], recs[j]
            name = name_similarity(a.name, b.name)
            score = max(text, (text + name) / 2)
            if score < threshold:
                continue
            for r in (a, b):
                if r.name not in usage:
                    usage[r.name] = _usage(registry, r.name)
            # keep: more calls, then the newer current version, then the smaller name
            keep, merge = sorted(
                (a, b), key=lambda r: (-usage[r.name][0], -as_utc(r.created_at).timestamp(), r.name)
            )
            why = (
                "more calls"
                if usage[keep.name][0] != usage[merge.name][0]
                else ("newer" if keep.created_at != merge.created_at else "name order")
            )
            reason = (
                f"{method} similarity {text:.2f}, name similarity {name:.2f}; keep {keep.name} ({why}: "
                f"{usage[keep.name][0]} vs {usage[merge.name][0]} calls)"
            )
            found.append(
                Overlap(
                    keep=keep.name,
                    merge=merge.name,
                    score=round(score, 4),
                    text_similarity=round(text, 4),
                    name_similarity=round(name, 4),
                    method=method,
                    reason=reason,
                )
            )
    found.sort(key=lambda o: (-o.score, o.keep, o.merge))
    return found, method


# --------------------------------------------------------------------------- unused


def find_unused(
    registry: Registry, now: datetime | None = None, policy: UnusedPolicy | None = None
) -> list[Unused]:
    """Registered skills the policy would retire (see UnusedPolicy), by name."""
    now = as_utc(now or utc_now())
    policy = policy or UnusedPolicy()
    out = []
    for rec in registry.list("registered"):
        if rec.tier == INSTRUCTIONS:
            continue  # read, never called: no call counter says whether it is used
        calls, last = _usage(registry, rec.name)
        created = as_utc(rec.created_at)
        if calls == 0 and now - created > timedelta(days=policy.unused_days):
            days = (now - created).days
            why = (
                f"no calls since v{rec.version} was added {days} days ago "
                f"(policy: {policy.unused_days:g} days)"
            )
            out.append(Unused(rec.name, rec.version, "unused", why, calls, last, created))
        elif last is not None and now - last > timedelta(days=policy.idle_days):
            days = (now - last).days
            why = f"last called {days} days ago (policy: {policy.idle_days:g} days)"
            out.append(Unused(rec.name, rec.version, "idle", why, calls, last, created))
    return out


# --------------------------------------------------------------------------- maintain


def maintain(
    registry: Registry,
    *,
    apply: bool = False,
    now: datetime | None = None,
    policy: UnusedPolicy | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    embedder: EmbedderLike | Literal["auto"] | None = "auto",
    ledger: Ledger | None = None,
    merge: Callable[[Overlap], dict[str, Any]] | None = None,
) -> MaintenanceReport:
    """Find overlaps and unused skills. Dry run unless `apply`: then each overlap goes to
    `merge` (if given; best overlap first, a skill merged once this run is left out of the
    rest) and its result is listed in `merges`; the unused are retired (each exactly at the
    version judged; a skill that changed meanwhile -- merged away, say -- is skipped) and
    the registry (and `ledger`, if given) tables are compacted. Nothing is deleted."""
    now = as_utc(now or utc_now())
    policy = policy or UnusedPolicy()
    overlaps, method = _overlaps(registry, embedder, threshold)
    unused = find_unused(registry, now, policy)
    report = MaintenanceReport(
        now=now,
        applied=apply,
        threshold=threshold,
        policy=policy,
        method=method,
        overlaps=overlaps,
        unused=unused,
    )
    if not apply:
        return report
    if merge is not None:
        touched: set[str] = set()
        for o in overlaps:
            if o.keep in touched or o.merge in touched:
                report.merges.append(
                    {
                        "survivor": o.keep,
                        "absorbed": o.merge,
                        "status": "skipped",
                        "reasons": ["one of them was merged earlier in this run"],
                    }
                )
                continue
            try:
                result = merge(o)
            except Exception as exc:  # noqa: BLE001 -- one failed merge must not stop the rest
                log.warning("maintain: merge failed", keep=o.keep, merge=o.merge, error=str(exc)[:200])
                result = {
                    "survivor": o.keep,
                    "absorbed": o.merge,
                    "status": "error",
                    "reasons": [str(exc)[:300]],
                }
            report.merges.append(result)
            if result.get("status") == "merged":
                touched.update((o.keep, o.merge))
    for u in unused:
        head = registry.get(u.name)
        if head is None or head.version != u.version or head.status != "registered":
            report.skipped[u.name] = "changed since it was judged"
            continue
        calls, _ = _usage(registry, u.name)
        if calls != u.calls:
            report.skipped[u.name] = "called since it was judged"
            continue
        try:
            registry.set_status(u.name, "retired", version=u.version, reason=f"maintain: {u.reason}")
        except Exception as exc:  # noqa: BLE001 -- one failure must not stop the rest
            report.skipped[u.name] = str(exc)[:200]
            log.warning("maintain: retire failed", skill=u.name, error=str(exc)[:200])
            continue
        report.retired.append(u.name)
        log.info("maintain: retired", skill=u.name, version=u.version, rule=u.rule)
    report.compacted["registry"] = registry.compact()
    if ledger is not None:
        report.compacted["ledger"] = ledger.compact()
    return report
