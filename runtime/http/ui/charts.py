"""A cost curve as an SVG chart's geometry: pixel coordinates, ticks and labels.

The SVG itself is written by a template (templates/_chart.html), so every text in it is
escaped like the rest of the page; this module only does arithmetic. No JavaScript and
no chart library: the page is complete as the server sends it.

Invariants: every coordinate lies inside the plot area; the y axis starts at 0; a history
of more than MAX_POINTS points is thinned to at most that many, always keeping the first,
the last and the break-even point, so the lines stay faithful where it matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...costcurve import CostCurve, CurvePoint

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 12, 36
MAX_POINTS = 600


def tokens_text(value: float) -> str:
    """A token count, short: 950, 12k, 1.2M."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:.1f}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.0f}k"
    return f"{value:.0f}"


def _nice_step(span: float, ticks: int = 5) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `ticks` ticks over `span`."""
    raw = max(span / ticks, 1e-9)
    power = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1.0
    for mult in (1, 2, 5, 10):
        if power * mult >= raw:
            return power * mult
    return power * 10


@dataclass
class Tick:
    at: float  # pixels along the axis
    label: str


@dataclass
class Mark:
    x: float
    y: float
    label: str


@dataclass
class Chart:
    """What templates/_chart.html draws."""

    title: str
    kind: str
    width: int = WIDTH
    height: int = HEIGHT
    cost: str = ""  # polyline points, "x,y x,y ..."
    savings: str = ""
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    break_even: Mark | None = None
    uses_so_far: Mark | None = None
    summary: str = ""  # one sentence: the chart for a screen reader, and its caption

    @property
    def plot(self) -> tuple[float, float, float, float]:
        """The plot area: left, top, right, bottom."""
        return LEFT, TOP, self.width - RIGHT, self.height - BOTTOM


def _thinned(curve: CostCurve) -> list[CurvePoint]:
    points = curve.points or [CurvePoint(0, 0, 0)]
    if len(points) <= MAX_POINTS:
        return points
    step = -(-len(points) // MAX_POINTS)
    keep = points[::step]
    if curve.marker is not None and curve.marker not in keep:
        keep.append(curve.marker)
    keep.append(points[-1])
    return sorted(set(keep), key=points.index)


def chart(curve: CostCurve) -> Chart:
    """The geometry of `curve`'s chart."""
    points = _thinned(curve)
    x_max = max(1, max(p.uses for p in points), curve.uses_so_far)
    y_top = max(1, max(max(p.cost, p.savings) for p in points)) * 1.05
    y_step = _nice_step(y_top)
    y_max = math.ceil(y_top / y_step) * y_step  # the axis ends on a tick
    left, top, right, bottom = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM

    def x(uses: float) -> float:
        return round(left + (right - left) * uses / x_max, 1)

    def y(tokens: float) -> float:
        return round(bottom - (bottom - top) * tokens / y_max, 1)

    out = Chart(title=curve.title, kind=curve.kind)
    out.cost = " ".join(f"{x(p.uses)},{y(p.cost)}" for p in points)
    out.savings = " ".join(f"{x(p.uses)},{y(p.savings)}" for p in points)
    x_step = max(1, round(_nice_step(x_max)))
    out.x_ticks = [Tick(x(n), f"{n:,}") for n in range(0, x_max + 1, x_step)]
    out.y_ticks = [Tick(y(i * y_step), tokens_text(i * y_step)) for i in range(round(y_max / y_step) + 1)]
    if curve.marker is not None:
        out.break_even = Mark(x(curve.marker.uses), y(curve.marker.savings), f"N* = {curve.marker.uses:,}")
    if curve.uses_so_far:
        out.uses_so_far = Mark(x(curve.uses_so_far), top, f"uses so far: {curve.uses_so_far:,}")
    out.summary = summary(curve)
    return out


def _uses(n: int) -> str:
    return f"{n:,} use" if n == 1 else f"{n:,} uses"


def summary(curve: CostCurve) -> str:
    """One sentence about the curve."""
    last = curve.last
    if curve.kind == "projection":
        if curve.never:
            verdict = "a use saves nothing, so it never breaks even"
        else:
            verdict = f"it breaks even at N* = {_uses(curve.break_even or 0)}"
        return f"{curve.title}: {verdict}; {_uses(curve.uses_so_far)} so far."
    if curve.break_even is not None and curve.broke_even_at is not None:
        when = curve.broke_even_at.strftime("%Y-%m-%d %H:%M UTC")
        verdict = f"broke even at use {curve.break_even:,} ({when})"
    else:
        verdict = "has not broken even yet"
    return (
        f"{curve.title}: {_uses(last.uses)}, {tokens_text(last.cost)} tokens spent, "
        f"{tokens_text(last.savings)} saved; {verdict}."
    )
