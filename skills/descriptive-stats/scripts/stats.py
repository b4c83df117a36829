"""Descriptive statistics for a list of numbers."""
from __future__ import annotations

import math
from collections import Counter

MAX_VALUES = 1_000_000


def quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (Hyndman & Fan type 7; numpy's default)."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def run(params: dict) -> dict:
    values = params.get("values")
    if not isinstance(values, list) or not values:
        raise ValueError("'values' must be a non-empty list of numbers")
    if len(values) > MAX_VALUES:
        raise ValueError(f"too many values ({len(values)}; at most {MAX_VALUES})")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"values[{index}] is not a number: {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"values[{index}] is not finite: {value!r}")
    qs = params.get("quantiles", [0.25, 0.5, 0.75])
    if not isinstance(qs, list) or any(
        isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1 for q in qs
    ):
        raise ValueError("'quantiles' must be a list of numbers between 0 and 1")
    k = params.get("outlier_k", 1.5)
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not k > 0:
        raise ValueError("'outlier_k' must be a positive number")

    n = len(values)
    ordered = sorted(values)
    total = sum(values) if all(isinstance(v, int) for v in values) else math.fsum(values)
    mean = total / n
    squares = math.fsum((x - mean) ** 2 for x in values)
    variance_population = squares / n
    variance_sample = squares / (n - 1) if n > 1 else None

    counts = Counter(values)
    top = max(counts.values())
    modes = [] if top == 1 and n > 1 else sorted(v for v, c in counts.items() if c == top)

    q1, q3 = quantile(ordered, 0.25), quantile(ordered, 0.75)
    iqr = q3 - q1
    lower, upper = q1 - k * iqr, q3 + k * iqr
    outliers = [v for v in values if v < lower or v > upper]

    skewness = None
    if n > 2 and variance_sample:
        sd = math.sqrt(variance_sample)
        skewness = n / ((n - 1) * (n - 2)) * math.fsum(((x - mean) / sd) ** 3 for x in values)

    return {
        "count": n,
        "sum": total,
        "mean": mean,
        "median": quantile(ordered, 0.5),
        "modes": modes,
        "mode_count": top,
        "min": ordered[0],
        "max": ordered[-1],
        "range": ordered[-1] - ordered[0],
        "variance_sample": variance_sample,
        "stdev_sample": math.sqrt(variance_sample) if variance_sample is not None else None,
        "variance_population": variance_population,
        "stdev_population": math.sqrt(variance_population),
        "skewness": skewness,
        "quantiles": [{"q": q, "value": quantile(ordered, q)} for q in qs],
        "q1": q1,
        "q3": q3,
        "iqr": iqr,
        "outliers": {
            "k": k,
            "lower_fence": lower,
            "upper_fence": upper,
            "values": outliers,
            "indices": [i for i, v in enumerate(values) if v < lower or v > upper],
        },
    }
