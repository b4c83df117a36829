"""Compute the next fire times of a standard 5-field cron expression."""
from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
MONTH_NAMES = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# name, minimum, maximum, names
FIELDS = [
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day_of_month", 1, 31, {}),
    ("month", 1, 12, MONTH_NAMES),
    ("day_of_week", 0, 7, DAY_NAMES),
]
MAX_COUNT = 1000
HORIZON_YEARS = 50


def _number(token: str, field: str, low: int, high: int, names: dict) -> int:
    key = token.lower()
    if key in names:
        return names[key]
    if not token.isdigit():
        if any(c in token.upper() for c in "LW#"):
            raise ValueError(f"{token!r} in {field} field: the L, W and # extensions are not supported")
        raise ValueError(f"invalid value {token!r} in {field} field")
    value = int(token)
    if not low <= value <= high:
        raise ValueError(f"{field} value {value} is out of range {low}-{high}")
    return value


def parse_field(text: str, field: str, low: int, high: int, names: dict) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ValueError(f"empty list item in {field} field {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"invalid step {step_text!r} in {field} field")
            step = int(step_text)
        if base in ("*", "?"):
            if base == "?" and field not in ("day_of_month", "day_of_week"):
                raise ValueError("'?' is only allowed in the day-of-month and day-of-week fields")
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, field, low, high, names), _number(last, field, low, high, names)
            if field == "day_of_week" and end == 0 and start > 0:
                end = 7  # "FRI-SUN": Sunday closes the week
            if start > end:
                raise ValueError(f"range {base!r} in {field} field runs backwards")
        else:
            start = _number(base, field, low, high, names)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    if field == "day_of_week" and 7 in values:
        values.discard(7)
        values.add(0)
    return values


def parse_expression(expression: str) -> tuple[str, list[set[int]], bool, bool]:
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("'expression' must be a non-empty string")
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise ValueError(f"unknown macro {text!r}; use one of {', '.join(MACROS)}")
        text = MACROS[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}; "
            "seconds and year fields are not supported"
        )
    sets = [parse_field(p, *spec) for p, spec in zip(parts, FIELDS)]
    # Vixie cron: if both day fields are restricted (neither starts with '*'), a day matches either.
    dom_star, dow_star = parts[2].startswith(("*", "?")), parts[4].startswith(("*", "?"))
    return " ".join(parts), sets, dom_star, dow_star


def _day_matches(moment: datetime, dom: set, dow: set, dom_star: bool, dow_star: bool) -> bool:
    in_dom = moment.day in dom
    in_dow = (moment.weekday() + 1) % 7 in dow  # cron: Sunday = 0
    if dom_star or dow_star:
        return in_dom and in_dow
    return in_dom or in_dow


def _next_after(moment: datetime, sets, dom_star: bool, dow_star: bool, limit: datetime):
    """First matching naive wall-clock minute >= moment, or None if there is none before `limit`."""
    minutes, hours, dom, months, dow = (sorted(s) for s in sets)
    try:
        while moment < limit:
            if moment.month not in months:
                year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
                moment = datetime(year, month, 1)
            elif not _day_matches(moment, dom, dow, dom_star, dow_star):
                moment = datetime(moment.year, moment.month, moment.day) + timedelta(days=1)
            elif moment.hour not in hours:
                later = next((h for h in hours if h > moment.hour), None)
                day = datetime(moment.year, moment.month, moment.day)
                moment = day + (timedelta(hours=later) if later is not None else timedelta(days=1))
            elif moment.minute not in minutes:
                later = next((m for m in minutes if m > moment.minute), None)
                hour = moment.replace(minute=0)
                moment = hour + (timedelta(minutes=later) if later is not None else timedelta(hours=1))
            else:
                return moment
    except (OverflowError, ValueError):  # ran past 9999-12-31
        return None
    return None


def _zone(name):
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise ValueError("'timezone' must be an IANA time zone name such as 'Europe/Berlin'")
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError, ImportError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown or unavailable time zone {name!r}") from exc


def run(params: dict) -> dict:
    normalized, sets, dom_star, dow_star = parse_expression(params.get("expression"))
    count = params.get("count", 5)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise ValueError(f"'count' must be an integer from 1 to {MAX_COUNT}")
    zone = _zone(params.get("timezone"))

    start_text = params.get("start")
    if start_text is None:
        start = datetime.now(timezone.utc)
    else:
        try:
            start = datetime.fromisoformat(str(start_text))
        except ValueError as exc:
            raise ValueError(f"'start' is not an ISO 8601 date/time: {start_text!r}") from exc
    if zone is not None:
        start = start.replace(tzinfo=zone) if start.tzinfo is None else start.astimezone(zone)
    tzinfo = start.tzinfo

    wall = start.replace(tzinfo=None)
    exact_minute = wall.second == 0 and wall.microsecond == 0
    wall = wall.replace(second=0, microsecond=0)
    if not (params.get("inclusive") and exact_minute):
        wall += timedelta(minutes=1)

    times: list[str] = []
    exhausted = False
    while len(times) < count:
        horizon = wall.year + HORIZON_YEARS
        limit = datetime(horizon, 1, 1) if horizon <= 9999 else datetime.max
        found = _next_after(wall, sets, dom_star, dow_star, limit)
        if found is None:
            exhausted = True
            break
        moment = found.replace(tzinfo=tzinfo)
        gap = zone is not None and moment.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != found
        if not gap:  # a wall-clock time inside a daylight-saving gap does not exist: skip it
            times.append(moment.isoformat())
        if found > datetime.max - timedelta(minutes=1):
            exhausted = True
            break
        wall = found + timedelta(minutes=1)

    if not times:
        raise ValueError(f"{normalized!r} never fires within {HORIZON_YEARS} years of the start time")
    names = [f[0] for f in FIELDS]
    return {
        "expression": normalized,
        "times": times,
        "count": len(times),
        "exhausted": exhausted,
        "start": start.isoformat(),
        "timezone": params.get("timezone") or (_offset(start) if start.tzinfo is not None else None),
        "fields": {name: sorted(values) for name, values in zip(names, sets)},
        "day_match": "and" if (dom_star or dow_star) else "or",
    }


def _offset(moment: datetime) -> str:
    minutes = int(moment.utcoffset().total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
