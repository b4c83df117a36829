"""What the registry stores about a skill version, and the rules for its fields.

A :class:`SkillRecord` is one version of one skill as the registry knows it: identity,
status, description, the flattened gate summary, and the call counters. The tables:

``skills``
    one row per (name, version): status, tier, ``current`` flag, description, tags,
    instructions, the flattened gate summary, the full gate report (JSON text),
    ``search_text`` (name + description + tags + instructions, FTS-indexed),
    ``vector`` (fixed_size_list<float32>[384], null when no embedder was available)
    and ``listing`` (the LIGHT_COLUMNS a listing reads, packed as one JSON text, so a
    search leg returns its hits whole).
``packages``
    (name, version, content_hash, size, data) -- the tar.gz blob, kept apart so
    listing and searching never read package bytes.
``usage``
    (name, version, calls, failures, last_used, journal) -- the call counters. They live
    in their own small table so that counting calls (the hot path) neither rewrites
    the wide ``skills`` rows nor turns them into un-indexed FTS rows, and never
    conflicts with a registration committing to ``skills``. ``journal`` holds, per
    accounting journal whose calls were counted here, the last sequence number counted
    (``;<writer>:<seq>`` tokens, runtime/journal.py): written in the same update as the
    counts, it is what makes replaying a journal count nothing twice.
``events``
    append-only audit trail: (ts, name, version, kind, detail JSON).
``aliases``
    (name, alias_of, version, reason, created_at) -- a skill retired by a merge and the
    skill that absorbed it (runtime/merging.py). A call, an export or a tenant's look-up
    of the retired name resolves to the survivor (``Registry.resolve``); reinstating the
    retired skill drops its row. Added by a named migration.

Field rules, checked before any value reaches a SQL filter: skill names follow
runtime.names; content hashes a strict alphabet (HASH_RE); versions are ints >= 1;
statuses come from STATUSES, tiers from TIERS. Everything else is quoted
(lancestore.sql_str) besides.

Status and tier: ``status`` is what the registry does with a version (``registered``:
may be current, listed, searched; ``blocked``: kept, never current; ``retired``);
``tier`` is what kind of skill the version is:

- ``instructions``: no executable code (runtime.package.is_executable_code). Registered
  without a build or a gate; read by agents (search, SKILL.md, MCP resources, prompts and
  ``load_skill``), never run.
- ``verified``: code whose gate passed; registered, and it runs.
- ``blocked``: code whose gate failed, or code without tests; status ``blocked``.

So ``status == "registered"`` exactly when the tier is ``instructions`` or ``verified``,
and only a ``verified`` version ever runs.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa

from .errors import InvalidName, RegistryError
from .times import as_utc

DIM = 384
# sha256 hex, or "algo:hex", or similar; no quotes, spaces or SQL metacharacters.
HASH_RE = re.compile(r"^[A-Za-z0-9:_-]{1,160}$")
STATUSES = ("registered", "blocked", "retired")
Status = Literal["registered", "blocked", "retired"]
INSTRUCTIONS, VERIFIED, BLOCKED = "instructions", "verified", "blocked"
TIERS = (INSTRUCTIONS, VERIFIED, BLOCKED)
Tier = Literal["instructions", "verified", "blocked"]

SKILLS, PACKAGES, USAGE, EVENTS, ALIASES = "skills", "packages", "usage", "events", "aliases"
MAX_ALIAS_HOPS = 8  # a chain of merges longer than this is refused (and a cycle never resolves)
_TS = pa.timestamp("us", tz="UTC")

SKILLS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("current", pa.bool_(), nullable=False),
        pa.field("description", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("instructions", pa.string()),
        pa.field("search_text", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), DIM)),
        pa.field("gate_passed", pa.bool_()),
        pa.field("gate_tests", pa.int64()),
        pa.field("gate_failures", pa.int64()),
        pa.field("gate_errors", pa.int64()),
        pa.field("gate_skipped", pa.int64()),
        pa.field("gate_coverage", pa.float64()),
        pa.field("gate_duration_s", pa.float64()),
        pa.field("gate_reasons", pa.list_(pa.string())),
        pa.field("gate_report", pa.string()),
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
        # The listing columns but `id` (_LISTED), packed as one JSON text (_listing): the
        # search legs return it with their hits, so no second read of the hits' rows.
        pa.field("listing", pa.string()),
        pa.field("tier", pa.string()),  # see the module docstring (migration registry-0002)
    ]
)
PACKAGES_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("data", pa.large_binary()),
    ]
)
USAGE_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("calls", pa.int64()),
        pa.field("failures", pa.int64()),
        pa.field("last_used", _TS),
        pa.field("journal", pa.string()),
    ]
)
EVENTS_SCHEMA = pa.schema(
    [
        pa.field("ts", _TS),
        pa.field("name", pa.string()),
        pa.field("version", pa.int64()),
        pa.field("kind", pa.string()),
        pa.field("detail", pa.string()),
    ]
)
ALIASES_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("alias_of", pa.string(), nullable=False),
        pa.field("version", pa.int64()),  # the retired head version of `name`
        pa.field("reason", pa.string()),
        pa.field("created_at", _TS),
    ]
)
SCHEMAS = {
    SKILLS: SKILLS_SCHEMA,
    PACKAGES: PACKAGES_SCHEMA,
    USAGE: USAGE_SCHEMA,
    EVENTS: EVENTS_SCHEMA,
    ALIASES: ALIASES_SCHEMA,
}
# What listing reads: no vector, instructions, search text or report.
LIGHT_COLUMNS = [
    "id",
    "name",
    "version",
    "content_hash",
    "status",
    "tier",
    "current",
    "description",
    "tags",
    "gate_passed",
    "gate_tests",
    "gate_failures",
    "gate_errors",
    "gate_skipped",
    "gate_coverage",
    "gate_duration_s",
    "gate_reasons",
    "created_at",
    "updated_at",
]
# Packed into `listing`: each column a query returns costs ~0.4 ms at 100k rows (more
# for lists), a take of the hits' rows ~4 ms; one JSON column ~0.1-0.5 ms.
LISTED = LIGHT_COLUMNS[1:]
LISTED_TS = ("created_at", "updated_at")


class EmbedderLike(Protocol):
    """What the registry needs of an embedder: `dim`, and `embed(texts)` -> (n, dim) floats."""

    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class GateSummary:
    """The gate's verdict on a version, flattened into the skills row (the full report is kept beside it)."""

    passed: bool
    tests: int
    failures: int
    errors: int
    skipped: int
    coverage: float | None
    duration_s: float
    reasons: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, report: Any) -> GateSummary:
        """The summary of a full gate report (anything with these fields' names)."""
        return cls(**{f.name: getattr(report, f.name) for f in fields(cls)})


@dataclass
class SkillRecord:
    """One version of one skill as the registry knows it, with its call counters.

    The full gate report is not a field: it is read from the store on first access of
    `gate_report` (listing and searching never read it)."""

    id: str
    name: str
    version: int
    content_hash: str
    status: str
    tier: str
    current: bool
    description: str
    tags: list[str]
    gate: GateSummary
    calls: int
    failures: int
    last_used: datetime | None
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        # Not dataclass fields (so asdict/==/repr ignore them): the full gate report
        # is loaded from the store on first access of `.gate_report`.
        self._report_loader: Callable[[], dict[str, Any]] | None = None
        self._report: dict[str, Any] | None = None

    @property
    def runnable(self) -> bool:
        """Whether this version may run: registered, and code whose gate passed."""
        return self.status == "registered" and self.tier == VERIFIED

    @property
    def gate_report(self) -> dict[str, Any]:
        """The gate's full report (GateReport.to_dict()), read once from the store."""
        if self._report is None:
            if self._report_loader is None:
                raise RegistryError(f"{self.name} v{self.version}: no gate report loader")
            self._report = self._report_loader()
        return self._report


def validate_hash(content_hash: object) -> str:
    """`content_hash` if it is one (it reaches SQL filters), else InvalidName."""
    if not isinstance(content_hash, str) or not HASH_RE.fullmatch(content_hash):
        raise InvalidName(f"invalid content hash {content_hash!r}")
    return content_hash


def validate_version(version: object) -> int:
    """`version` as an int if it is one >= 1, else ValueError."""
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or int(version) < 1:
        raise ValueError(f"invalid version {version!r}: want an int >= 1")
    return int(version)


def validate_tier(tier: object) -> str:
    """`tier` if it is one of TIERS, else ValueError."""
    if tier not in TIERS:
        raise ValueError(f"invalid tier {tier!r}: want one of {TIERS}")
    return str(tier)


def tier_of_verdict(gate_passed: bool) -> str:
    """The tier of a version with code: verified if its gate passed, else blocked."""
    return VERIFIED if gate_passed else BLOCKED


def validate_status(status: object) -> str:
    """`status` if it is one of STATUSES, else ValueError."""
    if status not in STATUSES:
        raise ValueError(f"invalid status {status!r}: want one of {STATUSES}")
    return str(status)


def embed_text(name: str, description: str, tags: list[str]) -> str:
    """The text a version's vector is made from."""
    # The description says what the skill does and when to use it: that is what a
    # query should match by meaning. Instructions are long and would dilute the
    # mean-pooled vector (and be cut at 256 tokens); they are in the FTS text.
    text = f"{name.replace('-', ' ')}: {description}"
    return f"{text}\nTags: {', '.join(tags)}" if tags else text


def search_text(name: str, description: str, tags: list[str], instructions: str) -> str:
    """The text the full-text index holds for a version: name, description, tags and instructions."""
    return "\n".join([name, name.replace("-", " "), description, " ".join(tags), instructions])


def pack_listing(row: dict[str, Any]) -> str:
    """The `listing` column of a skills row: its LISTED columns as JSON (ASCII only, so
    it is a safe SQL literal once quoted; timestamps as ISO 8601)."""
    out = {k: row.get(k) for k in LISTED}
    for k in LISTED_TS:
        ts = out[k]
        out[k] = None if ts is None else as_utc(ts).isoformat()
    return json.dumps(out, separators=(",", ":"))


def unpack_listing(row_id: str, listing: str) -> dict[str, Any]:
    """A row of the LIGHT_COLUMNS columns from its id and `listing` (see pack_listing)."""
    row = json.loads(listing)
    for k in LISTED_TS:
        if row[k] is not None:
            row[k] = datetime.fromisoformat(row[k])
    row["id"] = row_id
    return row


def record_from_row(
    row: dict[str, Any],
    usage: dict[str, Any] | None = None,
    *,
    report_loader: Callable[[], dict[str, Any]] | None = None,
    report: dict[str, Any] | None = None,
) -> SkillRecord:
    """A SkillRecord from a skills row (at least LIGHT_COLUMNS) and its usage row (or none
    yet); its gate report is `report`, or read by `report_loader` when first asked for."""
    u = usage or {}
    rec = SkillRecord(
        id=row["id"],
        name=row["name"],
        version=row["version"],
        content_hash=row["content_hash"],
        status=row["status"],
        tier=row["tier"],
        current=bool(row["current"]),
        description=row["description"] or "",
        tags=list(row["tags"] or []),
        gate=GateSummary(
            passed=bool(row["gate_passed"]),
            tests=row["gate_tests"] or 0,
            failures=row["gate_failures"] or 0,
            errors=row["gate_errors"] or 0,
            skipped=row["gate_skipped"] or 0,
            coverage=row["gate_coverage"],
            duration_s=row["gate_duration_s"] or 0.0,
            reasons=list(row["gate_reasons"] or []),
        ),
        calls=u.get("calls") or 0,
        failures=u.get("failures") or 0,
        last_used=None if u.get("last_used") is None else as_utc(u["last_used"]),
        created_at=as_utc(row["created_at"]),
        updated_at=as_utc(row["updated_at"]),
    )
    rec._report_loader = report_loader
    rec._report = report
    return rec


def head(records: list[SkillRecord]) -> SkillRecord | None:
    """The version a name stands for: the current one if any, else the latest."""
    if not records:
        return None
    for r in records:
        if r.current:
            return r
    return max(records, key=lambda r: r.version)


def new_version_row(
    *,
    name: str,
    version: int,
    content_hash: str,
    status: str,
    tier: str,
    description: str,
    tags: list[str],
    instructions: str,
    vector: np.ndarray | None,
    gate: GateSummary,
    report_json: str,
    now: datetime,
) -> dict[str, Any]:
    """The skills row of a new version (current if registered), its listing packed."""
    row = {
        "id": uuid.uuid4().hex,
        "name": name,
        "version": version,
        "content_hash": content_hash,
        "status": status,
        "tier": tier,
        "current": status == "registered",
        "description": description,
        "tags": tags,
        "instructions": instructions,
        "search_text": search_text(name, description, tags, instructions),
        "vector": vector,
        "gate_passed": bool(gate.passed),
        "gate_tests": int(gate.tests),
        "gate_failures": int(gate.failures),
        "gate_errors": int(gate.errors),
        "gate_skipped": int(gate.skipped),
        "gate_coverage": None if gate.coverage is None else float(gate.coverage),
        "gate_duration_s": float(gate.duration_s),
        "gate_reasons": [str(r) for r in gate.reasons],
        "gate_report": report_json,
        "created_at": now,
        "updated_at": now,
    }
    row["listing"] = pack_listing(row)
    return row


def restamp(row: dict[str, Any], now: datetime, **changes: Any) -> dict[str, Any]:
    """`row` with `changes` applied, `updated_at` set to `now` and its listing repacked
    (the listing must always agree with the columns it packs)."""
    row.update(changes, updated_at=now)
    row["listing"] = pack_listing(row)
    return row
