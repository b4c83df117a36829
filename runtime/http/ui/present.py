"""What the console's pages show of the runtime's records: a skill's tier, its gate report
in sections (failing tests, coverage, surviving mutants), sizes and times.

Tiers: every record carries its ``tier`` (instructions, verified, blocked; the registry's
migration gave older records theirs), and the console shows it as it says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...records import SkillRecord

TIERS = ("verified", "instructions", "blocked")


def tier_of(record: SkillRecord) -> str:
    """The record's tier, as the registry keeps it."""
    return record.tier


@dataclass
class FailedCase:
    name: str
    status: str
    message: str
    detail: str


@dataclass
class Survivor:
    """A mutant the tests did not kill: ``file:line before -> after``."""

    file: str
    line: int
    before: str
    after: str
    operator: str = ""

    @property
    def label(self) -> str:
        return f"{self.file}:{self.line} {self.before} -> {self.after}"


@dataclass
class GateView:
    """A gate report (GateReport.to_dict()), in the sections a page shows."""

    present: bool
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    duration_s: float = 0.0
    coverage: float | None = None
    uncovered: dict[str, list[int]] = field(default_factory=dict)
    failing: list[FailedCase] = field(default_factory=list)
    passing: list[str] = field(default_factory=list)
    calls: int = 0
    mutation: dict[str, Any] = field(default_factory=dict)
    survivors: list[Survivor] = field(default_factory=list)
    output_tail: str = ""
    infrastructure_error: bool = False


def gate_view(report: dict[str, Any] | None) -> GateView:
    """The sections of a gate report (a report from an older gate may lack some)."""
    if not report:
        return GateView(present=False)
    cases = report.get("cases") or []
    failing = [
        FailedCase(
            str(c.get("name", "")),
            str(c.get("status", "")),
            str(c.get("message", "")),
            str(c.get("detail", "")),
        )
        for c in cases
        if c.get("status") in ("failed", "error")
    ]
    mutation = dict(report.get("mutation") or {})
    mutants = mutation.get("mutants") or []
    survivors = [
        Survivor(
            str(m.get("file", "")),
            int(m.get("line", 0) or 0),
            str(m.get("before", "")),
            str(m.get("after", "")),
            str(m.get("operator", "")),
        )
        for m in mutants
        if m.get("killed") is False
    ]
    if not survivors and mutation.get("survivors"):  # only the labels were kept
        survivors = [_survivor_from_label(str(s)) for s in mutation["survivors"]]
    return GateView(
        present=True,
        passed=bool(report.get("passed")),
        reasons=[str(r) for r in report.get("reasons") or []],
        tests=int(report.get("tests") or 0),
        failures=int(report.get("failures") or 0),
        errors=int(report.get("errors") or 0),
        skipped=int(report.get("skipped") or 0),
        duration_s=float(report.get("duration_s") or 0.0),
        coverage=report.get("coverage"),
        uncovered={str(k): list(v) for k, v in (report.get("uncovered") or {}).items()},
        failing=failing,
        passing=[str(c.get("name", "")) for c in cases if c.get("status") == "passed"],
        calls=int(report.get("calls") or 0),
        mutation=mutation,
        survivors=survivors,
        output_tail=str(report.get("output_tail") or ""),
        infrastructure_error=bool(report.get("infrastructure_error")),
    )


def _survivor_from_label(label: str) -> Survivor:
    """A survivor from its label, ``file:line before -> after``."""
    where, _, change = label.partition(" ")
    file, _, line = where.rpartition(":")
    before, _, after = change.partition(" -> ")
    return Survivor(file or where, int(line) if line.isdigit() else 0, before, after)


def size_text(n: int | None) -> str:
    """Bytes, short: 512 B, 3.4 KB, 2.1 MB."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024**2:.1f} MB"


def when_text(ts: datetime | str | None) -> str:
    """A time as the pages show it: UTC, to the second."""
    if ts is None or ts == "":
        return "-"
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            return ts[:32]
    return ts.strftime("%Y-%m-%d %H:%M:%S")
