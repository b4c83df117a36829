"""The skill-name rule, stated once: 1-64 characters of a-z and 0-9 in groups joined by
single hyphens. Names become folder names, image tags, tool names and SQL literals, so
every surface checks them with these before anything else looks at a name."""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidName

NAME_MAX = 64
NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*\Z")  # \Z: "$" would accept a trailing newline
# The same rule for JSON Schema and OpenAPI (ECMA regexes, where "$" is the end of the text).
NAME_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"


def is_skill_name(name: object) -> bool:
    """Whether `name` follows the rule."""
    return isinstance(name, str) and len(name) <= NAME_MAX and NAME_RE.match(name) is not None


def validate_name(name: object) -> str:
    """`name` if it follows the rule, else InvalidName (also a ValueError) saying the rule."""
    if isinstance(name, str) and is_skill_name(name):
        return name
    raise InvalidName(
        f"invalid skill name {name!r}: use 1-{NAME_MAX} characters of a-z, 0-9 and single hyphens, "
        "not starting or ending with a hyphen"
    )


def spec_name_problem(name: str) -> str | None:
    """Why `name` breaks the Agent Skills spec's wider rule, or None: after NFKC
    normalisation, 1-64 lower-case letters (any script) and digits in groups joined by single
    hyphens, as the reference validator (skills-ref) checks it. skillyard registers only the
    ASCII subset (`is_skill_name`); the spec's rule is what `skillyard validate` reports."""
    text = unicodedata.normalize("NFKC", name.strip())
    if not text:
        return "name must not be empty"
    if len(text) > NAME_MAX:
        return f"name {text!r} is {len(text)} characters; the limit is {NAME_MAX}"
    if text != text.lower():
        return f"name {text!r} must be lower-case"
    if text.startswith("-") or text.endswith("-"):
        return f"name {text!r} must not start or end with a hyphen"
    if "--" in text:
        return f"name {text!r} must not hold two hyphens in a row"
    if not all(c.isalnum() or c == "-" for c in text):
        return f"name {text!r} may hold only letters, digits and hyphens"
    return None


def ascii_name(name: str) -> str:
    """The name `is_skill_name` accepts that spells `name` without its accents ("données" ->
    "donnees"), or "" when a letter has no such spelling (another script: no guess is made)."""
    kept = []
    for c in unicodedata.normalize("NFKD", name.strip().lower()):
        if c.isascii():
            kept.append(c)
        elif not unicodedata.combining(c):
            return ""
    folded = "".join(kept)
    return folded if is_skill_name(folded) else ""
