"""The cost report as a picture: cumulative cost against cumulative savings per skill,
N* and the uses so far marked (matplotlib, the optional `plot` extra; no pyplot, no
global backend switch)."""

from __future__ import annotations

import math
from pathlib import Path

from ..accounting import SkillCost
from ..costcurve import curve_end
from ..errors import ConfigError

DEFAULT_PLOT_SKILLS = 12


def plot_costs(report: list[SkillCost], path: str | Path, *, max_skills: int = DEFAULT_PLOT_SKILLS) -> Path:
    """Cumulative cost (invested + context per use) and cumulative savings (baseline
    per use) against the number of uses, one panel per skill (the `max_skills` with
    the most invested), with N* and the uses so far marked. Writes a PNG."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, MaxNLocator
    except ImportError as exc:  # optional extra
        raise ConfigError("plotting needs matplotlib: pip install 'skillyard[plot]'") from exc

    path = Path(path)
    chosen = sorted(report, key=lambda c: (-c.invested_tokens, -c.uses, c.skill))[:max_skills]
    chosen.sort(key=lambda c: c.skill)
    cols = max(1, min(3, len(chosen)))
    rows = max(1, math.ceil(len(chosen) / cols))
    fig = Figure(figsize=(5.2 * cols, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas, with no pyplot and no global backend switch
    axes = fig.subplots(rows, cols, squeeze=False)
    tokens_fmt = FuncFormatter(
        lambda v, _: (
            f"{v / 1e6:.1f}M" if abs(v) >= 1e6 else f"{v / 1e3:.0f}k" if abs(v) >= 1e3 else f"{v:.0f}"
        )
    )
    for ax in axes.flat[len(chosen) :]:
        ax.set_axis_off()
    if not chosen:
        axes[0][0].text(0.5, 0.5, "no skills in the ledger or registry", ha="center", va="center")
    for ax, c in zip(axes.flat, chosen, strict=False):  # the grid may have more axes than skills
        end = curve_end(c)
        xs = list(range(end + 1))
        ax.plot(
            xs,
            [c.invested_tokens + n * c.context_tokens for n in xs],
            color="tab:red",
            label="cost: invested + context/use",
        )
        ax.plot(xs, [n * c.baseline_tokens for n in xs], color="tab:green", label="savings: baseline/use")
        if c.break_even_uses is not None:
            ax.axvline(c.break_even_uses, color="tab:blue", linestyle="--", linewidth=1)
            ax.plot(
                [c.break_even_uses],
                [c.break_even_uses * c.baseline_tokens],
                "o",
                color="tab:blue",
                label=f"N* = {c.break_even_uses:,}",
            )
        if c.uses:
            ax.axvline(
                min(c.uses, end), color="grey", linestyle=":", linewidth=1, label=f"uses so far: {c.uses:,}"
            )
        verdict = (
            "never breaks even" if c.break_even_uses is None else ("paid off" if c.paid_off else "not yet")
        )
        ax.set_title(f"{c.skill} ({verdict})", fontsize=10)
        ax.set_xlabel("uses")
        ax.set_ylabel("tokens")
        ax.set_xlim(0, end)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(tokens_fmt)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    if len(report) > len(chosen):
        fig.suptitle(f"{len(chosen)} of {len(report)} skills (most tokens invested)", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
