"""Render rows as an aligned GitHub-flavoured markdown table, or parse such a table back to rows."""
from __future__ import annotations

import re
import unicodedata

ALIGNMENTS = ("left", "right", "center", "none", "auto")
_DELIMITER_CELL = re.compile(r"^\s*:?-+:?\s*$")
_NUMBER = re.compile(r"^[+-]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?%?$")


def _width(text: str) -> int:
    """Display width: East Asian wide/full-width characters take two columns, combining marks none."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _cell(value) -> str:
    if value is None:
        return ""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    text = text.replace("|", "\\|")
    return re.sub(r"\r\n|\r|\n", "<br>", text)


def _resolve_alignment(align, headers: list[str], columns: list[list[str]]) -> list[str]:
    count = len(headers)
    if align is None or isinstance(align, str):
        spec = [align or "none"] * count
    elif isinstance(align, list):
        if len(align) > count:
            raise ValueError(f"'align' has {len(align)} entries but the table has {count} columns")
        spec = list(align) + ["none"] * (count - len(align))
    elif isinstance(align, dict):
        unknown = [key for key in align if key not in headers]
        if unknown:
            raise ValueError(f"'align' names unknown columns: {', '.join(map(str, unknown))}")
        spec = [align.get(h, "none") for h in headers]
    else:
        raise ValueError("'align' must be a string, a list or an object")
    resolved = []
    for value, cells in zip(spec, columns):
        if value not in ALIGNMENTS:
            raise ValueError(f"unknown alignment {value!r}; use one of {', '.join(ALIGNMENTS)}")
        if value == "auto":
            filled = [c for c in cells if c != ""]
            value = "right" if filled and all(_NUMBER.match(c) for c in filled) else "left"
        resolved.append(value)
    return resolved


def _pad(text: str, width: int, align: str) -> str:
    gap = width - _width(text)
    if align == "right":
        return " " * gap + text
    if align == "center":
        left = gap // 2
        return " " * left + text + " " * (gap - left)
    return text + " " * gap


def _separator(width: int, align: str) -> str:
    if align == "left":
        return ":" + "-" * (width - 1)
    if align == "right":
        return "-" * (width - 1) + ":"
    if align == "center":
        return ":" + "-" * (width - 2) + ":"
    return "-" * width


def render(params: dict) -> dict:
    rows = params.get("rows")
    if not isinstance(rows, list):
        raise ValueError("'rows' must be a list of objects or of lists")
    headers = params.get("headers")
    if headers is not None and (not isinstance(headers, list) or not headers):
        raise ValueError("'headers' must be a non-empty list")

    if rows and all(isinstance(r, dict) for r in rows):
        if headers is None:
            headers = []
            for row in rows:
                headers += [key for key in row if key not in headers]
        body = [[row.get(h) for h in headers] for row in rows]
    elif all(isinstance(r, list) for r in rows):
        if headers is None:
            if not rows:
                raise ValueError("an empty table needs 'headers'")
            headers, rows = rows[0], rows[1:]
        body = rows
        longest = max((len(r) for r in body), default=0)
        if longest > len(headers):
            raise ValueError(f"a row has {longest} cells but there are only {len(headers)} headers")
        body = [list(r) + [None] * (len(headers) - len(r)) for r in body]
    else:
        raise ValueError("'rows' must be all objects or all lists")

    head = [_cell(h) for h in headers]
    cells = [[_cell(v) for v in row] for row in body]
    columns = [[row[i] for row in cells] for i in range(len(head))]
    aligns = _resolve_alignment(params.get("align"), [str(h) for h in headers], columns)
    widths = [max([3, _width(h)] + [_width(c) for c in col]) for h, col in zip(head, columns)]

    def line(values):
        return "| " + " | ".join(_pad(v, w, a) for v, w, a in zip(values, widths, aligns)) + " |"

    out = [line(head), "| " + " | ".join(_separator(w, a) for w, a in zip(widths, aligns)) + " |"]
    out += [line(row) for row in cells]
    return {"markdown": "\n".join(out) + "\n", "columns": len(head), "rows": len(cells), "align": aligns}


def _split_row(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells, current, i = [], [], 0
    while i < len(line):
        char = line[i]
        if char == "\\" and i + 1 < len(line) and line[i + 1] == "|":
            current.append("|")
            i += 2
            continue
        if char == "|":
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    cells.append("".join(current).strip())
    return cells


def _is_delimiter(line: str) -> bool:
    if "-" not in line:
        return False
    cells = _split_row(line)
    return bool(cells) and all(_DELIMITER_CELL.match(c) for c in cells)


def _alignment_of(cell: str) -> str:
    cell = cell.strip()
    if cell.startswith(":") and cell.endswith(":"):
        return "center"
    if cell.endswith(":"):
        return "right"
    if cell.startswith(":"):
        return "left"
    return "none"


def _typed(cell: str, typed: bool):
    if not typed:
        return cell
    if re.fullmatch(r"[+-]?\d+", cell):
        return int(cell)
    if re.fullmatch(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?", cell):
        return float(cell)
    return cell


def parse(params: dict) -> dict:
    text = params.get("markdown")
    if not isinstance(text, str):
        raise ValueError("'markdown' must be a string")
    typed = bool(params.get("typed", False))
    lines = text.splitlines()
    for index in range(1, len(lines)):
        if "|" in lines[index - 1] and _is_delimiter(lines[index]):
            headers = _split_row(lines[index - 1])
            delimiter = _split_row(lines[index])
            if len(delimiter) != len(headers):
                continue  # GFM: header and delimiter row must have the same number of cells
            break
    else:
        raise ValueError("no markdown table found (need a header row followed by a |---| delimiter row)")

    rows = []
    for line in lines[index + 1:]:
        if not line.strip() or line.lstrip().startswith(("#", ">", "```", "~~~")):
            break  # GFM: a table ends at a blank line or the start of another block
        cells = _split_row(line)
        cells = (cells + [""] * len(headers))[: len(headers)]
        rows.append([_typed(re.sub(r"<br\s*/?>", "\n", c, flags=re.I), typed) for c in cells])

    keys, seen = [], {}
    for header in headers:
        seen[header] = seen.get(header, 0) + 1
        keys.append(header if seen[header] == 1 else f"{header}_{seen[header]}")
    return {
        "headers": headers,
        "rows": rows,
        "records": [dict(zip(keys, row)) for row in rows],
        "align": [_alignment_of(c) for c in delimiter],
    }


def run(params: dict) -> dict:
    mode = params.get("mode")
    if mode is None:
        mode = "parse" if "markdown" in params else "render"
    if mode == "render":
        return render(params)
    if mode == "parse":
        return parse(params)
    raise ValueError("'mode' must be 'render' or 'parse'")
