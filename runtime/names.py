"""The skill-name rule, stated once: 1-64 characters of a-z and 0-9 in groups joined by
single hyphens. Names become folder names, image tags, tool names and SQL literals, so
every surface checks them with these before anything else looks at a name."""

from __future__ import annotations

import re

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
