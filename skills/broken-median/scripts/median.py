"""Median of a list of numbers."""
from __future__ import annotations

import math


def run(params: dict) -> dict:
    values = params.get("values")
    if not isinstance(values, list) or not values:
        raise ValueError("'values' must be a non-empty list of numbers")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"values[{index}] is not a finite number: {value!r}")
    ordered = sorted(values)
    middle = len(ordered) // 2
    median = ordered[middle]
    return {"median": median, "count": len(ordered)}
