"""Cost curves: cumulative cost against cumulative savings, as the numbers a chart draws.

Two curves, both in tokens, on the same definitions as runtime/accounting.py (cost = the
tokens invested, plus the context every use loads; savings = the baseline every
successful use spares the agent):

- :func:`projection` -- one skill, uses 0..end on the x axis: cost ``invested + n * context``
  and savings ``n * baseline``; the lines meet at N* (``accounting.break_even``). This is
  what ``skillyard cost --plot`` draws.
- :func:`history` -- what happened, in the ledger's order: every investing LLM call lifts
  the cost, every use adds its own context to the cost and, when it succeeded, its
  skill's baseline to the savings. ``break_even`` is the use after which the savings have
  covered the cost ever since (None while they do not), and ``broke_even_at`` its time.

Invariants: points are in order and their ``uses`` never decrease; the first point is
(0, 0, 0) for a history and (0, invested, 0) for a projection; tokens are exact ints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .accounting import INVESTED_PURPOSES, SkillCost

MAX_PROJECTED_USES = 100_000


@dataclass(frozen=True)
class CurvePoint:
    """Cumulative cost and savings after `uses` uses (and, in a history, at `ts`)."""

    uses: int
    cost: int
    savings: int
    ts: datetime | None = None


@dataclass
class CostCurve:
    """A chart's worth of points, with its break-even point and the uses so far."""

    title: str
    kind: Literal["projection", "history"]
    points: list[CurvePoint] = field(default_factory=list)
    break_even: int | None = None  # N*: the uses at which the savings cover the cost
    marker: CurvePoint | None = None  # the point to mark at N* (on the savings line)
    uses_so_far: int = 0
    broke_even_at: datetime | None = None  # history only: when the savings caught up for good
    never: bool = False  # projection only: a use saves nothing, so the lines never meet

    @property
    def last(self) -> CurvePoint:
        """The final point ((0, 0, 0) for an empty curve)."""
        return self.points[-1] if self.points else CurvePoint(0, 0, 0)


def curve_end(cost: SkillCost) -> int:
    """How many uses a projection shows: past the uses so far, and well past N*."""
    end = max(cost.uses, 5)
    if cost.break_even_uses is not None:
        end = max(end, math.ceil(cost.break_even_uses * 1.5), cost.break_even_uses + 2)
    return min(end, MAX_PROJECTED_USES)


def projection(cost: SkillCost) -> CostCurve:
    """One skill's cost and savings over its first uses, N* marked (see the module docstring).
    Straight lines: the two ends are enough points."""
    end = curve_end(cost)
    n_star = cost.break_even_uses
    marker = None
    if n_star is not None:
        marker = CurvePoint(
            n_star, cost.invested_tokens + n_star * cost.context_tokens, n_star * cost.baseline_tokens
        )
    points = [
        CurvePoint(0, cost.invested_tokens, 0),
        CurvePoint(end, cost.invested_tokens + end * cost.context_tokens, end * cost.baseline_tokens),
    ]
    return CostCurve(
        title=cost.skill,
        kind="projection",
        points=points,
        break_even=n_star,
        marker=marker,
        uses_so_far=cost.uses,
        never=cost.break_even_uses is None,
    )


def history(
    title: str,
    costs: Iterable[SkillCost],
    llm_calls: Iterable[dict[str, Any]],
    uses: Iterable[dict[str, Any]],
) -> CostCurve:
    """What the skills in `costs` actually cost and saved, in time order, from ledger rows
    (``ts``, ``skill``, and ``purpose`` + ``total_tokens`` for calls, ``context_tokens`` +
    ``outcome`` for uses). Rows of other skills, and calls that invest nothing, are left
    out. A use saves its skill's baseline (the cost report's) when it succeeded."""
    baseline = {c.skill: c.baseline_tokens for c in costs}
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    for row in llm_calls:
        if row.get("skill") in baseline and row.get("purpose") in INVESTED_PURPOSES:
            events.append((row["ts"], 0, row))
    for row in uses:
        if row.get("skill") in baseline:
            events.append((row["ts"], 1, row))
    events.sort(key=lambda e: (e[0], e[1]))  # at one instant, the investment comes first
    curve = CostCurve(title=title, kind="history", points=[CurvePoint(0, 0, 0)])
    n = cost = savings = ok = 0
    for ts, is_use, row in events:
        if is_use:
            n += 1
            cost += int(row["context_tokens"])
            if row.get("outcome") == "ok":
                ok += 1
                savings += baseline[row["skill"]]
        else:
            cost += int(row["total_tokens"])
        point = CurvePoint(n, cost, savings, ts)
        if not (ok > 0 and savings >= cost):
            curve.break_even, curve.broke_even_at, curve.marker = None, None, None
        elif curve.break_even is None:
            curve.break_even, curve.broke_even_at, curve.marker = n, ts, point
        curve.points.append(point)
    curve.uses_so_far = n
    return curve
