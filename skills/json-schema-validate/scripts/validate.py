"""Validate a JSON instance against a JSON Schema with the jsonschema library."""
from __future__ import annotations

import warnings

import jsonschema
from jsonschema import validators
from jsonschema.exceptions import SchemaError

DRAFTS = {
    "2020-12": validators.Draft202012Validator,
    "2019-09": validators.Draft201909Validator,
    "7": validators.Draft7Validator,
    "6": validators.Draft6Validator,
    "4": validators.Draft4Validator,
}
_NAMES = {cls: name for name, cls in DRAFTS.items()}


try:  # jsonschema >= 4.18 resolves $ref through the `referencing` library
    from referencing import Registry
    from referencing.exceptions import Unresolvable
except ImportError:  # pragma: no cover - jsonschema 4.17
    Registry = None
    Unresolvable = None


def _reference_errors() -> tuple:
    found = [Unresolvable] if Unresolvable is not None else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = getattr(jsonschema.exceptions, "RefResolutionError", None)
    if legacy is not None:
        found.append(legacy)
    return tuple(found)


REFERENCE_ERRORS = _reference_errors()


def _pointer(parts) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _sort_key(parts) -> list:
    # Array indices sort numerically and before object keys.
    return [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in parts]


def _choose_validator(schema, draft: str):
    if draft != "auto":
        if draft not in DRAFTS:
            raise ValueError(f"unknown draft {draft!r}; use one of: auto, {', '.join(DRAFTS)}")
        return DRAFTS[draft]
    if isinstance(schema, dict) and "$schema" in schema:
        cls = validators.validator_for(schema, default=None)
        if cls is None:
            raise ValueError(f"unknown $schema {schema['$schema']!r}; pass 'draft' explicitly")
        return cls
    return validators.Draft202012Validator


def run(params: dict) -> dict:
    if "instance" not in params or "schema" not in params:
        raise ValueError("both 'instance' and 'schema' are required")
    schema = params["schema"]
    if not isinstance(schema, (dict, bool)):
        raise ValueError("'schema' must be a JSON object or a boolean")
    max_errors = params.get("max_errors", 100)
    if isinstance(max_errors, bool) or not isinstance(max_errors, int) or max_errors < 1:
        raise ValueError("'max_errors' must be a positive integer")

    cls = _choose_validator(schema, params.get("draft", "auto"))
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = _pointer(exc.absolute_path) or "(root)"
        raise ValueError(f"invalid schema at {where}: {exc.message}") from exc

    kwargs = {}
    if Registry is not None:
        # An empty registry: local refs and the standard meta-schemas resolve, remote ones
        # fail at once instead of being fetched over the network.
        kwargs["registry"] = Registry()
    if params.get("format_check"):
        kwargs["format_checker"] = cls.FORMAT_CHECKER
    validator = cls(schema, **kwargs)

    try:
        raw = list(validator.iter_errors(params["instance"]))
    except REFERENCE_ERRORS as exc:
        raise ValueError(f"cannot resolve $ref in schema: {exc}") from exc

    raw.sort(key=lambda e: (_sort_key(e.absolute_path), _sort_key(e.absolute_schema_path)))
    errors = [
        {
            "path": _pointer(e.absolute_path),
            "path_parts": list(e.absolute_path),
            "message": e.message,
            "keyword": "false" if e.validator is None else str(e.validator),  # None: the `false` schema
            "schema_path": _pointer(e.absolute_schema_path),
        }
        for e in raw[:max_errors]
    ]
    return {
        "valid": not raw,
        "error_count": len(errors),
        "truncated": len(raw) > max_errors,
        "draft": _NAMES.get(cls, getattr(cls, "META_SCHEMA", {}).get("$schema", cls.__name__)),
        "errors": errors,
    }
