"""Compare two texts: unified diff, similarity ratio and added/removed line counts (difflib)."""
from __future__ import annotations

import difflib

MAX_CHARS = 500_000        # per input
CHAR_RATIO_LIMIT = 5_000   # above this many chars per side, similarity is measured on lines


def _range(start: int, stop: int) -> str:
    """Unified diff range, as difflib formats it."""
    length = stop - start
    first = start + 1
    if length == 1:
        return str(first)
    if length == 0:
        first -= 1
    return f"{first},{length}"


def _normalise(line: str, ignore_case: bool, ignore_whitespace: bool) -> str:
    if ignore_whitespace:
        line = " ".join(line.split())
    if ignore_case:
        line = line.casefold()
    return line


def _text(params: dict, key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a string")
    if len(value) > MAX_CHARS:
        raise ValueError(f"'{key}' is too large ({len(value)} chars; at most {MAX_CHARS})")
    return value


def run(params: dict) -> dict:
    a, b = _text(params, "a"), _text(params, "b")
    from_name = str(params.get("from_name", "a"))
    to_name = str(params.get("to_name", "b"))
    context = params.get("context", 3)
    if isinstance(context, bool) or not isinstance(context, int) or not 0 <= context <= 1000:
        raise ValueError("'context' must be an integer from 0 to 1000")
    ignore_case = bool(params.get("ignore_case", False))
    ignore_whitespace = bool(params.get("ignore_whitespace", False))

    lines_a, lines_b = a.splitlines(), b.splitlines()
    norm_a = [_normalise(line, ignore_case, ignore_whitespace) for line in lines_a]
    norm_b = [_normalise(line, ignore_case, ignore_whitespace) for line in lines_b]
    matcher = difflib.SequenceMatcher(None, norm_a, norm_b)

    added = removed = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            removed += i2 - i1
        if tag in ("replace", "insert"):
            added += j2 - j1

    out: list[str] = []
    hunks = 0
    if added or removed:
        out += [f"--- {from_name}", f"+++ {to_name}"]
        for group in matcher.get_grouped_opcodes(context):
            hunks += 1
            first, last = group[0], group[-1]
            out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@")
            for tag, i1, i2, j1, j2 in group:
                if tag == "equal":
                    out += [" " + line for line in lines_a[i1:i2]]
                    continue
                out += ["-" + line for line in lines_a[i1:i2]]
                out += ["+" + line for line in lines_b[j1:j2]]

    if max(len(a), len(b)) <= CHAR_RATIO_LIMIT:
        text_a = "\n".join(norm_a) if (ignore_case or ignore_whitespace) else a
        text_b = "\n".join(norm_b) if (ignore_case or ignore_whitespace) else b
        similarity = difflib.SequenceMatcher(None, text_a, text_b, autojunk=False).ratio()
        basis = "chars"
    else:
        similarity = matcher.ratio()
        basis = "lines"

    return {
        "identical": a == b,
        "equivalent": not (added or removed),
        "unified_diff": "\n".join(out) + ("\n" if out else ""),
        "added": added,
        "removed": removed,
        "hunks": hunks,
        "similarity": round(similarity, 6),
        "similarity_basis": basis,
        "line_similarity": round(matcher.ratio(), 6),
        "lines_a": len(lines_a),
        "lines_b": len(lines_b),
    }
