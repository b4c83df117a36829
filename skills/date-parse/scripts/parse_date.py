"""Parse dates and times written in many formats, including relative phrases like '3 days ago'."""
from __future__ import annotations

import calendar
import email.utils
import re
from datetime import date, datetime, time, timedelta, timezone

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WEEKDAY_RE = (
    r"(?:monday|mon|tuesday|tues|tue|wednesday|wed|thursday|thurs|thur|thu|friday|fri"
    r"|saturday|sat|sunday|sun)"
)
_NAMED_ZONES = {
    "z": 0, "utc": 0, "gmt": 0, "ut": 0,
    "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6, "pst": -8, "pdt": -7,
    "cet": 1, "cest": 2, "eet": 2, "eest": 3, "bst": 1,
}
_UNIT_ALIASES = {
    "s": "seconds", "sec": "seconds", "secs": "seconds", "second": "seconds", "seconds": "seconds",
    "min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
    "w": "weeks", "wk": "weeks", "wks": "weeks", "week": "weeks", "weeks": "weeks",
    "fortnight": "fortnights", "fortnights": "fortnights",
    "month": "months", "months": "months", "mo": "months", "mos": "months",
    "y": "years", "yr": "years", "yrs": "years", "year": "years", "years": "years",
}
_AMOUNT_RE = re.compile(r"(\d+|(?:an|a|one)\b)\s*([a-z]+)\s*(?:,|and)?\s*")

_TIME_FORMATS = ["", "%H:%M", "%H:%M:%S", "%H:%M:%S.%f", "%I:%M %p", "%I:%M:%S %p", "%I %p", "%I:%M%p", "%I%p"]
# (format, day/month order is ambiguous) -- order matters: first match wins.
_DATE_FORMATS_MDY = ["%m/%d/%Y", "%m/%d/%y", "%m-%d-%Y", "%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y"]
_DATE_FORMATS_DMY = ["%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y", "%m/%d/%Y", "%m/%d/%y", "%m-%d-%Y"]
_DATE_FORMATS_OTHER = [
    "%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%d.%m.%Y", "%d.%m.%y",
    "%B %d %Y", "%b %d %Y", "%d %B %Y", "%d %b %Y", "%Y %B %d", "%Y %b %d",
    "%B %d", "%b %d", "%d %B", "%d %b", "%B %Y", "%b %Y", "%Y-%m", "%Y",
]


def _parse_reference(value) -> datetime:
    if value is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    if not isinstance(value, str):
        raise ValueError("'reference' must be an ISO 8601 date/time string")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"'reference' is not ISO 8601: {value!r}") from exc


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise ValueError("resulting date is out of range")
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _shift(moment: datetime, amounts: list[tuple[int, str]], sign: int) -> datetime:
    try:
        for count, unit in amounts:
            if unit == "months":
                moment = _add_months(moment, sign * count)
            elif unit == "years":
                moment = _add_months(moment, sign * 12 * count)
            elif unit == "fortnights":
                moment = moment + sign * timedelta(weeks=2 * count)
            else:
                moment = moment + sign * timedelta(**{unit: count})
    except OverflowError as exc:
        raise ValueError("resulting date is out of range") from exc
    return moment


def _parse_amounts(text: str):
    amounts, pos = [], 0
    for match in _AMOUNT_RE.finditer(text):
        if match.start() != pos or match.group(2) not in _UNIT_ALIASES:
            return None
        raw = match.group(1)
        amounts.append((1 if raw in ("a", "an", "one") else int(raw), _UNIT_ALIASES[match.group(2)]))
        pos = match.end()
    return amounts if amounts and pos == len(text) else None


def _time_of_day(text: str):
    text = text.strip()
    if text in ("", "midnight"):
        return time(0, 0)
    if text == "noon":
        return time(12, 0)
    for fmt in _TIME_FORMATS[1:]:
        try:
            return datetime.strptime(text, fmt).time()
        except ValueError:
            continue
    return None


def _at_time(day: datetime, rest: str):
    rest = re.sub(r"^(?:at\s+)", "", rest.strip())
    clock = _time_of_day(rest)
    if clock is None:
        return None
    return day.replace(hour=clock.hour, minute=clock.minute, second=clock.second, microsecond=clock.microsecond)


def _parse_relative(low: str, ref: datetime):
    """Return (datetime, label) for relative phrases, or None."""
    if low in ("now", "right now"):
        return ref, "relative:now"
    midnight = ref.replace(hour=0, minute=0, second=0, microsecond=0)
    match = re.fullmatch(r"(today|tonight|tomorrow|yesterday)\b(.*)", low)
    if match:
        offset = {"today": 0, "tonight": 0, "tomorrow": 1, "yesterday": -1}[match.group(1)]
        result = _at_time(midnight + timedelta(days=offset), match.group(2))
        return (result, f"relative:{match.group(1)}") if result else None

    match = re.fullmatch(r"(.+?)\s+(ago|before|earlier|from now|later|hence|after)", low)
    if match and (amounts := _parse_amounts(match.group(1))):
        sign = -1 if match.group(2) in ("ago", "before", "earlier") else 1
        return _shift(ref, amounts, sign), "relative:offset"
    match = re.fullmatch(r"in\s+(.+)", low)
    if match and (amounts := _parse_amounts(match.group(1))):
        return _shift(ref, amounts, 1), "relative:offset"

    match = re.fullmatch(r"(?:(next|last|this|coming|previous)\s+)?(" + _WEEKDAY_RE + r")\b(.*)", low)
    if match:
        which, name, rest = match.groups()
        target = next(i for i, day in enumerate(WEEKDAYS) if day.startswith(name[:3]))
        ahead = (target - ref.weekday()) % 7
        if which in ("next", "coming"):
            delta = ahead or 7
        elif which in ("last", "previous"):
            delta = -((ref.weekday() - target) % 7 or 7)
        else:  # "this friday" / "friday": the coming one, today included
            delta = ahead
        result = _at_time(midnight + timedelta(days=delta), rest)
        return (result, f"relative:{which or 'this'}-weekday") if result else None

    match = re.fullmatch(r"(next|last|previous)\s+(week|month|year|fortnight)", low)
    if match:
        sign = 1 if match.group(1) == "next" else -1
        return _shift(ref, [(1, _UNIT_ALIASES[match.group(2)])], sign), "relative:offset"
    return None


def _split_zone(text: str):
    """Strip a trailing UTC offset or zone abbreviation that follows a time; return (text, tzinfo)."""
    match = re.search(r"(?:\s+|(?<=\d))(?:([a-z]{1,4})|([+-])(\d{2}):?(\d{2}))$", text, re.I)
    if not match or not re.search(r"\d", text[: match.start()]):
        return text, None
    head = text[: match.start()]
    if match.group(1):
        name = match.group(1).lower()
        if name not in _NAMED_ZONES:
            return text, None
        offset = timedelta(hours=_NAMED_ZONES[name])
    else:
        if ":" not in head and not re.search(r"[ap]\.?m\.?$", head, re.I):
            return text, None  # e.g. "01-05-2024": the "-2024" is a year, not an offset
        hours, minutes = int(match.group(3)), int(match.group(4))
        if hours > 23 or minutes > 59:
            raise ValueError(f"invalid UTC offset in {text!r}")
        offset = timedelta(hours=hours, minutes=minutes) * (1 if match.group(2) == "+" else -1)
    return head.strip(), timezone(offset)


def _clean(text: str) -> str:
    text = text.replace(",", " ")
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text, flags=re.I)
    text = re.sub(r"^" + _WEEKDAY_RE + r"\.?\s+", "", text, flags=re.I)
    text = re.sub(r"\bsept\b", "sep", text, flags=re.I)
    text = re.sub(r"\b([a-z]{3})\.", r"\1", text, flags=re.I)  # "Jan." -> "Jan"
    text = re.sub(r"\s+at\s+", " ", text, flags=re.I)
    text = re.sub(r"(\d)\s*([ap])\.?m\.?$", r"\1 \2m", text, flags=re.I)  # "5p.m." -> "5 pm"
    return " ".join(text.split())


def _strptime_any(text: str, ref: datetime, dayfirst: bool):
    """Try date formats combined with time formats; return (datetime, format, ambiguous) or None."""
    numeric = _DATE_FORMATS_DMY if dayfirst else _DATE_FORMATS_MDY
    for date_fmt in numeric + _DATE_FORMATS_OTHER:
        has_year = "%Y" in date_fmt or "%y" in date_fmt
        candidate = text if has_year else f"{text} {ref.year}"
        for time_fmt in _TIME_FORMATS:
            for sep in ([" "] if not time_fmt else [" ", "T"]):
                fmt = date_fmt + (sep + time_fmt if time_fmt else "")
                full_fmt = fmt if has_year else f"{fmt} %Y"
                try:
                    parsed = datetime.strptime(candidate, full_fmt)
                except ValueError:
                    continue
                ambiguous = False
                if date_fmt in numeric:
                    swapped = full_fmt.replace("%m", "%_").replace("%d", "%m").replace("%_", "%d")
                    try:
                        ambiguous = datetime.strptime(candidate, swapped) != parsed
                    except ValueError:
                        pass
                return parsed, fmt, ambiguous
    clock = _time_of_day(text)
    if clock is not None:
        return datetime.combine(ref.date(), clock), "time-only", False
    return None


def _parse_absolute(text: str, ref: datetime, dayfirst: bool):
    if text.startswith("@"):
        try:
            seconds = float(text[1:])
            return datetime.fromtimestamp(seconds, timezone.utc), "unix", False
        except (ValueError, OverflowError, OSError) as exc:
            raise ValueError(f"invalid unix timestamp {text!r}") from exc
    if text[:1].isdigit():
        try:
            return datetime.fromisoformat(text), "iso8601", False
        except ValueError:
            pass
        match = re.fullmatch(r"(\d{4})-?(\d{3})", text)  # ISO ordinal date
        if match:
            year, day_of_year = int(match.group(1)), int(match.group(2))
            if not 1 <= day_of_year <= (366 if calendar.isleap(year) else 365):
                raise ValueError(f"day of year out of range in {text!r}")
            return datetime(year, 1, 1) + timedelta(days=day_of_year - 1), "iso8601-ordinal", False
    if re.match(r"^(?:[a-z]{3},?\s+)?\d{1,2}\s+[a-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}", text, re.I):
        try:
            return email.utils.parsedate_to_datetime(text), "rfc2822", False
        except (TypeError, ValueError):
            pass
    cleaned = _clean(text)
    cleaned, tz = _split_zone(cleaned)
    found = _strptime_any(cleaned, ref, dayfirst)
    if found is None:
        return None
    parsed, fmt, ambiguous = found
    if tz is not None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed, fmt, ambiguous


def _offset_text(moment: datetime):
    offset = moment.utcoffset()
    if offset is None:
        return None
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def run(params: dict) -> dict:
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("'text' must be a non-empty string")
    if len(text) > 200:
        raise ValueError("'text' is too long (at most 200 characters)")
    dayfirst = bool(params.get("dayfirst", False))
    ref = _parse_reference(params.get("reference"))
    text = " ".join(text.split())

    relative = _parse_relative(text.lower(), ref)
    if relative is not None:
        moment, fmt = relative
        ambiguous = False
    else:
        absolute = _parse_absolute(text, ref, dayfirst)
        if absolute is None:
            raise ValueError(f"could not parse a date/time from {text!r}")
        moment, fmt, ambiguous = absolute

    iso_year, iso_week, iso_weekday = moment.isocalendar()
    return {
        "input": text,
        "iso": moment.isoformat(),
        "date": moment.date().isoformat(),
        "time": moment.time().isoformat(),
        "year": moment.year,
        "month": moment.month,
        "day": moment.day,
        "hour": moment.hour,
        "minute": moment.minute,
        "second": moment.second,
        "microsecond": moment.microsecond,
        "weekday": calendar.day_name[moment.weekday()],
        "iso_weekday": iso_weekday,
        "iso_year": iso_year,
        "iso_week": iso_week,
        "day_of_year": moment.timetuple().tm_yday,
        "utc_offset": _offset_text(moment),
        "timestamp": moment.timestamp() if moment.tzinfo is not None else None,
        "format": fmt,
        "relative": fmt.startswith("relative:"),
        "ambiguous": ambiguous,
        "reference": ref.isoformat(),
    }
