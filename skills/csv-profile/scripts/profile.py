"""Profile CSV text: per-column type inference, missing/distinct counts and ranges."""
from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from datetime import date, datetime

MISSING = {"", "na", "n/a", "null", "none", "nan"}
BOOL_TOKENS = {"true", "false", "yes", "no"}
CANDIDATE_DELIMITERS = ",;\t|"
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_DATE_FORMATS = ("%Y/%m/%d", "%d.%m.%Y")


def _parse_int(value: str):
    return int(value) if _INT_RE.match(value) else None


def _parse_float(value: str):
    if not _FLOAT_RE.match(value):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _parse_date(value: str):
    if len(value) < 8 or not value[0].isdigit():
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=CANDIDATE_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _unique_names(header: list[str]) -> list[str]:
    names: list[str] = []
    seen: Counter = Counter()
    for index, raw in enumerate(header, start=1):
        name = raw.strip() or f"column_{index}"
        seen[name] += 1
        if seen[name] > 1:
            name = f"{name}_{seen[name]}"
        names.append(name)
    return names


def _iso(value: datetime) -> str:
    if value.time() == datetime.min.time() and value.tzinfo is None:
        return value.date().isoformat()
    return value.isoformat()


def _profile_column(name: str, values: list[str]) -> dict:
    present = [v for v in values if v.strip().lower() not in MISSING]
    present = [v.strip() for v in present]
    counts = Counter(present)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    info = {
        "name": name,
        "type": "empty",
        "missing": len(values) - len(present),
        "non_missing": len(present),
        "distinct": len(counts),
        "top_values": [{"value": v, "count": c} for v, c in top],
    }
    if not present:
        return info

    ints = [_parse_int(v) for v in present]
    if all(i is not None for i in ints):
        info.update(type="int", min=min(ints), max=max(ints), mean=math.fsum(ints) / len(ints))
        return info
    floats = [_parse_float(v) for v in present]
    if all(f is not None for f in floats):
        info.update(type="float", min=min(floats), max=max(floats), mean=math.fsum(floats) / len(floats))
        return info
    if all(v.lower() in BOOL_TOKENS for v in present):
        info["type"] = "bool"
        return info
    dates = [_parse_date(v) for v in present]
    if all(d is not None for d in dates):
        info["type"] = "date"
        try:
            info.update(min=_iso(min(dates)), max=_iso(max(dates)))
        except TypeError:  # mixed naive and timezone-aware values cannot be ordered
            pass
        return info
    info["type"] = "string"
    return info


def run(params: dict) -> dict:
    text = params.get("csv")
    if not isinstance(text, str):
        raise ValueError("'csv' must be a string of CSV text")
    delimiter = params.get("delimiter")
    if delimiter is None:
        delimiter = _sniff_delimiter(text)
    elif not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError("'delimiter' must be a single character")
    if delimiter in "\r\n\"":
        raise ValueError("'delimiter' cannot be a quote or newline character")

    try:
        rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter, strict=True) if row]
    except csv.Error as exc:
        raise ValueError(f"could not parse CSV: {exc}") from exc
    if not rows:
        raise ValueError("CSV has no header row")

    names = _unique_names(rows[0])
    width = len(names)
    data = rows[1:]
    ragged = 0
    columns: list[list[str]] = [[] for _ in names]
    for row in data:
        if len(row) != width:
            ragged += 1
        for index in range(width):
            columns[index].append(row[index] if index < len(row) else "")

    return {
        "row_count": len(data),
        "column_count": width,
        "delimiter": delimiter,
        "ragged_rows": ragged,
        "columns": [_profile_column(name, values) for name, values in zip(names, columns)],
    }
